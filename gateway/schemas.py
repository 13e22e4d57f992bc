"""Marshmallow schemas of the API's bodies: the single source of ``/openapi.json``.

The result and job schemas are generated from the one result model
(:mod:`common.result`): one field per dataclass field, typed from its annotation
(``int``, ``float``, ``bool``, ``str``, ``X | None``, ``tuple[X, ...]``,
``dict[str, X]``, nested dataclasses) and described by its ``description`` metadata,
so a field added to a result class appears here by itself. The request schemas are
written out, as they describe the gateway's own intake.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from marshmallow import Schema, fields, validate

from common import result
from common.result import DECISIONS

JOB_STATUSES = ("queued", "running", "done", "failed", "expired")


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
    explanations = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "test → URL of its explanation PNG (jobs submitted with "
                       "explain=true, once the test stored one)"})


class JobSubmitJsonSchema(Schema):
    image = fields.String(required=True, metadata={
        "format": "byte", "description": "the image (JPEG, PNG, WebP or BMP), base64; it "
        "must decode to an image of at least LIVENESS_MIN_IMAGE_SIDE (64) pixels on its "
        "shorter side and at most LIVENESS_MAX_IMAGE_BYTES / _MAX_IMAGE_PIXELS, else "
        "415/413/422"})
    tests = fields.List(fields.String(), metadata={
        "description": "tests to run (default: LIVENESS_DEFAULT_TESTS)",
        "example": ["quality"]})
    callback_url = fields.Url(metadata={
        "description": "http(s) URL the finished job is POSTed to, signed with "
                       "X-Liveness-Signature (no credentials in the URL)"})
    profile = fields.String(metadata={
        "description": "calibration profile name (GET /v1/profiles); default: the API "
                       "key's, else LIVENESS_DEFAULT_PROFILE, else none", "example": "lobby"})
    explain = fields.Boolean(load_default=False, metadata={
        "description": "store a Grad-CAM explanation PNG per test that has one (the cnn "
                       "test); kept no longer than the result (LIVENESS_RESULT_TTL_S)"})
    challenge = fields.String(metadata={
        "description": "the id of the colour-flash challenge these frames answer (POST "
                       "/v1/challenges); with `frames`"})
    frames = fields.List(fields.String(metadata={"format": "byte"}), metadata={
        "description": "one base64 camera frame per colour of the challenge, in order (each "
                       "at most LIVENESS_CHALLENGE_FRAME_MAX_BYTES)"})


class JobSubmitMultipartSchema(Schema):
    image = _binary("the image file (same requirements as the JSON body's image)")
    tests = fields.String(metadata={"description": "comma-separated test names",
                                    "example": "quality"})
    callback_url = fields.String(metadata={"description": "as in the JSON body"})
    explain = fields.String(metadata={"description": "true or false (default), as in the "
                                                     "JSON body", "example": "true"})
    profile = fields.String(metadata={"description": "as in the JSON body"})
    challenge = fields.String(metadata={"description": "as in the JSON body"})
    frames = fields.List(_binary("one camera frame per colour of the challenge; repeat the "
                                 "field per frame, in order"))


class ChallengeSchema(Schema):
    id = fields.String(required=True, metadata={"description": "the challenge's id (a nonce)"})
    colours = fields.List(fields.String(), required=True, metadata={
        "description": "the colours to flash, in order, #rrggbb", "example":
        ["#ff0000", "#00ffff", "#0000ff", "#ffff00"]})
    step_ms = fields.Integer(required=True, metadata={
        "description": "how long to show each colour before grabbing its frame, ms"})
    frames = fields.Integer(required=True, metadata={"description": "frames to send"})
    expires_at = fields.String(required=True, metadata={
        "description": "submit the job before this time (ISO 8601 UTC)"})
    links = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "jobs: where to submit the answer"})


class JobAcceptedSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(JOB_STATUSES))
    links = fields.Nested(LinksSchema, required=True)


def _field_for(hint: Any, meta: dict[str, Any], required: bool = False) -> fields.Field:
    """The marshmallow field of one dataclass field's type hint (see the module docstring)."""
    allow_none = False
    if get_origin(hint) in (Union, UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        allow_none = len(args) < len(get_args(hint))
        hint = args[0]
    origin, args = get_origin(hint), get_args(hint)
    opts: dict[str, Any] = {"allow_none": allow_none, "metadata": meta}
    if required:
        opts["required"] = True
    if dataclasses.is_dataclass(hint):
        return fields.Nested(schema_for(hint), **opts)
    if origin in (tuple, list):
        return fields.List(_field_for(args[0], {}), **opts)
    if origin is dict:
        value = args[1]
        if value is Any:
            return fields.Dict(keys=fields.String(), **opts)
        return fields.Dict(keys=fields.String(), values=_field_for(value, {}), **opts)
    simple = {int: fields.Integer, float: fields.Float, bool: fields.Boolean, str: fields.String}
    return simple[hint](**opts)


@functools.cache
def schema_for(cls: type, name: str | None = None,
               rename: tuple[tuple[str, str], ...] = (),
               skip: tuple[str, ...] = ()) -> type[Schema]:
    """A marshmallow schema class named ``<name>Schema`` from a result dataclass.

    One field per dataclass field (``rename``: (field, JSON name) pairs; ``skip``: fields
    left out), typed from its annotation, documented by its ``description`` metadata.
    """
    hints = get_type_hints(cls)
    attrs: dict[str, Any] = {}
    renamed = dict(rename)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        required = (f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING)
        attrs[renamed.get(f.name, f.name)] = _field_for(hints[f.name], dict(f.metadata),
                                                        required)
    return type(f"{name or cls.__name__}Schema", (Schema,), attrs)


FaceBoxSchema = schema_for(result.FaceBox)
FaceSchema = schema_for(result.FaceDetection, "Face")
TestDetailSchema = schema_for(result.TestOutcome, "TestDetail")


class ResultSchema(schema_for(result.LivenessResult, "ResultFields")):  # type: ignore[misc]
    """A stored result (``LivenessResult.to_dict()``), as a batch item carries it."""

    face_found = fields.Boolean(metadata={"description": "false when no face was found"})


def _job_schema() -> type[Schema]:
    """:class:`common.result.JobView` as its ``to_dict`` flattens it, plus ``links``."""
    job = schema_for(result.JobView, "JobOwn", skip=("result",))
    res = schema_for(result.LivenessResult, "JobResult", rename=(("tests", "tests_detail"),),
                     skip=("seconds",))
    attrs: dict[str, Any] = {}
    for name, fld in {**job._declared_fields, **res._declared_fields}.items():
        fld = copy.copy(fld)
        if name not in ("id", "status"):  # result fields are null until the job is done
            fld.allow_none, fld.required = True, False
        attrs[name] = fld
    attrs["status"] = fields.String(required=True, validate=validate.OneOf(JOB_STATUSES))
    attrs["decision"] = fields.String(allow_none=True, validate=validate.OneOf(DECISIONS))
    attrs["face_found"] = fields.Boolean(allow_none=True, metadata={
        "description": "false when no face was found"})
    attrs["links"] = fields.Nested(LinksSchema)
    ordered = ["id", "status", "created_at", "updated_at", "tests", "score", "decision",
               "threshold", "fusion", "face_found", "face", "reasons", "tests_detail",
               "missing_tests", "timings", "operating_point", "probability", "fused_score",
               "challenge", "error",
               "explanations", "links"]
    return type("JobSchema", (Schema,), {k: attrs[k] for k in ordered})


JobSchema = _job_schema()


class BatchMultipartSchema(Schema):
    images = fields.List(_binary("one image file; repeat the field per image"))
    archive = _binary("one zip of images, instead of 'images'")
    tests = fields.String(metadata={"description": "comma-separated test names"})
    callback_url = fields.String(metadata={"description": "called once per image's job"})
    profile = fields.String(metadata={"description": "calibration profile for every image"})


class BatchItemSchema(Schema):
    name = fields.String()
    job_id = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "a job status; 'deleted' when the job "
                                                    "was erased on request (DELETE), "
                                                    "'expired' after its result TTL, "
                                                    "'error' for an image refused at "
                                                    "submission"})
    result = fields.Nested(ResultSchema, allow_none=True,
                           metadata={"description": "the result when done"})
    error = fields.String(allow_none=True)


class BatchSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(validate=validate.OneOf(("running", "done")))
    created_at = fields.String(metadata={"format": "date-time"})
    total = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    items = fields.List(fields.Nested(BatchItemSchema))
    links = fields.Nested(LinksSchema)


class ProfileSchema(Schema):
    name = fields.String(required=True)
    operating_point = fields.String(metadata={"example": "apcer<=5%"})
    threshold = fields.Float(metadata={"description": "on the calibrated probability"})
    retry_band = fields.Float(metadata={"description": "half-width in log-odds"})
    calibration = fields.String(metadata={"description": "platt or isotonic"})
    tests = fields.List(fields.String(), metadata={
        "description": "the tests it calibrates; a job with other tests gets 422 "
                       "profile_mismatch"})
    models = fields.Dict(keys=fields.String(), values=fields.Dict(), metadata={
        "description": "test → name and version of the model it was fitted on"})
    fusion = fields.String(metadata={"description": "the fusion model it was fitted on"})
    fusion_version = fields.String(metadata={"description": "that fusion model's version"})
    fitted_on = fields.Dict(metadata={"description": "images it was fitted on and when"})


class ProfilesSchema(Schema):
    default = fields.String(allow_none=True, metadata={
        "description": "the profile this API key's jobs use when the request names none"})
    profiles = fields.List(fields.Nested(ProfileSchema))


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ReadySchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("ready", "unavailable")))
    checks = fields.Dict(metadata={"description": "redis, queues → consuming workers"})
