"""The OpenAPI 3 document, generated from the code at run time.

Paths and operations come from the route functions' docstrings (the YAML after
``---``, read by apispec's Flask plugin); bodies are the marshmallow schemas of
:mod:`gateway.schemas` (apispec's marshmallow plugin). Nothing is maintained by hand.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin, resolver
from apispec_webframeworks.flask import FlaskPlugin
from flask import Flask

from gateway import schemas

TITLE = "Face liveness API"
API_VERSION = "1.0.0"
DESCRIPTION = """\
Asynchronous face liveness (presentation-attack detection). Submit an image, get a
job id, then poll (`?wait=N` long-polls) or receive a signed webhook.

Authentication: `Authorization: Bearer <key>` or `X-API-Key: <key>`. Jobs and batches
are visible only to the key that created them. Every error answers
`{"error": {"code", "message"}}` — also 414 (request target over 4096 bytes) and 431
(a header field over 8192 bytes), on every route.
"""

#: Reusable error answers, referenced by name from the route docstrings.
ERROR_RESPONSES = {
    "BadRequest": "malformed body (bad JSON, bad base64, missing field)",
    "Unauthorized": "no API key, or an unknown one",
    "NotFound": "unknown id, or another key's",
    "TooLarge": "body, image or archive too large, or too many pixels/items",
    "UnsupportedMedia": "not an image, or an unsupported format or content type",
    "Unprocessable": "image unusable (empty, corrupt, too small), unknown test, or a "
                     "callback_url that is malformed or not a public address "
                     "(callback_url_refused)",
    "Conflict": "the Idempotency-Key was used for a different request (idempotency_conflict)",
    "RateLimited": "per-key rate limit exceeded; see Retry-After",
    "UriTooLong": "request target (path and query) over 4096 bytes (uri_too_long)",
    "HeaderTooLarge": "a header field over 8192 bytes, or too many fields "
                      "(header_fields_too_large)",
    "Gone": "the stored image can no longer be read: it was sealed under a key no longer "
            "in LIVENESS_IMAGE_KEYS (image_unreadable)",
    "Unavailable": "the job store or queue is unreachable (unavailable), or a queue the "
                   "job needs is full (overloaded; see Retry-After)",
}

_SCHEMAS = (
    schemas.ErrorSchema, schemas.JobSubmitJsonSchema, schemas.JobSubmitMultipartSchema,
    schemas.JobAcceptedSchema, schemas.JobSchema, schemas.BatchMultipartSchema,
    schemas.BatchSchema, schemas.HealthSchema, schemas.ReadySchema, schemas.ProfilesSchema,
    schemas.ChallengeSchema,
)


def _schema_name(schema: type | object) -> str:
    """``JobSchema`` → ``Job`` (apispec's default naming, also for nested schemas)."""
    return resolver(schema)


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.0 document of every documented route of ``app``."""
    spec = APISpec(
        title=TITLE,
        version=API_VERSION,
        openapi_version="3.0.3",
        info={"description": DESCRIPTION, "license": {"name": "Apache-2.0"}},
        plugins=[FlaskPlugin(), MarshmallowPlugin(schema_name_resolver=_schema_name)],
    )
    for schema_cls in _SCHEMAS:
        spec.components.schema(_schema_name(schema_cls), schema=schema_cls)
    for name, description in ERROR_RESPONSES.items():
        spec.components.response(name, {
            "description": description,
            "content": {"application/json": {"schema": "Error"}},
        })
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("apiKeyHeader",
                                    {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    with app.test_request_context():
        for endpoint, view in sorted(app.view_functions.items()):
            if endpoint == "static" or not (view.__doc__ and "---" in view.__doc__):
                continue
            spec.path(view=view, app=app)
    return spec.to_dict()
