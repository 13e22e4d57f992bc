"""``liveness calibrate``: fit a calibration profile on an operator's own labelled images.

The shipped threshold was chosen on other cameras; on a new deployment the score scale
shifts (the same ranking, another threshold). Given the fused scores of the operator's
labelled images, this fits a calibrator (Platt or isotonic) and the threshold at the
requested operating point on the calibrated probability, and measures both honestly:

* *before*: the shipped fusion's threshold on the fused score;
* *after*: 5-fold stratified cross-validation on the operator's images (calibrator and
  threshold fitted on four folds, applied to the fifth), pooled;

each with 95 % percentile-bootstrap intervals (:func:`common.evaluation.calibration.
bootstrap_ci`) and the expected calibration error. The profile itself is then fitted on
every image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.calibration import Calibrator
from common.evaluation.calibration import (
    bootstrap_ci,
    expected_calibration_error,
    fit_calibrator,
    reliability_diagram,
)
from common.evaluation.metrics import threshold_at_operating_point
from common.fusion import decide


def _apcer(live: np.ndarray, y: np.ndarray) -> float:
    attacks = y == 0
    return float(np.mean(live[attacks])) if attacks.any() else float("nan")


def _bpcer(live: np.ndarray, y: np.ndarray) -> float:
    bona = y == 1
    return float(np.mean(~live[bona])) if bona.any() else float("nan")


@dataclass(frozen=True)
class Figures:
    """APCER, BPCER, HTER (with 95 % bootstrap intervals), retry share and ECE."""

    apcer: float
    bpcer: float
    hter: float
    intervals: dict[str, tuple[float, float]]
    retry: float
    ece: float

    def rows(self) -> list[tuple[str, str]]:
        def pct(name: str, value: float) -> str:
            low, high = self.intervals[name]
            return f"{100 * value:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"

        return [("APCER", pct("apcer", self.apcer)), ("BPCER", pct("bpcer", self.bpcer)),
                ("HTER", pct("hter", self.hter)), ("retry", f"{100 * self.retry:.1f} %"),
                ("ECE", f"{self.ece:.3f}")]


def figures(probability: np.ndarray, decisions: np.ndarray, y: np.ndarray,
            n_boot: int = 1000) -> Figures:
    """ISO error rates of ``decisions`` (``live``/``spoof``/``retry``) on the images
    decided (not ``retry``), with bootstrap intervals; ECE of ``probability``."""
    decided = decisions != "retry"
    live, yd = decisions[decided] == "live", y[decided]

    def hter(x: np.ndarray, t: np.ndarray) -> float:
        return (_apcer(x > 0.5, t) + _bpcer(x > 0.5, t)) / 2

    x = live.astype(float)
    intervals = {
        "apcer": bootstrap_ci(lambda a, b: _apcer(a > 0.5, b), x, yd, n_boot),
        "bpcer": bootstrap_ci(lambda a, b: _bpcer(a > 0.5, b), x, yd, n_boot),
        "hter": bootstrap_ci(hter, x, yd, n_boot),
    }
    return Figures(_apcer(live, yd), _bpcer(live, yd), hter(x, yd), intervals,
                   float(np.mean(~decided)), expected_calibration_error(probability, y))


@dataclass
class Recalibration:
    """A fitted profile's parts and the before/after figures."""

    calibrator: Calibrator
    threshold: float
    before: Figures
    after: Figures
    cv_probability: np.ndarray
    notes: list[str] = field(default_factory=list)


def recalibrate(scores: np.ndarray, y: np.ndarray, attack_types: np.ndarray,
                shipped_threshold: float, operating_point: str, method: str = "platt",
                retry_band: float = 0.0, folds: int = 5, seed: int = 0,
                n_boot: int = 1000) -> Recalibration:
    """Fit and measure (module docstring). ``scores`` (N,) fused P(live), ``y`` (N,) 1
    bona fide. Raises ``ValueError`` with fewer than ``folds`` images of either class."""
    from sklearn.model_selection import StratifiedKFold

    s, y = np.asarray(scores, float), np.asarray(y, int)
    counts = np.bincount(y, minlength=2)
    if counts.min() < folds:
        raise ValueError(f"calibration needs at least {folds} bona fide and {folds} attack "
                         f"images; got {counts[1]} bona fide and {counts[0]} attacks")
    before_decisions = np.array([decide(v, shipped_threshold, retry_band) for v in s])
    before = figures(s, before_decisions, y, n_boot)
    cv_p = np.zeros_like(s)
    cv_decisions = np.empty(len(s), dtype=object)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(s, y):
        cal = fit_calibrator(s[train], y[train], method)
        threshold = _threshold(cal(s[train]), y[train], attack_types[train], operating_point)
        cv_p[test] = cal(s[test])
        cv_decisions[test] = [decide(v, threshold, retry_band) for v in cv_p[test]]
    after = figures(cv_p, cv_decisions.astype(str), y, n_boot)
    calibrator = fit_calibrator(s, y, method)
    threshold = _threshold(calibrator(s), y, attack_types, operating_point)
    return Recalibration(calibrator, threshold, before, after, cv_p)


def _threshold(p: np.ndarray, y: np.ndarray, types: np.ndarray, point: str) -> float:
    """The operating point's threshold on calibrated probabilities, kept inside (0, 1)."""
    return float(np.clip(threshold_at_operating_point(p, y, point, types), 1e-6, 1 - 1e-6))


def write_calibration_report(out: Path, name: str, result: Recalibration,
                             scores: np.ndarray, y: np.ndarray,
                             data: Sequence[str]) -> Path:
    """``report.md`` (before/after table) and ``reliability.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    reliability_diagram(out / "reliability.png", {
        "fused score (before)": (np.asarray(scores, float), y),
        f"calibrated, cross-validated ({result.calibrator.method})": (result.cv_probability,
                                                                      y)})
    lines = [f"# Calibration profile `{name}`", "",
             f"Fitted on {len(y)} images ({int((y == 1).sum())} bona fide, "
             f"{int((y == 0).sum())} attacks) of {', '.join(data)}.", "",
             "| figure (95 % bootstrap interval) | before: shipped threshold | after: "
             "profile, 5-fold cross-validated |", "|---|---|---|"]
    for (label, before), (_, after) in zip(result.before.rows(), result.after.rows(),
                                           strict=True):
        lines.append(f"| {label} | {before} | {after} |")
    lines += ["", "![reliability](reliability.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
