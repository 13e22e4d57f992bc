"""Typed results: dataclasses mirroring the service's JSON (``common/result.py`` there).

Every field of the service's ``Job``, ``Face``, ``TestDetail`` and ``Batch`` schemas
(``GET /openapi.json``) has an attribute here; fields a newer service adds are kept in
``extra`` rather than refused, so an old client keeps working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Job statuses after which nothing changes.
TERMINAL_STATUSES = frozenset({"done", "failed", "expired"})


def _known(cls: type, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    names = {f.name for f in dataclasses.fields(cls)}
    return ({k: v for k, v in data.items() if k in names},
            {k: v for k, v in data.items() if k not in names})


@dataclass(frozen=True)
class FaceBox:
    """The square face box, original-image pixels."""

    top: int
    right: int
    bottom: int
    left: int


@dataclass(frozen=True)
class Face:
    """Where the face is, how it was found, landmarks, pose and capture checks."""

    box: FaceBox
    found: bool
    method: str
    n_faces: int
    reasons: tuple[str, ...] = ()
    capture_ok: bool | None = None
    score: float | None = None
    rotation: int = 0
    landmarks: tuple[tuple[float, float], ...] = ()
    pose: dict[str, float] | None = None
    quality: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Face:
        known, _ = _known(cls, data)
        known["box"] = FaceBox(**data["box"])
        known["reasons"] = tuple(data.get("reasons") or ())
        known["landmarks"] = tuple(tuple(p) for p in data.get("landmarks") or ())
        known["quality"] = dict(data.get("quality") or {})
        return cls(**known)


@dataclass(frozen=True)
class TestDetail:
    """One test's part of a result: its P(live) and model, or why it has none."""

    __test__ = False  # not a pytest test class

    score: float | None
    model: str | None = None
    version: str | None = None
    threshold: float | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class ChallengeCheck:
    """Whether the light on the face followed a colour-flash challenge (``Job.challenge``).

    ``outcome``: passed, failed (the job is spoof), no_response or unreadable (retry);
    ``why`` names what failed.
    """

    outcome: str
    why: str | None = None
    challenge_id: str | None = None
    correlation: float | None = None
    response: float | None = None
    background_response: float | None = None
    identity_distance: float | None = None
    frames: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


@dataclass(frozen=True)
class Challenge:
    """A colour-flash challenge (``POST /v1/challenges``): show each of ``colours``
    (``#rrggbb``) for ``step_ms`` milliseconds, grab a frame at the end of each, and
    submit the frames with the job before ``expires_at``."""

    id: str
    colours: tuple[str, ...]
    step_ms: int
    frames: int
    expires_at: str
    links: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Challenge:
        known, _ = _known(cls, data)
        known["colours"] = tuple(data.get("colours") or ())
        known["links"] = dict(data.get("links") or {})
        return cls(**known)


@dataclass(frozen=True)
class Job:
    """A job as ``GET /v1/jobs/<id>`` returns it; result fields are ``None`` until done."""

    id: str
    status: str
    created_at: str | None = None
    updated_at: str | None = None
    tests: tuple[str, ...] = ()
    score: float | None = None
    decision: str | None = None
    threshold: float | None = None
    fusion: str | None = None
    face_found: bool | None = None
    face: Face | None = None
    reasons: tuple[str, ...] | None = None
    tests_detail: dict[str, TestDetail] | None = None
    missing_tests: dict[str, str] | None = None
    timings: dict[str, Any] | None = None
    operating_point: str | None = None
    probability: float | None = None
    fused_score: float | None = None
    challenge: ChallengeCheck | None = None
    error: str | None = None
    explanations: tuple[str, ...] = ()
    links: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """True once the status can no longer change (done, failed or expired)."""
        return self.status in TERMINAL_STATUSES

    @property
    def live(self) -> bool:
        """True when the service answered ``live``."""
        return self.decision == "live"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        known, extra = _known(cls, data)
        known.pop("extra", None)
        known["tests"] = tuple(data.get("tests") or ())
        known["explanations"] = tuple(data.get("explanations") or ())
        known["links"] = dict(data.get("links") or {})
        if data.get("face") is not None:
            known["face"] = Face.from_dict(data["face"])
        if data.get("reasons") is not None:
            known["reasons"] = tuple(data["reasons"])
        if data.get("challenge") is not None:
            known["challenge"] = ChallengeCheck(**_known(ChallengeCheck, data["challenge"])[0])
        if data.get("tests_detail") is not None:
            known["tests_detail"] = {name: TestDetail(**_known(TestDetail, d)[0])
                                     for name, d in data["tests_detail"].items()}
        return cls(**known, extra=extra)


@dataclass(frozen=True)
class BatchItem:
    """One image of a batch: its job (``None`` when the image was refused), status,
    result when done (the stored result's fields as a dict) and error."""

    name: str
    job_id: str | None = None
    status: str = "queued"
    result: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class Batch:
    """A batch: progress counts per status and one item per image."""

    id: str
    status: str = "running"
    created_at: str | None = None
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    items: tuple[BatchItem, ...] = ()
    links: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status == "done"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Batch:
        known, _ = _known(cls, data)
        known["items"] = tuple(BatchItem(**_known(BatchItem, i)[0])
                               for i in data.get("items") or ())
        known["counts"] = dict(data.get("counts") or {})
        known["links"] = dict(data.get("links") or {})
        return cls(**known)
