"""The leave-one-collection-out table of a model card: every held-out collection, at the
threshold chosen on the other collections and at the threshold the model ships with.

A trainer validates leave-one-collection-out (each collection — its people, cameras,
screens, printers — held out in turn) and writes one report per held-out collection at
the threshold fitted on the *other* collections (the honest HTER of a new deployment).
The shipped model then uses one threshold, chosen on the pooled out-of-fold scores;
:func:`reports_at_threshold` gives each collection's APCER / BPCER / ACER at that one
threshold, which is the decision a user of the shipped model meets. :func:`loco_table`
puts both in one Markdown table with its mean and worst rows; :func:`loco_summary` gives
the same numbers for ``model.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from common.evaluation.report import EvaluationReport, evaluate, summarise_folds


def reports_at_threshold(scores: np.ndarray, labels: np.ndarray,
                         attack_types: np.ndarray | Sequence[str],
                         collections: np.ndarray | Sequence[str],
                         threshold: float) -> dict[str, EvaluationReport]:
    """One report per collection of ``scores`` at the given ``threshold``.

    ``scores``: (N,) float out-of-fold P(bona fide) (NaN rows — images no fold scored —
    are left out); ``labels``: (N,) int, 1 bona fide; ``attack_types``, ``collections``:
    (N,) str. Collections without both classes have no report. Returns
    ``{collection: EvaluationReport}`` in sorted order. Raises ``ValueError`` when the
    arrays differ in length or the threshold is not finite
    (:func:`common.evaluation.report.evaluate`).
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    types = np.asarray(attack_types, dtype=object)
    colls = np.asarray(collections, dtype=object)
    if not len(s) == len(y) == len(types) == len(colls):
        raise ValueError(f"scores, labels, attack types and collections differ in length: "
                         f"{len(s)}, {len(y)}, {len(types)}, {len(colls)}")
    scored = ~np.isnan(s)
    out: dict[str, EvaluationReport] = {}
    for name in sorted({str(c) for c in colls[scored]}):
        rows = scored & (colls == name)
        if len(np.unique(y[rows])) == 2:
            out[name] = evaluate(s[rows], y[rows], types[rows], threshold=threshold)
    return out


def loco_summary(per_fold: Mapping[str, EvaluationReport],
                 shipped: Mapping[str, EvaluationReport]) -> dict[str, float]:
    """:func:`common.evaluation.report.summarise_folds` of ``per_fold`` (fold
    thresholds) plus the means and worst values at the shipped threshold:
    ``shipped_apcer_mean`` / ``_max`` (worst attack type of each collection),
    ``shipped_bpcer_mean`` / ``_max`` and ``shipped_acer_mean`` / ``_max``.
    Rates are fractions in [0, 1]; empty without folds."""
    summary = summarise_folds(per_fold)
    r = list(shipped.values())
    if r:
        for key, values in (("apcer", [x.apcer_max for x in r]), ("bpcer", [x.bpcer for x in r]),
                            ("acer", [x.acer for x in r])):
            summary[f"shipped_{key}_mean"] = float(np.mean(values))
            summary[f"shipped_{key}_max"] = float(np.max(values))
    return summary


def at_shipped_threshold_metrics(shipped: Mapping[str, EvaluationReport]
                                 ) -> dict[str, dict[str, float]]:
    """``model.json``'s ``per_collection_at_shipped_threshold``: per collection the APCER
    (worst attack type), BPCER and ACER of :func:`reports_at_threshold`'s reports."""
    return {c: {"apcer": r.apcer_max, "bpcer": r.bpcer, "acer": r.acer}
            for c, r in shipped.items()}


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.1f} %"


