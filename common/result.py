"""The one result model: what a liveness check answers, as typed dataclasses.

Every producer and consumer of a result goes through these classes: the in-process
pipeline (:mod:`common.pipeline`) builds them, the fusion worker stores
``LivenessResult.to_dict()`` in the job store, the job view
(:func:`common.jobs.job_view`) and the batch CSV read them back with ``from_dict``,
``liveness score`` prints them, and the gateway's OpenAPI schemas
(:mod:`gateway.schemas`) are generated from their fields and ``description`` metadata.

The module is plain Python (no NumPy, no OpenCV) so that the gateway can use it without
loading any image or model code. ``to_dict`` gives JSON-ready dicts;
``from_dict(to_dict(x)) == x`` for every class.

Boxes are half-open pixel ranges in original-image coordinates, in face_recognition's
(top, right, bottom, left) order: rows ``top`` … ``bottom - 1``, columns ``left`` …
``right - 1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

#: Decisions a result may carry: ``retry`` when nothing could be judged.
DECISIONS: tuple[str, ...] = ("live", "spoof", "retry")
#: Columns every CSV row has (``liveness score --out`` and the batch CSV); one
#: ``<test>_score`` column per test follows, in the order the tests were asked for.
CSV_BASE_COLUMNS: tuple[str, ...] = (
    "path", "score_live", "decision", "face_found", "reasons", "seconds", "queued_seconds",
    "error",
)


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    """Field metadata: the description the OpenAPI document shows (plus e.g. example)."""
    return {"description": text, **extra}


@dataclass(frozen=True)
class FaceBox:
    """A face box in face_recognition's (top, right, bottom, left) order, half-open, pixels."""

    top: int = field(metadata=_doc("first row of the face (pixels from the top)"))
    right: int = field(metadata=_doc("one past the last column"))
    bottom: int = field(metadata=_doc("one past the last row"))
    left: int = field(metadata=_doc("first column"))

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(self.width, 0) * max(self.height, 0)

    def to_dict(self) -> dict[str, int]:
        return {"top": self.top, "right": self.right, "bottom": self.bottom, "left": self.left}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaceBox:
        return cls(int(data["top"]), int(data["right"]), int(data["bottom"]), int(data["left"]))


#: Face reason codes that make a capture unfit to judge: the decision is ``retry``
#: whatever the tests say (ISO/IEC 29794-5-style capture checks, :mod:`common.faces`).
#: ``multiple_faces`` is one only under ``LIVENESS_MULTIPLE_FACES=retry`` (the default);
#: the face stage then also sets ``capture_ok`` false.
CAPTURE_REASONS: dict[str, str] = {
    "no_face": "no face was detected; the whole image (largest centred square) was used",
    "multiple_faces": "more than one face was detected; the largest one was used",
    "face_too_small": "the face is smaller than the configured minimum (box side, pixels)",
    "face_partial": "part of the face lies outside the image (cut by the frame)",
    "landmarks_unreliable": "the face's landmarks could not be located consistently "
                            "(mirrored points, or no settled in-plane angle)",
    "face_turned": "the head is turned or tilted too far from frontal (yaw or pitch)",
    "too_dark": "the capture is under-exposed (nothing around the face is bright; "
                "judged without the skin, so not by skin tone)",
    "backlit": "the light is behind the person: the background is much brighter than "
               "the face",
    "overexposed": "the face is over-exposed (too many saturated pixels)",
    "too_blurry": "the face is out of focus or motion-blurred (high blur effect)",
}


