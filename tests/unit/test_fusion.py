"""Fusion: the default threshold-normalised log-odds rule, the trained linear model, loading."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from common.errors import ModelError
from common.fusion import (
    DEFAULT_RULE_NAME,
    DEFAULT_THRESHOLD,
    LinearLogOddsFusion,
    NormalisedLogOddsFusion,
    decide,
    load_fusion,
)
from common.modelfolder import manifest_digest, write_model_folder
from common.result import TestOutcome

RULE = NormalisedLogOddsFusion()


def outcomes(**scores: tuple[float | None, float]) -> dict[str, TestOutcome]:
    """name=(score, threshold) → outcomes."""
    return {n: TestOutcome(score=s, threshold=t) for n, (s, t) in scores.items()}


def test_single_test_keeps_its_own_decision():
    rng = np.random.default_rng(1)
    for score, threshold in rng.uniform(0.01, 0.99, size=(200, 2)):
        fused = RULE.fuse(outcomes(quality=(float(score), float(threshold))))
        assert fused.threshold == DEFAULT_THRESHOLD and fused.name == DEFAULT_RULE_NAME
        assert (fused.decision == "live") == (score >= threshold)


def test_score_at_its_threshold_is_neutral():
    assert RULE.fuse(outcomes(a=(0.3, 0.3))).score == pytest.approx(0.5)


def test_mean_of_margins():
    # logit(0.8) - logit(0.5) = 1.386; logit(0.2) - logit(0.5) = -1.386 -> cancel out
    assert RULE.fuse(outcomes(a=(0.8, 0.5), b=(0.2, 0.5))).score == pytest.approx(0.5)
    assert RULE.fuse(outcomes(a=(0.9, 0.5), b=(0.6, 0.5))).score > 0.6


def test_missing_and_failed_tests_are_ignored():
    assert RULE.fuse(outcomes(a=(0.9, 0.5), b=(None, 0.5))).score == pytest.approx(0.9)
    nan = RULE.fuse(outcomes(a=(float("nan"), 0.5)))
    assert nan.score is None and nan.decision == "retry"
    assert RULE.fuse({}).score is None


def test_a_missing_threshold_counts_as_one_half():
    fused = RULE.fuse({"a": TestOutcome(score=0.7, threshold=None)})
    assert fused.score == pytest.approx(0.7)


def test_extreme_scores_stay_finite():
    fused = RULE.fuse(outcomes(a=(0.0, 0.5), b=(1.0, 0.5)))
    assert fused.score is not None and 0.0 < fused.score < 1.0


def test_decide():
    assert decide(None, 0.5) == "retry"
    assert decide(0.5, 0.5) == "live"
    assert decide(0.4999, 0.5) == "spoof"


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


LINEAR = {
    "quality": {"weights": {"quality": 1.0}, "bias": 0.0},
    "cnn+quality": {"weights": {"quality": 0.5, "cnn": 2.0}, "bias": -1.0},
}


def test_linear_fusion_uses_the_model_of_the_tests_that_answered():
    fusion = LinearLogOddsFusion("lda-v1", 0.6, LINEAR)
    both = fusion.fuse(outcomes(quality=(0.7, 0.5), cnn=(0.9, 0.5)))
    expected = 1 / (1 + math.exp(-(-1.0 + 0.5 * _logit(0.7) + 2.0 * _logit(0.9))))
    assert both.score == pytest.approx(expected) and both.name == "lda-v1"
    assert both.threshold == 0.6 and both.decision == decide(expected, 0.6)
    # cnn failed: the quality-only model answers
    only = fusion.fuse(outcomes(quality=(0.7, 0.5), cnn=(None, 0.5)))
    assert only.score == pytest.approx(0.7)
    # no fitted subset of the tests that answered: nothing to decide on
    assert fusion.fuse(outcomes(cnn=(0.9, 0.5))).decision == "retry"


def test_linear_fusion_falls_back_to_the_largest_fitted_subset():
    fusion = LinearLogOddsFusion("lda-v1", 0.5, LINEAR)
    three = fusion.fuse(outcomes(quality=(0.7, 0.5), cnn=(0.9, 0.5), depth3d=(0.1, 0.5)))
    assert three.score == fusion.fuse(outcomes(quality=(0.7, 0.5), cnn=(0.9, 0.5))).score


def test_linear_fusion_rejects_inconsistent_subsets():
    with pytest.raises(ModelError):
        LinearLogOddsFusion("x", 0.5, {"a+b": {"weights": {"a": 1.0}, "bias": 0.0}})
    with pytest.raises(ModelError):
        LinearLogOddsFusion("x", 0.5, {})


def test_load_fusion_default_and_from_a_model_folder(tmp_path):
    assert isinstance(load_fusion(tmp_path), NormalisedLogOddsFusion)  # no models/fusion
    manifest = {"format": "linear-log-odds", "format_version": 1,
                "info": {"name": "lda-v1", "version": "1", "threshold": 0.6},
                "params": {"subsets": LINEAR}}
    write_model_folder(tmp_path / "fusion", manifest, {"README.json": b"{}"})
    fusion = load_fusion(tmp_path)
    assert isinstance(fusion, LinearLogOddsFusion) and fusion.name == "lda-v1"


def test_load_fusion_refuses_unknown_formats_and_tampered_files(tmp_path):
    manifest = {"format": "neural-magic", "info": {"name": "x", "threshold": 0.5}}
    write_model_folder(tmp_path / "fusion", manifest, {"w.json": b"[1]"})
    with pytest.raises(ModelError, match="unknown fusion format"):
        load_fusion(tmp_path)
    doc = json.loads((tmp_path / "fusion/model.json").read_text())
    doc["format"] = "linear-log-odds"
    (tmp_path / "fusion/model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="does not match its manifest_sha256"):
        load_fusion(tmp_path)  # model.json edited by hand
    (tmp_path / "fusion/model.json").write_text(json.dumps(
        {**doc, "manifest_sha256": manifest_digest(doc)}))
    (tmp_path / "fusion/w.json").write_text("[2]")
    with pytest.raises(ModelError, match="SHA-256"):
        load_fusion(tmp_path)  # a listed file swapped


# --- the capture gate in the pipeline's combine ------------------------------------------


def _face(found: bool, capture_ok: bool | None, reasons: tuple[str, ...]):
    from common.result import FaceBox, FaceDetection

    return FaceDetection(FaceBox(0, 10, 10, 0), found, "blazeface" if found else "whole_image",
                         int(found), reasons, capture_ok=capture_ok)


@pytest.mark.parametrize(("found", "capture_ok", "reasons", "expected"), [
    (True, True, (), "live"),
    (True, None, (), "live"),                     # a face stage that predates the checks
    (True, False, ("too_dark",), "retry"),
    (True, False, ("too_blurry", "face_turned"), "retry"),
    (False, False, ("no_face",), "retry"),
    (True, True, ("multiple_faces",), "live"),    # LIVENESS_MULTIPLE_FACES=largest
])
def test_combine_answers_retry_when_the_capture_cannot_be_judged(found, capture_ok, reasons,
                                                                   expected):
    from common.pipeline import combine

    high = outcomes(quality=(0.99, 0.5))
    result = combine(_face(found, capture_ok, reasons), high, 0.1, RULE)
    assert result.decision == expected
    assert result.score is not None and result.score > 0.9  # the score is still reported
    assert all(r in result.reasons for r in reasons)
    low = combine(_face(found, capture_ok, reasons), outcomes(quality=(0.01, 0.5)), 0.1, RULE)
    assert low.decision == ("spoof" if expected == "live" else "retry")  # never spoof either
