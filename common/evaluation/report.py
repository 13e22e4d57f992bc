"""One evaluation of a PAD score set: the figures, their JSON/Markdown form, plots.

The layout follows the reporting asked for by ISO/IEC 30107-3:2023 for a PAD
subsystem: sample counts per PAI species, APCER per species and the worst one,
BPCER, the threshold and how it was chosen, plus DET curves. ACER, HTER, EER and
AUC are added for comparison with the face anti-spoofing literature.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import norm
from sklearn.metrics import DetCurveDisplay, RocCurveDisplay

from common.evaluation import metrics

__all__ = ["EvaluationReport", "combine_reports", "evaluate", "write_report"]

# Rates are proportions of at most a few hundred thousand samples: 6 decimals
# (0.0001 %) is finer than any of them can resolve.
_RATE_DECIMALS = 6
_FITTED_NOTE = (
    "The threshold was fitted on these same scores (operating point {point!r}); "
    "figures at that threshold are optimistic. Fix the threshold on development "
    "data for an unbiased test result."
)


@dataclass
class EvaluationReport:
    """The figures of one evaluation. Rates are fractions in [0, 1]."""

    n_bona_fide: int
    n_attacks: dict[str, int]
    threshold: float
    threshold_source: str  # "given" or "fitted on test scores"
    operating_point: str | None  # the point it was fitted at, None when given
    apcer_per_type: dict[str, float]
    apcer_max: float
    apcer_pooled: float
    bpcer: float
    acer: float
    hter: float
    eer: float
    eer_threshold: float
    bpcer20: float  # BPCER at worst-type APCER <= 5 %
    bpcer20_threshold: float
    bpcer100: float  # BPCER at worst-type APCER <= 1 %
    bpcer100_threshold: float
    auc: float
    confusion: list[list[int]]  # rows truth, columns decision, order (attack, bona fide)
    notes: list[str] = field(default_factory=list)

    @property
    def threshold_fitted(self) -> bool:
        return self.threshold_source != "given"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: rates rounded to 6 decimals, thresholds kept exact.

        Thresholds are decision boundaries, so rounding one could move it across a
        score and change the decisions it stands for; non-finite values become None.
        """
        d = asdict(self)
        for key, value in d.items():
            if key.endswith("threshold"):
                d[key] = _json_float(value, None)
            elif isinstance(value, float):
                d[key] = _json_float(value, _RATE_DECIMALS)
        d["apcer_per_type"] = {
            k: _json_float(v, _RATE_DECIMALS) for k, v in self.apcer_per_type.items()
        }
        d["n_attacks"] = {k: int(v) for k, v in self.n_attacks.items()}
        d["confusion"] = [[int(v) for v in row] for row in self.confusion]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluationReport:
        """Inverse of :meth:`to_dict`; also reads report.json (its "title" is skipped)."""
        kinds = {f.name: f.type for f in fields(cls)}
        d = {k: v for k, v in d.items() if k != "title"}
        unknown = set(d) - set(kinds)
        if unknown:
            raise ValueError(f"unknown EvaluationReport field(s): {sorted(unknown)}")
        # to_dict wrote non-finite floats as null
        kwargs = {
            k: (math.nan if v is None and kinds[k] == "float" else v) for k, v in d.items()
        }
        return cls(**kwargs)


def _json_float(value: float, decimals: int | None) -> float | None:
    v = float(value)
    if not math.isfinite(v):
        return None
    return round(v, decimals) if decimals is not None else v


