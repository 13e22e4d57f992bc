"""The job pipeline, in process: intake → face stage (once) → tests → fusion.

``liveness score`` and ``liveness evaluate`` run it directly; the service runs the same
stages as Celery tasks (the face stage on the ``face`` queue, each test on its own
queue, fusion on ``fusion``) and calls the same functions — :func:`run_face_stage`,
:func:`run_test` and :func:`combine` — so both give the same answer for the same image.
Tests that ignore the face (``needs_face = False``, :mod:`common.liveness_test`) are given
``None`` in both, so the service may run them alongside the face stage.

Tests are found through the registry (:mod:`common.registry`) and loaded once per
process; the fusion is loaded once per process from the models folder
(:func:`common.fusion.load_fusion`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path

import numpy as np

from common.challenge.check import check_challenge
from common.challenge.sequence import parse_hex
from common.config import Settings, get_settings
from common.errors import ImageError, LivenessError
from common.faces import locate_face
from common.faces.detectors import get_detector
from common.fusion import FusedScore, Fusion, decide, load_fusion
from common.imageio import decode_image
from common.liveness_test import LivenessTest, needs_face
from common.profiles import Profile, ProfileCatalog
from common.registry import TestRegistry, default_registry
from common.result import ChallengeCheck, FaceDetection, LivenessResult, TestOutcome

#: Reason code added for every test that produced no score.
TEST_FAILED = "test_failed"
#: Reason code of a fused score inside the retry band around its threshold.
RETRY_BAND = "score_in_retry_band"
#: Reason code (``profile_not_applicable:<name>``) of a job whose calibration profile
#: could not be applied because one of its tests gave no score: the decision is ``retry``.
PROFILE_NOT_APPLICABLE = "profile_not_applicable"


def load_tests(names: Iterable[str], settings: Settings | None = None,
               registry: TestRegistry | None = None) -> dict[str, LivenessTest]:
    """The named tests, loaded once per process per models folder (``ModelError``)."""
    settings = settings or get_settings()
    registry = registry or default_registry()
    return {name: registry.load_scorer(name, settings.models_dir) for name in names}


@cache
def _cached_fusion(models_dir: Path, operating_point: str) -> Fusion:
    return load_fusion(models_dir, operating_point)


def fusion_for(settings: Settings | None = None) -> Fusion:
    """The fusion of ``settings.models_dir`` at ``settings.operating_point``, loaded once
    per process."""
    settings = settings or get_settings()
    return _cached_fusion(Path(settings.models_dir).resolve(), settings.operating_point)


def run_face_stage(image: np.ndarray, settings: Settings | None = None) -> FaceDetection:
    """The face stage: where the face is (run once per image; every test gets it)."""
    return locate_face(image, settings or get_settings())


def run_challenge_check(image: np.ndarray, face: FaceDetection, frames: Sequence[bytes] | None,
                        challenge: Mapping[str, object], settings: Settings | None = None
                        ) -> ChallengeCheck:
    """Check a job's colour-flash answer: ``frames`` (encoded images, one per colour of
    ``challenge["colours"]``, ``#rrggbb``) against the job's ``image`` (RGB uint8) and its
    located ``face`` (:func:`common.challenge.check_challenge`). Frames that are gone or
    cannot be decoded give ``unreadable`` / ``not_checked``; never raises on content."""
    settings = settings or get_settings()
    challenge_id = str(challenge.get("id") or "") or None
    colours = [parse_hex(str(c)) for c in challenge["colours"]]  # type: ignore[attr-defined]
    try:
        decoded = [decode_image(frame, settings) for frame in frames or ()]
    except ImageError:
        decoded = []
    if len(decoded) != len(colours):
        return ChallengeCheck(outcome="unreadable", why="not_checked",
                              challenge_id=challenge_id, frames=len(frames or ()))
    return check_challenge(image, face.box if face.found else None, decoded, colours,
                           get_detector(settings.face_detector), settings, challenge_id)


def run_test(test: LivenessTest, image: np.ndarray, face: FaceDetection | None
             ) -> TestOutcome:
    """Score with one test; a failure becomes an outcome with ``error``, not an exception.

    A test with ``needs_face = False`` is given ``None`` whatever ``face`` is.
    """
    start = time.perf_counter()
    try:
        score: float | None = test.score(image, face if needs_face(test) else None)
        error = None
    except LivenessError as exc:
        score, error = None, f"{exc.code}: {exc.message}"
    return TestOutcome(
        score=score,
        model=test.info.name,
        version=test.info.version,
        threshold=test.info.threshold,
        seconds=round(time.perf_counter() - start, 4),
        error=error,
    )


def profile_catalog(settings: Settings | None = None) -> ProfileCatalog:
    """The calibration profiles of ``settings.models_dir`` (one catalog per process, which
    re-reads the folder when a profile file changes)."""
    settings = settings or get_settings()
    return _cached_catalog(Path(settings.models_dir).resolve())


def profiles_for(settings: Settings | None = None) -> dict[str, Profile]:
    """The calibration profiles in force now (name → profile)."""
    return profile_catalog(settings).all()


@cache
def _cached_catalog(models_dir: Path) -> ProfileCatalog:
    return ProfileCatalog(models_dir)


def combine(face: FaceDetection, outcomes: Mapping[str, TestOutcome], seconds: float,
            fusion: Fusion, profile: Profile | None = None,
            challenge: ChallengeCheck | None = None) -> LivenessResult:
    """Fuse whatever test outcomes arrived into one result (the fusion worker's path too).

    A capture the face stage could not judge (no face, or a failed capture check:
    ``face.usable`` is false) gets the decision ``retry`` whatever the tests scored; the
    fused score is still reported. Only the tests ever decide ``spoof``.

    With a calibration ``profile`` (:mod:`common.profiles`) the fused score is mapped to
    the profile's calibrated probability, which becomes the result's ``score`` and is
    decided at the profile's threshold, retry band and operating point (the fusion's own
    score is kept as ``fused_score``): ``score`` and ``threshold`` are always on one
    scale. The profile must fit the job — its tests, the model of every test that scored
    and the fusion model (:meth:`Profile.check_scored`), else
    :class:`common.profiles.ProfileMismatchError`. When one of its tests gave no score
    the fused score is another model's (a subset's), which the profile does not
    calibrate: it is not applied and the decision is ``retry``
    (``profile_not_applicable:<name>``).

    A job that answered a colour-flash ``challenge`` is ``live`` only when the check
    passed: ``failed`` makes it ``spoof``, ``no_response`` and ``unreadable`` make a
    decision that is not already ``spoof`` ``retry``; its reason code is added.
    """
    fused = fusion.fuse(outcomes)
    fused_score = None
    extra: list[str] = []
    if profile is not None:
        profile.check_scored(outcomes, fusion.name, fusion.version)
        complete = all(o.score is not None for o in outcomes.values())
        if fused.score is not None and complete:
            probability = profile.calibrate(fused.score)
            fused_score = fused.score
            fused = FusedScore(probability, profile.threshold, "", f"{fused.name}@{profile.name}",
                               profile.operating_point, probability, profile.retry_band)
        elif fused.score is not None:
            extra.append(f"{PROFILE_NOT_APPLICABLE}:{profile.name}")
    # Score and threshold at full precision, and the decision taken on exactly those
    # numbers: ``score >= threshold`` says what the decision says (rounding either could
    # move the boundary: a profile's threshold may be 3e-7). The last bits of a score
    # vary between processes (multi-threaded float reductions, ~1e-11).
    score, threshold = fused.score, fused.threshold
    fused_decision = "retry" if extra else decide(score, threshold, fused.retry_band)
    decision = fused_decision if face.usable else "retry"
    reasons = [*face.reasons, *(f"{TEST_FAILED}:{n}" for n, o in outcomes.items()
                                if o.score is None), *extra]
    if score is not None and fused_decision == "retry" and not extra:
        reasons.append(RETRY_BAND)
    if challenge is not None and not challenge.passed:
        if challenge.outcome == "failed":
            decision = "spoof"
        elif decision != "spoof":
            decision = "retry"
        reasons.append(challenge.reason or "")
    return LivenessResult(
        score=score,
        decision=decision,
        threshold=threshold,
        fusion=fused.name,
        face=face,
        tests=dict(outcomes),
        seconds=round(seconds, 4),
        reasons=tuple(reasons),
        operating_point=fused.operating_point,
        probability=fused.probability,
        fused_score=fused_score,
        challenge=challenge,
    )


def score_image(image: np.ndarray, tests: Mapping[str, LivenessTest],
                settings: Settings | None = None, fusion: Fusion | None = None,
                profile: Profile | None = None) -> LivenessResult:
    """Score one decoded RGB uint8 image (H, W, 3) with the given loaded tests (decided
    with a calibration ``profile`` when given)."""
    settings = settings or get_settings()
    fusion = fusion or fusion_for(settings)
    start = time.perf_counter()
    face = run_face_stage(image, settings)
    outcomes = {name: run_test(test, image, face) for name, test in tests.items()}
    return combine(face, outcomes, time.perf_counter() - start, fusion, profile)