@dataclass(frozen=True)
class FaceDetection:
    """Where the face is, how it was found, its landmarks, pose and capture quality.

    ``capture_ok`` is false when no face was found or a capture check failed
    (``reasons`` names which); the decision is then ``retry``.
    """

    box: FaceBox = field(metadata=_doc(
        "the square face box (side = the longer side of the detection, from its "
        "top-left corner; the seed's crop), original-image pixels"))
    found: bool = field(metadata=_doc("false when no face was found (box = centred square)"))
    method: str = field(metadata=_doc(
        "detector and search pass that found the face", example="blazeface"))
    n_faces: int = field(metadata=_doc("faces detected"))
    reasons: tuple[str, ...] = field(default=(), metadata=_doc(
        "face reason codes; each makes the decision retry (multiple_faces only under "
        "LIVENESS_MULTIPLE_FACES=retry, the default). " + "; ".join(
            f"{code}: {meaning}" for code, meaning in CAPTURE_REASONS.items()),
        example=["too_dark"]))
    capture_ok: bool | None = field(default=None, metadata=_doc(
        "true when a face was found and passed every capture check; null from a face "
        "stage that predates the checks"))
    score: float | None = field(default=None, metadata=_doc("detector confidence, 0-1"))
    rotation: int = field(default=0, metadata=_doc(
        "clockwise in-plane rotation of the face in the image, degrees (0, 90, 180, 270); "
        "crops are turned back upright"))
    landmarks: tuple[tuple[float, float], ...] = field(default=(), metadata=_doc(
        "five points (x, y) in original-image pixels: image-left eye, image-right eye, "
        "nose tip, image-left and image-right mouth corners"))
    pose: dict[str, float] | None = field(default=None, metadata=_doc(
        "head pose in degrees: yaw, pitch, roll"))
    quality: dict[str, float] = field(default_factory=dict, metadata=_doc(
        "capture measures the checks used: face_side (px), box_cut and face_cut (largest "
        "one-sided part of the detection box / face region outside the frame, 0-1), "
        "edge_margin (landmarks to the frame edge, in inter-ocular distances), mesh_tilt "
        "(degrees) and eye_mouth_drop (inter-ocular distances), yaw, pitch (degrees), "
        "exposure (95th-percentile luma of the non-skin pixels around the face, 0-255), "
        "backlight (surround / skin luminance ratio), overexposed (fraction of saturated "
        "pixels), blur (0 sharp - 1 blurred), faces (counted)"))

    @property
    def usable(self) -> bool:
        """True unless the face stage said the capture cannot be judged."""
        return self.found and self.capture_ok is not False

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": self.box.to_dict(),
            "found": self.found,
            "method": self.method,
            "n_faces": self.n_faces,
            "reasons": list(self.reasons),
            "capture_ok": self.capture_ok,
            "score": self.score,
            "rotation": self.rotation,
            "landmarks": [list(p) for p in self.landmarks],
            "pose": None if self.pose is None else dict(self.pose),
            "quality": dict(self.quality),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaceDetection:
        capture_ok = data.get("capture_ok")
        score = data.get("score")
        pose = data.get("pose")
        return cls(
            box=FaceBox.from_dict(data["box"]),
            found=bool(data["found"]),
            method=str(data["method"]),
            n_faces=int(data["n_faces"]),
            reasons=tuple(str(r) for r in data.get("reasons", ())),
            capture_ok=None if capture_ok is None else bool(capture_ok),
            score=None if score is None else float(score),
            rotation=int(data.get("rotation") or 0),
            landmarks=tuple((float(x), float(y)) for x, y in data.get("landmarks") or ()),
            pose=None if pose is None else {str(k): float(v) for k, v in pose.items()},
            quality={str(k): float(v) for k, v in (data.get("quality") or {}).items()},
        )


@dataclass(frozen=True)
class TestOutcome:
    """One test's part of a result: its P(live), or why it has none."""

    __test__ = False  # not a pytest test class

    score: float | None = field(metadata=_doc("P(live) of this test, 0-1"))
    model: str | None = field(default=None, metadata=_doc("model name"))
    version: str | None = field(default=None, metadata=_doc("model version"))
    threshold: float | None = field(default=None, metadata=_doc("the model's own threshold"))
    seconds: float = field(default=0.0, metadata=_doc("time this test took"))
    error: str | None = field(default=None, metadata=_doc("`code: message` when no score"))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestOutcome:
        score = data.get("score")
        threshold = data.get("threshold")
        return cls(
            score=None if score is None else float(score),
            model=data.get("model"),
            version=data.get("version"),
            threshold=None if threshold is None else float(threshold),
            seconds=float(data.get("seconds") or 0.0),
            error=data.get("error"),
        )


#: Outcomes of a challenge check, and the decision each leaves possible.
CHALLENGE_OUTCOMES: dict[str, str] = {
    "passed": "the light on the face followed the sequence: the tests decide",
    "failed": "the frames changed, but not as this screen's sequence would make them "
              "(decision spoof)",
    "no_response": "the face's colour did not change enough to be read: bright room, dim "
                   "screen, or a stream not lit by the screen (decision retry)",
    "unreadable": "the frames could not be measured: no face, several faces, the face "
                  "moved, or it is too dark or clipped (decision retry)",
}


