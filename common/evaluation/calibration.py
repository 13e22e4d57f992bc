"""Calibration of scores as probabilities: reliability, expected calibration error,
score calibrators (Platt, isotonic) and bootstrap confidence intervals.

* Reliability diagram and expected calibration error (ECE): Naeini, Cooper & Hauskrecht,
  "Obtaining well calibrated probabilities using Bayesian binning", AAAI 2015; Guo et
  al., "On calibration of modern neural networks", ICML 2017 (equal-width bins, ECE =
  Σ_b (n_b / N) · |mean(y_b) − mean(p_b)|).
* Platt scaling: Platt, "Probabilistic outputs for support vector machines", 1999
  (a logistic regression on the log-odds of the score).
* Isotonic regression: Zadrozny & Elkan, KDD 2002 (scikit-learn's
  ``IsotonicRegression``).
* Percentile bootstrap over images (Efron & Tibshirani 1993), resampling bona fide and
  attack presentations separately so each resample has both.

Scores and probabilities are float arrays in [0, 1] of P(bona fide); labels are 1 for
bona fide and 0 for attack presentations.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.calibration import Calibrator, log_odds


def _check(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(p, float).ravel(), np.asarray(y, int).ravel()
    if p.shape != y.shape or p.size == 0:
        raise ValueError("probabilities and labels must be non-empty and of one length")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must be finite and within [0, 1]")
    return p, y


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of ``p``: (mean predicted, observed bona fide rate, count);
    empty bins are NaN with count 0."""
    p, y = _check(p, y)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_p = np.bincount(index, weights=p, minlength=bins) / counts
        rate = np.bincount(index, weights=y, minlength=bins) / counts
    return mean_p, rate, counts


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE = Σ_b (n_b / N) · |rate_b − mean_p_b| over equal-width bins (module docstring)."""
    mean_p, rate, counts = reliability(p, y, bins)
    used = counts > 0
    return float(np.sum(counts[used] / counts.sum() * np.abs(rate[used] - mean_p[used])))


def fit_calibrator(scores: np.ndarray, labels: np.ndarray, method: str = "platt"
                   ) -> Calibrator:
    """Fit ``platt`` or ``isotonic`` on held-out scores and labels (both classes needed)."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    s, y = _check(scores, labels)
    if len(np.unique(y)) < 2:
        raise ValueError("calibration needs bona fide and attack presentations")
    if method == "platt":
        model = LogisticRegression(C=1e6, max_iter=1000).fit(log_odds(s).reshape(-1, 1), y)
        return Calibrator("platt", float(model.coef_[0, 0]), float(model.intercept_[0]))
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
        return Calibrator("isotonic", x=tuple(map(float, iso.X_thresholds_)),
                          y=tuple(map(float, iso.y_thresholds_)))
    raise ValueError(f"unknown calibration method {method!r}; expected platt or isotonic")


def bootstrap_ci(statistic: Callable[[np.ndarray, np.ndarray], float], scores: np.ndarray,
                 labels: np.ndarray, n: int = 1000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(scores, labels)``, resampling bona
    fide and attack presentations separately (stratified)."""
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in (0, 1)]
    values = []
    for _ in range(n):
        idx = np.concatenate([rng.choice(g, g.size, replace=True) for g in groups if g.size])
        values.append(statistic(s[idx], y[idx]))
    low, high = np.nanpercentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def reliability_diagram(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]],
                        bins: int = 10) -> Path:
    """Write a reliability diagram PNG: one line per ``name → (p, y)`` with its ECE."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "k:", label="perfectly calibrated")
    for name, (p, y) in curves.items():
        mean_p, rate, counts = reliability(p, y, bins)
        used = counts > 0
        ax.plot(mean_p[used], rate[used], "o-",
                label=f"{name} (ECE {expected_calibration_error(p, y, bins):.3f})")
    ax.set_xlabel("predicted P(bona fide)")
    ax.set_ylabel("observed bona fide rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
