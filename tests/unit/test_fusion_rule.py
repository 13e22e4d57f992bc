"""The documented fusion rule: threshold-normalised mean log-odds."""

from __future__ import annotations

import numpy as np
import pytest

from workers.fusion.rule import FUSED_THRESHOLD, decide, fuse_scores


def test_single_test_keeps_its_own_decision():
    rng = np.random.default_rng(1)
    for score, threshold in rng.uniform(0.01, 0.99, size=(200, 2)):
        fused = fuse_scores({"quality": score}, {"quality": threshold})
        assert (fused >= FUSED_THRESHOLD) == (score >= threshold)


def test_score_at_its_threshold_is_neutral():
    assert fuse_scores({"a": 0.3}, {"a": 0.3}) == pytest.approx(0.5)


def test_mean_of_margins():
    # logit(0.8) - logit(0.5) = 1.386; logit(0.2) - logit(0.5) = -1.386 -> cancel out
    assert fuse_scores({"a": 0.8, "b": 0.2}, {"a": 0.5, "b": 0.5}) == pytest.approx(0.5)
    assert fuse_scores({"a": 0.9, "b": 0.6}, {"a": 0.5, "b": 0.5}) > 0.6


def test_missing_and_failed_tests_are_ignored():
    assert fuse_scores({"a": 0.9, "b": None}, {"a": 0.5, "b": 0.5}) == pytest.approx(0.9)
    assert fuse_scores({"a": float("nan")}, {"a": 0.5}) is None
    assert fuse_scores({}, {}) is None


def test_extreme_scores_stay_finite():
    fused = fuse_scores({"a": 0.0, "b": 1.0}, {"a": 0.5, "b": 0.5})
    assert fused is not None and 0.0 < fused < 1.0


def test_decide():
    assert decide(None) == "retry"
    assert decide(0.5) == "live"
    assert decide(0.4999) == "spoof"