@dataclass(frozen=True)
class ChallengeCheck:
    """Whether the light reflected on the face followed a colour-flash challenge."""

    outcome: str = field(metadata=_doc(
        "; ".join(f"{k}: {v}" for k, v in CHALLENGE_OUTCOMES.items()), example="passed"))
    why: str | None = field(default=None, metadata=_doc(
        "what failed: wrong_sequence, background_follows (the room changed colour as much "
        "as the face: a software tint), other_person (the frames show another face than "
        "the image), face_missing, several_faces, face_moved, face_too_close (no room "
        "visible behind the person), background_unreadable (the room behind is blown out "
        "or black), frame_sizes_differ, exposure (the face is clipped or too dark), "
        "not_checked; null when passed"))
    challenge_id: str | None = field(default=None, metadata=_doc("the challenge's id"))
    correlation: float | None = field(default=None, metadata=_doc(
        "how closely the face's colour changes followed the sequence, -1-1"))
    response: float | None = field(default=None, metadata=_doc(
        "strength of the face's response: the screen's light relative to the room's"))
    background_response: float | None = field(default=None, metadata=_doc(
        "the same, measured on the room behind the person"))
    identity_distance: float | None = field(default=None, metadata=_doc(
        "face_recognition distance between the face of the image and of the frames "
        "(same person below 0.6)"))
    frames: int = field(default=0, metadata=_doc("frames received"))
    seconds: float = field(default=0.0, metadata=_doc("time the check took"))

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    @property
    def reason(self) -> str | None:
        """The result's reason code (``challenge_<outcome>[:<why>]``); None when passed."""
        if self.passed:
            return None
        return f"challenge_{self.outcome}" + (f":{self.why}" if self.why else "")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChallengeCheck:
        def number(name: str) -> float | None:
            value = data.get(name)
            return None if value is None else float(value)

        return cls(outcome=str(data["outcome"]), why=data.get("why"),
                   challenge_id=data.get("challenge_id"),
                   correlation=number("correlation"), response=number("response"),
                   background_response=number("background_response"),
                   identity_distance=number("identity_distance"),
                   frames=int(data.get("frames") or 0),
                   seconds=float(data.get("seconds") or 0.0))


@dataclass(frozen=True)
class LivenessResult:
    """The answer for one image; ``to_dict`` is the JSON the CLI prints and jobs store.

    ``missing_tests`` (test → why it has no score) and ``timings`` are filled by the
    service (the fusion worker); the in-process pipeline leaves them ``None`` and they
    are then omitted from ``to_dict``.
    """

    score: float | None = field(metadata=_doc(
        "the liveness score, 0-1, on the scale of `threshold`: the fused P(live), or with "
        "a calibration profile the profile's calibrated probability; the decision is live "
        "when score >= threshold (outside the retry band); null when no test scored"))
    decision: str = field(metadata=_doc("live, spoof, or retry when nothing could be judged"))
    threshold: float = field(metadata=_doc(
        "the decision threshold, on the scale of `score`"))
    fusion: str = field(metadata=_doc("name of the fusion that combined the tests"))
    face: FaceDetection = field(metadata=_doc("the face the tests used"))
    tests: dict[str, TestOutcome] = field(metadata=_doc("test name → its outcome"))
    seconds: float = field(default=0.0, metadata=_doc(
        "processing time of the image (in the service: from its first task's start)"))
    reasons: tuple[str, ...] = field(default=(), metadata=_doc(
        "reason codes: the face stage's (see face.reasons), score_in_retry_band (the fused "
        "score is too close to its threshold to decide), test_failed:<test> for each "
        "test without a score, and challenge_<outcome>[:<why>] when a colour-flash "
        "challenge did not pass (see challenge)"))
    missing_tests: dict[str, str] | None = field(
        default=None, metadata=_doc("test → why it has no score"))
    timings: dict[str, Any] | None = field(default=None, metadata=_doc("where the time went"))
    operating_point: str | None = field(default=None, metadata=_doc(
        "the operating point the threshold was chosen at (e.g. apcer<=5%); null for the "
        "default rule"))
    probability: float | None = field(default=None, metadata=_doc(
        "calibrated probability of a bona fide presentation (a trained fusion's Platt "
        "scaling on out-of-fold scores, or the request's calibration profile); null when "
        "uncalibrated"))
    fused_score: float | None = field(default=None, metadata=_doc(
        "with a calibration profile: the fusion's score before the profile mapped it "
        "(then `score` is the calibrated probability); null without a profile"))
    challenge: ChallengeCheck | None = field(default=None, metadata=_doc(
        "the colour-flash challenge check of a job submitted with one (POST "
        "/v1/challenges); null otherwise. Not passed: the decision is spoof (failed) or "
        "retry, and `reasons` names it"))

    @property
    def face_found(self) -> bool:
        return self.face.found

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "score": self.score,
            "decision": self.decision,
            "threshold": self.threshold,
            "fusion": self.fusion,
            "face_found": self.face.found,
            "face": self.face.to_dict(),
            "reasons": list(self.reasons),
            "tests": {name: outcome.to_dict() for name, outcome in self.tests.items()},
            "seconds": self.seconds,
            "operating_point": self.operating_point,
            "probability": self.probability,
            "fused_score": self.fused_score,
            "challenge": None if self.challenge is None else self.challenge.to_dict(),
        }
        if self.missing_tests is not None:
            out["missing_tests"] = dict(self.missing_tests)
        if self.timings is not None:
            out["timings"] = dict(self.timings)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LivenessResult:
        score = data.get("score")
        missing = data.get("missing_tests")
        timings = data.get("timings")
        return cls(
            score=None if score is None else float(score),
            decision=str(data["decision"]),
            threshold=float(data["threshold"]),
            fusion=str(data["fusion"]),
            face=FaceDetection.from_dict(data["face"]),
            tests={str(k): TestOutcome.from_dict(v) for k, v in (data.get("tests") or {}).items()},
            seconds=float(data.get("seconds") or 0.0),
            reasons=tuple(str(r) for r in data.get("reasons", ())),
            operating_point=data.get("operating_point"),
            probability=None if data.get("probability") is None else float(
                data["probability"]),
            fused_score=None if data.get("fused_score") is None else float(
                data["fused_score"]),
            missing_tests=None if missing is None else {str(k): str(v)
                                                        for k, v in missing.items()},
            timings=None if timings is None else dict(timings),
            challenge=(ChallengeCheck.from_dict(data["challenge"]) if data.get("challenge")
                       else None),
        )


