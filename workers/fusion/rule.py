"""How per-test scores become one liveness score, until a trained fusion model exists.

Each test's score is a probability with its own calibrated threshold ``t_i``. The
rule maps every score onto a common scale — its log-odds margin over its own
threshold, ``logit(s_i) - logit(t_i)`` — averages the margins of the tests that
answered, and maps back with the logistic function. The fused threshold is
therefore 0.5 whatever subset of tests arrived, and a single test's decision is
exactly its own decision at its own threshold.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import expit, logit

FUSED_THRESHOLD = 0.5
RULE_NAME = "mean-threshold-normalised-log-odds"
_EPS = 1e-6


def fuse_scores(scores: Mapping[str, float], thresholds: Mapping[str, float]) -> float | None:
    """Fuse the available test scores; ``None`` when no test produced a score."""
    margins = [
        logit(np.clip(s, _EPS, 1 - _EPS)) - logit(np.clip(thresholds[name], _EPS, 1 - _EPS))
        for name, s in scores.items()
        if s is not None and np.isfinite(s)
    ]
    if not margins:
        return None
    return float(expit(np.mean(margins)))


def decide(score: float | None, threshold: float = FUSED_THRESHOLD) -> str:
    """``live`` / ``spoof`` at the threshold; ``retry`` when there is nothing to decide on."""
    if score is None:
        return "retry"
    return "live" if score >= threshold else "spoof"
