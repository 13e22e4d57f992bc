"""The Python client's dataclasses have exactly the fields of the gateway's OpenAPI
document (so a field the service adds or renames fails here, not in a user's code)."""

from __future__ import annotations

import dataclasses

from liveness_client import Batch, Face, Job, TestDetail
from liveness_client.models import BatchItem


def test_the_client_dataclasses_mirror_the_openapi_document(client) -> None:
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]

    def properties(name: str) -> set[str]:
        return set(schemas[name]["properties"])

    def names(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    assert names(Job) - {"extra"} == properties("Job")
    assert names(Face) == properties("FaceDetection")
    assert names(TestDetail) == properties("TestOutcome")
    assert names(Batch) == properties("Batch")
    assert names(BatchItem) == properties("BatchItem")