def loco_table(per_fold: Mapping[str, EvaluationReport],
               shipped: Mapping[str, EvaluationReport], shipped_threshold: float) -> str:
    """Markdown: one row per held-out collection, then the mean and the worst row.

    Columns: bona fide and attack counts; AUC and EER (threshold-free); APCER (worst
    attack type), BPCER and HTER at the threshold chosen on the other collections
    (``per_fold``); APCER, BPCER and ACER (ISO/IEC 30107-3: mean of the worst type's
    APCER and the BPCER) at ``shipped_threshold`` (``shipped``, from
    :func:`reports_at_threshold`). The worst row takes the worst value of each column
    (lowest AUC, highest error rates), not one collection's row.
    """
    head = [
        "| held-out collection | live | attacks | AUC | EER | APCER | BPCER | HTER "
        f"| APCER at {shipped_threshold:.4f} | BPCER at {shipped_threshold:.4f} "
        f"| ACER at {shipped_threshold:.4f} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows, cols = [], []
    for name, r in sorted(per_fold.items()):
        at = shipped.get(name)
        values = [r.auc, r.eer, r.apcer_max, r.bpcer, r.hter,
                  *((at.apcer_max, at.bpcer, at.acer) if at else (np.nan,) * 3)]
        cols.append(values)
        rows.append(f"| {name} | {r.n_bona_fide} | {sum(r.n_attacks.values())} | "
                    f"{values[0]:.3f} | " + " | ".join(_pct(v) for v in values[1:]) + " |")
    if cols:
        table = np.array(cols, dtype=float)
        mean, worst = np.nanmean(table, axis=0), np.nanmax(table, axis=0)
        worst[0] = np.nanmin(table[:, 0])
        for label, v in (("mean", mean), ("worst", worst)):
            rows.append(f"| **{label}** | | | **{v[0]:.3f}** | "
                        + " | ".join(f"**{_pct(x)}**" for x in v[1:]) + " |")
    return "\n".join(head + rows)


#: Keys of ``metrics.summary`` :func:`shipped_models_table` needs (:func:`loco_summary`).
TABLE_KEYS = ("auc_mean", "auc_min", "eer_mean", "shipped_apcer_mean",
              "shipped_bpcer_mean", "shipped_acer_mean")


def shipped_models_table(models_dir: str | Path, names: Sequence[str]) -> str:
    """Markdown: one row per model folder ``<models_dir>/<name>`` that exists, from its
    verified ``model.json`` (:func:`common.modelfolder.read_model_folder`).

    Columns: the model's name and version, collections held out, mean and worst
    leave-one-collection-out AUC, mean EER, then mean APCER (worst attack type of each
    collection), BPCER and ACER at the shipped operating point — for a test its one
    shipped threshold on its held-out scores; for the fusion the default operating
    point's rule fitted without each held-out collection (``metrics.summary``, written
    by the trainers). A folder whose summary lacks these figures (trained before they
    were recorded) gets a row saying so. Raises :class:`common.errors.ModelError` for a
    folder that does not verify.
    """
    from common.modelfolder import read_model_folder

    head = ["| test | model | held-out collections | mean AUC | worst AUC | mean EER "
            "| mean APCER | mean BPCER | mean ACER |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = []
    for name in names:
        folder = Path(models_dir) / name
        if not (folder / "model.json").is_file():
            continue
        info = read_model_folder(folder)["info"]
        metrics = info.get("metrics", {})
        summary = metrics.get("summary", {})
        model = f"`{info.get('name')}` {info.get('version')}"
        headline = metrics.get("headline_tests")
        if headline:  # the fusion: whose figures these are (the default tests)
            name = f"{name} ({' + '.join(headline)}: the default job)"
        if not all(k in summary for k in TABLE_KEYS):
            rows.append(f"| {name} | {model} | | (retrain: no leave-one-collection-out "
                        "summary in model.json) | | | | | |")
            continue
        n = len(metrics.get("per_collection", {})) or ""
        rows.append(
            f"| {name} | {model} | {n} | {summary['auc_mean']:.3f} | "
            f"{summary['auc_min']:.3f} | {_pct(summary['eer_mean'])} | "
            f"{_pct(summary['shipped_apcer_mean'])} | {_pct(summary['shipped_bpcer_mean'])} "
            f"| {_pct(summary['shipped_acer_mean'])} |")
    return "\n".join(head + rows)
