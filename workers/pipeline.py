"""In-process scoring: the exact path the CLI uses and the workers reproduce.

An image is decoded and validated once, its face located once, every requested
test scores it, and the fusion rule turns the scores into one answer. Tests are
loaded once per process and reused.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from common.config import Settings, get_settings
from common.errors import LivenessError, ModelError
from common.faces import FaceDetection, locate_face
from common.liveness_test import LivenessTest
from workers.fusion.rule import FUSED_THRESHOLD, RULE_NAME, decide, fuse_scores

#: Test name → "module:Class" with a ``from_dir(folder)`` constructor.
TEST_REGISTRY: dict[str, str] = {
    "quality": "workers.quality.scorer:QualityTest",
}
DEFAULT_TESTS: tuple[str, ...] = ("quality",)
#: Tests whose pools and queues exist but whose model code and files ship later.
PLANNED_TESTS: dict[str, str] = {
    "cnn": "the ResNet50 face-crop CNN",
    "depth3d": "the VRN + VoxNet 3D mask test",
}


@dataclass
class TestOutcome:
    """One test's part of a result."""

    score: float | None
    model: str | None = None
    version: str | None = None
    threshold: float | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class LivenessResult:
    """The answer for one image; ``to_dict`` is the JSON the CLI and API return."""

    score_live: float | None
    decision: str
    threshold: float
    face: FaceDetection
    tests: dict[str, TestOutcome]
    fusion: str = RULE_NAME
    seconds: float = 0.0
    reasons: list[str] = field(default_factory=list)

    @property
    def face_found(self) -> bool:
        return self.face.found

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score_live,
            "decision": self.decision,
            "threshold": self.threshold,
            "fusion": self.fusion,
            "face_found": self.face.found,
            "face": self.face.to_dict(),
            "reasons": list(self.reasons),
            "tests": {name: asdict(outcome) for name, outcome in self.tests.items()},
            "seconds": self.seconds,
        }


def load_test(name: str, models_dir: Path) -> LivenessTest:
    """Import and load one test's model from ``models_dir/<name>/``."""
    if name in PLANNED_TESTS:
        raise ModelError(
            f"no model for the {name!r} test ({PLANNED_TESTS[name]}) is shipped yet; "
            f"its pool runs but cannot score until {models_dir / name}/ holds one"
        )
    if name not in TEST_REGISTRY:
        raise ModelError(f"unknown test {name!r}; known tests: {', '.join(TEST_REGISTRY)}")
    module_name, class_name = TEST_REGISTRY[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls.from_dir(models_dir / name)


@cache
def _cached_test(name: str, models_dir: Path) -> LivenessTest:
    return load_test(name, models_dir)


def load_tests(names: Iterable[str], settings: Settings | None = None) -> dict[str, LivenessTest]:
    """The requested tests, loaded once per process per models folder."""
    settings = settings or get_settings()
    return {name: _cached_test(name, Path(settings.models_dir).resolve()) for name in names}


def run_test(test: LivenessTest, image: np.ndarray, face: FaceDetection) -> TestOutcome:
    """Score with one test; a failure becomes an outcome with ``error``, not an exception."""
    start = time.perf_counter()
    try:
        score: float | None = test.score(image, face)
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


def combine(
    face: FaceDetection, outcomes: Mapping[str, TestOutcome], seconds: float
) -> LivenessResult:
    """Fuse whatever test outcomes arrived into one result (also used by the fusion worker)."""
    scores = {n: o.score for n, o in outcomes.items() if o.score is not None}
    thresholds = {n: o.threshold if o.threshold is not None else 0.5 for n, o in outcomes.items()}
    fused = fuse_scores(scores, thresholds)
    reasons = list(face.reasons)
    reasons += [f"test_failed:{n}" for n, o in outcomes.items() if o.score is None]
    return LivenessResult(
        score_live=None if fused is None else round(fused, 6),
        decision=decide(fused),
        threshold=FUSED_THRESHOLD,
        face=face,
        tests=dict(outcomes),
        seconds=round(seconds, 4),
        reasons=reasons,
    )


def score_image(
    image: np.ndarray,
    tests: Mapping[str, LivenessTest],
    settings: Settings | None = None,
) -> LivenessResult:
    """Score one decoded RGB image with the given loaded tests."""
    settings = settings or get_settings()
    start = time.perf_counter()
    face = locate_face(image, settings)
    outcomes = {name: run_test(test, image, face) for name, test in tests.items()}
    return combine(face, outcomes, time.perf_counter() - start)
