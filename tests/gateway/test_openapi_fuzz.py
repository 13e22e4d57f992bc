"""The OpenAPI document is the behaviour: schemathesis fuzzes every operation in process.

Cases are generated from ``/openapi.json`` (positive and negative data) and sent to the
real gateway (Flask's WSGI app on Redis DB 14, nothing consuming the queues) with a valid
key. Every check schemathesis has runs: no 5xx, every status code and body documented,
schema-valid requests accepted, schema-invalid ones refused. Bounded: a few dozen
examples per operation, well under two minutes in all.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, positive_data_acceptance

from tests.gateway.support import auth, build_app, make_settings

# The app connects to Redis lazily: building it here needs no server yet.
APP = build_app(make_settings(rate_limit="100000/minute", read_rate_limit="100000/minute"))
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

#: Examples per operation (``LIVENESS_FUZZ_EXAMPLES``; 300 for a deeper run by hand).
EXAMPLES = int(os.environ.get("LIVENESS_FUZZ_EXAMPLES", "30"))
#: Differences between the document and the server that are intended, with the reason.
INTENDED: dict[tuple[str, str], tuple[object, str]] = {
    # OpenAPI cannot say "a decodable image of at least 64x64 pixels": schema-valid bytes
    # or base64 that are no such image are refused (415/422, or 400 for a non-zip
    # archive), as the operations' descriptions say.
    ("POST", "/v1/jobs"): (positive_data_acceptance, "image content"),
    ("POST", "/v1/batches"): (positive_data_acceptance, "image/archive content"),
    # Readiness answers 503 while no worker consumes a required queue (none does here).
    ("GET", "/readyz"): (not_a_server_error, "503 is its documented 'not ready'"),
}


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_behaves_as_documented(case, redis_db):
    intended = INTENDED.get((case.method.upper(), case.path))
    excluded = [intended[0]] if intended else []
    case.call_and_validate(headers=auth(), excluded_checks=excluded)