@dataclass(frozen=True)
class JobView:
    """A job as ``GET /v1/jobs/<id>`` and webhooks show it; result fields null until done."""

    id: str = field(metadata=_doc("job id"))
    status: str = field(metadata=_doc("queued, running, done, failed or expired"))
    created_at: str | None = field(default=None, metadata=_doc("ISO 8601 UTC"))
    updated_at: str | None = field(default=None, metadata=_doc("ISO 8601 UTC"))
    tests: tuple[str, ...] = field(default=(), metadata=_doc("the tests the job runs"))
    result: LivenessResult | None = None
    error: str | None = field(default=None, metadata=_doc("why a job failed"))
    explanations: tuple[str, ...] = field(default=(), metadata=_doc(
        "tests whose explanation image (Grad-CAM PNG) is stored for this job (asked for "
        "with explain=true); fetch links.explanations[<test>]"))

    def to_dict(self) -> dict[str, Any]:
        """The public JSON: the job's fields, then the result's, flattened."""
        r = self.result
        return {
            "id": self.id,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "tests": list(self.tests),
            "score": r.score if r else None,
            "decision": r.decision if r else None,
            "threshold": r.threshold if r else None,
            "fusion": r.fusion if r else None,
            "face_found": r.face.found if r else None,
            "face": r.face.to_dict() if r else None,
            "reasons": list(r.reasons) if r else None,
            "tests_detail": {n: o.to_dict() for n, o in r.tests.items()} if r else None,
            "missing_tests": dict(r.missing_tests) if r and r.missing_tests is not None
            else None,
            "timings": dict(r.timings) if r and r.timings is not None else None,
            "operating_point": r.operating_point if r else None,
            "probability": r.probability if r else None,
            "fused_score": r.fused_score if r else None,
            "challenge": r.challenge.to_dict() if r and r.challenge else None,
            "error": self.error or None,
            "explanations": list(self.explanations),
        }


def csv_columns(tests: Iterable[str]) -> list[str]:
    """The CSV header: :data:`CSV_BASE_COLUMNS` then ``<test>_score`` per test."""
    return [*CSV_BASE_COLUMNS, *(f"{name}_score" for name in tests)]


#: First characters that make a spreadsheet read a text cell as a formula (OWASP, "CSV
#: Injection"): ``=``, ``+``, ``-``, ``@``, tab and carriage return.
FORMULA_TRIGGERS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(cell: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, prefixed with ``'`` (shown as
    text); other text and every number (``int``, ``float``, ``bool``) unchanged.

    The escaping OWASP's "CSV Injection" page recommends; file names are user input.
    """
    if isinstance(cell, str) and cell.startswith(FORMULA_TRIGGERS):
        return "'" + cell
    return cell


def csv_row(path: str, result: LivenessResult | None, error: str | None, seconds: float,
            tests: Iterable[str], queued_seconds: float = 0.0) -> dict[str, Any]:
    """One CSV row (``liveness score --out`` and ``GET /v1/batches/<id>?format=csv``).

    ``result`` is ``None`` for an image that could not be scored; then ``decision`` is
    ``error`` and ``error`` says why. ``seconds`` is the processing time, in seconds;
    ``queued_seconds`` the time the image waited for a worker (0 in process). Text cells
    that begin like a formula are escaped (:func:`escape_formula`); numbers stay numbers.
    """
    row: dict[str, Any] = {
        "path": path,
        "score_live": "" if result is None or result.score is None else result.score,
        "decision": "error" if result is None else result.decision,
        "face_found": "" if result is None else result.face.found,
        "reasons": "" if result is None else ";".join(result.reasons),
        "seconds": round(seconds, 4),
        "queued_seconds": round(queued_seconds, 4),
        "error": error or "",
    }
    for name in tests:
        outcome = result.tests.get(name) if result is not None else None
        score = outcome.score if outcome is not None else None
        row[f"{name}_score"] = "" if score is None else round(score, 6)
    return {column: escape_formula(cell) for column, cell in row.items()}
