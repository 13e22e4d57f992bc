"""Marshmallow schemas of the API's bodies: the single source of ``/openapi.json``.

They document the JSON the routes return (built by :mod:`workers.jobs`); the routes
do not serialise through them, so a field added there must be added here too —
``tests/unit/test_gateway_openapi.py`` checks a real answer against these schemas.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

JOB_STATUSES = ("queued", "running", "done", "failed", "expired")
DECISIONS = ("live", "spoof", "retry")


def _binary(description: str) -> fields.Raw:
    return fields.Raw(metadata={"type": "string", "format": "binary",
                                "description": description})


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "stable machine-readable code",
                                                  "example": "not_an_image"})
    message = fields.String(required=True, metadata={"description": "human-readable cause"})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema, required=True)


class LinksSchema(Schema):
    self = fields.String(required=True, metadata={"example": "/v1/jobs/3f2a…"})


class JobSubmitJsonSchema(Schema):
    image = fields.String(required=True, metadata={
        "format": "byte", "description": "the image (JPEG, PNG, WebP or BMP), base64"})
    tests = fields.List(fields.String(), metadata={
        "description": "tests to run (default: LIVENESS_DEFAULT_TESTS)",
        "example": ["quality"]})
    callback_url = fields.Url(metadata={
        "description": "http(s) URL the finished job is POSTed to, signed with "
                       "X-Liveness-Signature (no credentials in the URL)"})


class JobSubmitMultipartSchema(Schema):
    image = _binary("the image file")
    tests = fields.String(metadata={"description": "comma-separated test names",
                                    "example": "quality"})
    callback_url = fields.String(metadata={"description": "as in the JSON body"})


class JobAcceptedSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(JOB_STATUSES))
    links = fields.Nested(LinksSchema, required=True)


class FaceBoxSchema(Schema):
    top = fields.Integer()
    right = fields.Integer()
    bottom = fields.Integer()
    left = fields.Integer()


class FaceSchema(Schema):
    box = fields.Nested(FaceBoxSchema)
    found = fields.Boolean()
    method = fields.String(metadata={"description": "how the box was found"})
    n_faces = fields.Integer()
    reasons = fields.List(fields.String())


class TestDetailSchema(Schema):
    score = fields.Float(allow_none=True, metadata={"description": "P(live) of this test"})
    model = fields.String(allow_none=True)
    version = fields.String(allow_none=True)
    threshold = fields.Float(allow_none=True)
    seconds = fields.Float()
    error = fields.String(allow_none=True)


class JobSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(JOB_STATUSES))
    created_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    updated_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    tests = fields.List(fields.String())
    score = fields.Float(allow_none=True, metadata={"description": "fused P(live), 0-1"})
    decision = fields.String(allow_none=True, validate=validate.OneOf(DECISIONS))
    threshold = fields.Float(allow_none=True)
    fusion = fields.String(allow_none=True, metadata={"description": "fusion rule name"})
    face_found = fields.Boolean(allow_none=True)
    face = fields.Nested(FaceSchema, allow_none=True)
    reasons = fields.List(fields.String(), allow_none=True)
    tests_detail = fields.Dict(keys=fields.String(), values=fields.Nested(TestDetailSchema),
                               allow_none=True)
    missing_tests = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True,
                                metadata={"description": "test → why it has no score"})
    timings = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    links = fields.Nested(LinksSchema)


class BatchMultipartSchema(Schema):
    images = fields.List(_binary("one image file; repeat the field per image"))
    archive = _binary("one zip of images, instead of 'images'")
    tests = fields.String(metadata={"description": "comma-separated test names"})
    callback_url = fields.String(metadata={"description": "called once per image's job"})


class BatchItemSchema(Schema):
    name = fields.String()
    job_id = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "a job status, or 'error' for an image "
                                                    "refused at submission"})
    result = fields.Dict(allow_none=True, metadata={"description": "the result when done"})
    error = fields.String(allow_none=True)


class BatchSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(validate=validate.OneOf(("running", "done")))
    created_at = fields.String(metadata={"format": "date-time"})
    total = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    items = fields.List(fields.Nested(BatchItemSchema))
    links = fields.Nested(LinksSchema)


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ReadySchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("ready", "unavailable")))
    checks = fields.Dict(metadata={"description": "redis, queues → consuming workers"})