def evaluate(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    attack_types: Sequence[str] | np.ndarray | None = None,
    threshold: float | None = None,
    operating_point: str = "eer",
) -> EvaluationReport:
    """Compute every figure of :class:`EvaluationReport`.

    With ``threshold=None`` the threshold is fitted on these scores at
    ``operating_point`` (see :func:`metrics.threshold_at_operating_point`) and the
    report says so, because such figures are optimistic. Needs both bona fide
    samples and attacks.
    """
    s, y = metrics._as_scores_labels(scores, labels)
    metrics._require(y, bona_fide=True, attacks=True, what="evaluate")
    types = metrics._as_attack_types(attack_types, y)
    notes: list[str] = []
    if threshold is None:
        t = metrics.threshold_at_operating_point(s, y, operating_point, types)
        source, point = "fitted on test scores", operating_point
        notes.append(_FITTED_NOTE.format(point=operating_point))
    else:
        t = metrics._check_threshold(threshold)
        source, point = "given", None

    names, counts = np.unique(types[y == 0].astype(str), return_counts=True)
    n_attacks = {str(k): int(v) for k, v in zip(names, counts, strict=True)}
    for name, n in n_attacks.items():
        if n < 100:
            notes.append(
                f"Only {n} '{name}' attacks: an APCER of 1 % cannot be resolved "
                f"(one accepted attack is {100 / n:.2g} %), so BPCER100 requires "
                "rejecting all of them."
            )
    if int((y == 1).sum()) < 100:
        notes.append(f"Only {int((y == 1).sum())} bona fide samples: BPCER is coarse.")

    per_type = metrics.apcer_per_attack_type(s, y, types, t)
    eer, eer_t = metrics.equal_error_rate(s, y)
    b20, t20 = metrics.bpcer_at_apcer(s, y, 0.05, types)
    b100, t100 = metrics.bpcer_at_apcer(s, y, 0.01, types)
    return EvaluationReport(
        n_bona_fide=int((y == 1).sum()),
        n_attacks=n_attacks,
        threshold=t,
        threshold_source=source,
        operating_point=point,
        apcer_per_type=per_type,
        apcer_max=max(per_type.values()),
        apcer_pooled=metrics.apcer(s, y, t),
        bpcer=metrics.bpcer(s, y, t),
        acer=metrics.acer(s, y, types, t),
        hter=metrics.hter(s, y, t),
        eer=eer,
        eer_threshold=eer_t,
        bpcer20=b20,
        bpcer20_threshold=t20,
        bpcer100=b100,
        bpcer100_threshold=t100,
        auc=metrics.auc(s, y),
        confusion=metrics.confusion(s, y, t).tolist(),
        notes=notes,
    )


# ------------------------------------------------------------------ Markdown


def _pct(rate: float) -> str:
    return "n/a" if rate is None or not math.isfinite(rate) else f"{100 * rate:.2f} %"


