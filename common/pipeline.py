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
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

import numpy as np

from common.config import Settings, get_settings
from common.errors import LivenessError
from common.faces import locate_face
from common.fusion import FusedScore, Fusion, decide, load_fusion
from common.liveness_test import LivenessTest, needs_face
from common.profiles import Profile, load_profiles
from common.registry import TestRegistry, default_registry
from common.result import FaceDetection, LivenessResult, TestOutcome

#: Reason code added for every test that produced no score.
TEST_FAILED = "test_failed"
#: Reason code of a fused score inside the retry band around its threshold.
RETRY_BAND = "score_in_retry_band"


def load_tests(names: Iterable[str], settings: Settings | None = None,
               registry: TestRegistry | None = None) -> dict[str, LivenessTest]:
    """The named tests, loaded once per process per models folder (``ModelError``)."""
    settings = settings or get_settings()
    registry = registry or default_registry()
    return {name: registry.load_scorer(name, settings.models_dir) for name in names}


@cache
def _cached_fusion(models_dir: Path) -> Fusion:
    return load_fusion(models_dir)


def fusion_for(settings: Settings | None = None) -> Fusion:
    """The fusion of ``settings.models_dir``, loaded once per process."""
    settings = settings or get_settings()
    return _cached_fusion(Path(settings.models_dir).resolve())


def run_face_stage(image: np.ndarray, settings: Settings | None = None) -> FaceDetection:
    """The face stage: where the face is (run once per image; every test gets it)."""
    return locate_face(image, settings or get_settings())


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


def profiles_for(settings: Settings | None = None) -> dict[str, Profile]:
    """The calibration profiles of ``settings.models_dir``, loaded once per process."""
    settings = settings or get_settings()
    return _cached_profiles(Path(settings.models_dir).resolve())


@cache
def _cached_profiles(models_dir: Path) -> dict[str, Profile]:
    return load_profiles(models_dir)


def combine(face: FaceDetection, outcomes: Mapping[str, TestOutcome], seconds: float,
            fusion: Fusion, profile: Profile | None = None) -> LivenessResult:
    """Fuse whatever test outcomes arrived into one result (the fusion worker's path too).

    A capture the face stage could not judge (no face, or a failed capture check:
    ``face.usable`` is false) gets the decision ``retry`` whatever the tests scored; the
    fused score is still reported. Only the tests ever decide ``spoof``.

    With a calibration ``profile`` (:mod:`common.profiles`) the fused score is mapped to
    the profile's calibrated probability, which is decided at the profile's threshold,
    retry band and operating point.
    """
    fused = fusion.fuse(outcomes)
    if profile is not None and fused.score is not None:
        probability = profile.calibrate(fused.score)
        fused = FusedScore(fused.score, profile.threshold,
                           decide(probability, profile.threshold, profile.retry_band),
                           f"{fused.name}@{profile.name}", profile.operating_point,
                           probability)
    decision = fused.decision if face.usable else "retry"
    reasons = [*face.reasons, *(f"{TEST_FAILED}:{n}" for n, o in outcomes.items()
                                if o.score is None)]
    if fused.score is not None and fused.decision == "retry":
        reasons.append(RETRY_BAND)
    return LivenessResult(
        score=None if fused.score is None else round(fused.score, 6),
        decision=decision,
        threshold=fused.threshold,
        fusion=fused.name,
        face=face,
        tests=dict(outcomes),
        seconds=round(seconds, 4),
        reasons=tuple(reasons),
        operating_point=fused.operating_point,
        probability=None if fused.probability is None else round(fused.probability, 6),
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