def _thr(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _markdown(report: EvaluationReport, title: str, extra: dict[str, str] | None) -> str:
    r = report
    how = (
        "given" if not r.threshold_fitted
        else f"fitted on these scores at operating point `{r.operating_point}`"
    )
    lines = [
        f"# {title}",
        "",
        f"Bona fide samples: {r.n_bona_fide}; attacks: {sum(r.n_attacks.values())} "
        f"({', '.join(f'{k}: {v}' for k, v in r.n_attacks.items())}).",
        "",
        f"Decision threshold: **{_thr(r.threshold)}** ({how}). A sample is accepted as "
        "bona fide when its score (P(live)) is >= the threshold.",
        "",
    ]
    if r.notes:
        lines += [*(f"> **Note.** {n}" for n in r.notes), ""]
    lines += [
        "## Figures (ISO/IEC 30107-3)",
        "",
        "| Metric | Value | Threshold |",
        "|---|---:|---:|",
        f"| APCER, worst attack type | {_pct(r.apcer_max)} | {_thr(r.threshold)} |",
        f"| APCER, all attacks pooled | {_pct(r.apcer_pooled)} | {_thr(r.threshold)} |",
        f"| BPCER | {_pct(r.bpcer)} | {_thr(r.threshold)} |",
        f"| ACER = (APCER max + BPCER) / 2 | {_pct(r.acer)} | {_thr(r.threshold)} |",
        f"| HTER = (APCER pooled + BPCER) / 2 | {_pct(r.hter)} | {_thr(r.threshold)} |",
        f"| EER (pooled) | {_pct(r.eer)} | {_thr(r.eer_threshold)} |",
        f"| BPCER20 (BPCER @ worst APCER <= 5 %) | {_pct(r.bpcer20)} "
        f"| {_thr(r.bpcer20_threshold)} |",
        f"| BPCER100 (BPCER @ worst APCER <= 1 %) | {_pct(r.bpcer100)} "
        f"| {_thr(r.bpcer100_threshold)} |",
        f"| AUC | {r.auc:.4f} | - |",
        "",
        "## APCER per attack type",
        "",
        "| Attack type | Samples | APCER |",
        "|---|---:|---:|",
        *(
            f"| {k} | {r.n_attacks.get(k, 0)} | {_pct(v)} |"
            for k, v in r.apcer_per_type.items()
        ),
        "",
        "## Confusion matrix",
        "",
        "| Truth \\ decision | attack | bona fide |",
        "|---|---:|---:|",
        f"| attack | {r.confusion[0][0]} | {r.confusion[0][1]} |",
        f"| bona fide | {r.confusion[1][0]} | {r.confusion[1][1]} |",
        "",
        "## Plots",
        "",
        "![DET curve](det.png)",
        "",
        "![ROC curve](roc.png)",
        "",
        "![Score distributions](scores.png)",
        "",
    ]
    for heading, body in (extra or {}).items():
        lines += [f"## {heading}", "", body.rstrip(), ""]
    return "\n".join(lines)


def summarise_folds(per_fold: Mapping[str, EvaluationReport]) -> dict[str, float]:
    """Mean (and worst) AUC, EER, APCER (pooled), BPCER, HTER over leave-one-collection-
    out folds: keys ``auc_mean``, ``auc_min``, ``eer_mean``, ``apcer_mean``,
    ``bpcer_mean``, ``hter_mean``; empty without folds."""
    r = list(per_fold.values())
    if not r:
        return {}
    return {"auc_mean": float(np.mean([x.auc for x in r])),
            "auc_min": float(np.min([x.auc for x in r])),
            "eer_mean": float(np.mean([x.eer for x in r])),
            "apcer_mean": float(np.mean([x.apcer_pooled for x in r])),
            "bpcer_mean": float(np.mean([x.bpcer for x in r])),
            "hter_mean": float(np.mean([x.hter for x in r]))}


def combine_reports(named: dict[str, EvaluationReport]) -> str:
    """Markdown table comparing evaluations side by side, one row per entry.

    Made for leave-one-collection-out results: one row per held-out collection and
    a pooled row, in the order given.
    """
    if not named:
        raise ValueError("combine_reports needs at least one report")
    head = (
        "| Evaluation | Bona fide | Attacks | Threshold | APCER max (type) | BPCER | ACER "
        "| HTER | EER | BPCER20 | BPCER100 | AUC |"
    )
    lines = [head, "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in named.items():
        worst = max(r.apcer_per_type, key=lambda k: r.apcer_per_type[k])
        fitted = " (fitted)" if r.threshold_fitted else ""
        lines.append(
            f"| {name} | {r.n_bona_fide} | {sum(r.n_attacks.values())} "
            f"| {_thr(r.threshold)}{fitted} | {_pct(r.apcer_max)} ({worst}) "
            f"| {_pct(r.bpcer)} | {_pct(r.acer)} | {_pct(r.hter)} | {_pct(r.eer)} "
            f"| {_pct(r.bpcer20)} | {_pct(r.bpcer100)} | {r.auc:.4f} |"
        )
    if any(r.threshold_fitted for r in named.values()):
        lines += ["", "(fitted): threshold fitted on that evaluation's own scores; optimistic."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- plots


def _curves(
    s: np.ndarray, y: np.ndarray, types: np.ndarray
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, scores, labels) for all attacks pooled and, if several, each type."""
    out = [("all attacks", s, y)]
    attack_names = sorted(set(types[y == 0]))
    if len(attack_names) > 1:
        for name in attack_names:
            sel = (y == 1) | (types == name)
            out.append((name, s[sel], y[sel]))
    return out


def _plot_det(path: Path, r: EvaluationReport, curves: list, title: str) -> None:
    fig = Figure(figsize=(6, 6), dpi=100)
    ax = fig.subplots()
    for name, cs, cy in curves:
        DetCurveDisplay.from_predictions(cy, cs, pos_label=1, name=name, ax=ax)
    eps = np.finfo(np.float64).eps
    x, yv = (norm.ppf(np.clip(v, eps, 1 - eps)) for v in (r.apcer_pooled, r.bpcer))
    ax.plot([x], [yv], "ko", label=f"threshold {r.threshold:.3f}")
    ax.plot([-3, 3], [-3, 3], color="0.8", lw=0.8, ls=":", zorder=0)
    ax.set(xlabel="APCER (attacks accepted)", ylabel="BPCER (bona fide rejected)",
           title=f"DET: {title}")
    ax.grid(True, color="0.9")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")


def _plot_roc(path: Path, r: EvaluationReport, curves: list, title: str) -> None:
    fig = Figure(figsize=(6, 6), dpi=100)
    ax = fig.subplots()
    for name, cs, cy in curves:
        RocCurveDisplay.from_predictions(cy, cs, pos_label=1, name=name, ax=ax)
    ax.plot([r.apcer_pooled], [1 - r.bpcer], "ko", label=f"threshold {r.threshold:.3f}")
    ax.plot([0, 1], [0, 1], color="0.8", lw=0.8, ls=":", zorder=0)
    ax.set(xlabel="APCER (attacks accepted)", ylabel="1 - BPCER (bona fide accepted)",
           title=f"ROC: {title}", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax.grid(True, color="0.9")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")


def _plot_scores(
    path: Path, r: EvaluationReport, s: np.ndarray, y: np.ndarray, types: np.ndarray,
    title: str,
) -> None:
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    lo, hi = min(float(s.min()), 0.0), max(float(s.max()), 1.0)
    bins = np.linspace(lo, hi, 41)
    groups = [("bona fide", s[y == 1])]
    groups += [(name, s[(y == 0) & (types == name)]) for name in sorted(set(types[y == 0]))]
    for name, g in groups:
        # density: the classes differ in size, the shapes are what matter here
        ax.hist(g, bins=bins, density=True, histtype="step", lw=1.5,
                label=f"{name} (n={g.size})")
    ax.axvline(r.threshold, color="k", ls="--", lw=1, label=f"threshold {r.threshold:.3f}")
    ax.set(xlabel="score = P(live)", ylabel="density", title=f"Scores: {title}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")


def write_report(
    report: EvaluationReport,
    out_dir: str | Path,
    title: str,
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    attack_types: Sequence[str] | np.ndarray | None = None,
    extra_sections: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Write report.json, report.md, roc.png, det.png and scores.png to ``out_dir``.

    ``scores``/``labels``/``attack_types`` must be those ``report`` was computed
    from (they are needed for the curves). ``extra_sections`` maps a heading to a
    Markdown body appended to report.md. Returns the written paths by short name.
    """
    s, y = metrics._as_scores_labels(scores, labels)
    metrics._require(y, bona_fide=True, attacks=True, what="write_report")
    types = metrics._as_attack_types(attack_types, y)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "report.json",
        "md": out / "report.md",
        "roc": out / "roc.png",
        "det": out / "det.png",
        "scores": out / "scores.png",
    }
    payload = {"title": title, **report.to_dict()}
    paths["json"].write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    paths["md"].write_text(_markdown(report, title, extra_sections))
    curves = _curves(s, y, types)
    _plot_roc(paths["roc"], report, curves, title)
    _plot_det(paths["det"], report, curves, title)
    _plot_scores(paths["scores"], report, s, y, types, title)
    return paths
