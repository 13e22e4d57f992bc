"""``liveness train fusion``: fuse the tests' out-of-fold scores, validated
leave-one-collection-out, and write ``models/fusion/``.

Honest inputs: each test's trainer writes the score it gave every image while that
image's collection was held out of its training (:mod:`common.evaluation.oof`), so
fusion never learns from a score a test produced on its own training images. The rows
are joined on the sample key; a test that did not score an image leaves a gap.

Methods, each a linear model over the tests' log-odds ``logit(s_t)`` per subset of tests
(so a job whose CNN or 3D test failed is fused by a model for the tests that answered):

* ``rule`` – the default rule (the mean of each test's log-odds margin over its own
  shipped threshold; nothing fitted);
* ``lda`` – the seed's consolidation layer (Collins 2019): linear discriminant analysis
  with Ledoit–Wolf shrinkage; with equal covariances its discriminant is the log
  posterior ratio, linear in the inputs;
* ``logistic`` – L2 logistic regression (``C = 1``).

Every method is validated leave-one-collection-out on these scores (each collection held
out, models and thresholds fitted on the others); the one with the lowest mean HTER on
the full set of tests ships. Its per-subset thresholds sit at the operating point on the
pooled out-of-fold fused scores, its calibration (Platt) is fitted there too.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression

from common.calibration import expit
from common.calibration import log_odds as logit
from common.evaluation.calibration import fit_calibrator
from common.evaluation.metrics import threshold_at_operating_point
from common.evaluation.oof import read_oof_scores
from common.evaluation.report import EvaluationReport, evaluate, summarise_folds

METHODS = ("rule", "lda", "logistic")


@dataclass(frozen=True)
class ScoreTable:
    """Out-of-fold scores of several tests joined on the sample key: ``S`` (N, T) P(live)
    (NaN where a test did not score), labels (1 bona fide), collections, attack types."""

    tests: list[str]
    keys: list[str]
    S: np.ndarray
    labels: np.ndarray
    collections: np.ndarray
    attack_types: np.ndarray

    def present(self, subset: Sequence[str]) -> np.ndarray:
        """Rows where every test of ``subset`` scored."""
        cols = [self.tests.index(t) for t in subset]
        return ~np.isnan(self.S[:, cols]).any(axis=1)


def load_score_table(paths: Mapping[str, Path], datasets: Sequence[str] | None = None
                     ) -> ScoreTable:
    """Join each test's out-of-fold score file (``paths``: test → CSV) on the key.

    ``datasets`` keeps only keys of those dataset names (the part before the first
    ``/``). Raises ``ValueError`` when the files disagree on an image's label or no
    row remains.
    """
    tests = sorted(paths)
    rows: dict[str, dict] = {}
    for col, test in enumerate(tests):
        oof = read_oof_scores(Path(paths[test]))
        for i, key in enumerate(oof.keys):
            if datasets is not None and key.split("/", 1)[0] not in datasets:
                continue
            row = rows.setdefault(key, {"label": int(oof.labels[i]),
                                        "collection": str(oof.collections[i]),
                                        "attack_type": str(oof.attack_types[i]),
                                        "scores": [np.nan] * len(tests)})
            if row["label"] != int(oof.labels[i]):
                raise ValueError(f"{key}: labelled {row['label']} by one test's scores and "
                                 f"{int(oof.labels[i])} by {test}'s")
            row["scores"][col] = float(oof.scores[i])
    if not rows:
        raise ValueError("no scored image in the given datasets: check --data against the "
                         "tests' out-of-fold score files")
    keys = sorted(rows)
    return ScoreTable(
        tests=tests, keys=keys,
        S=np.array([rows[k]["scores"] for k in keys], float),
        labels=np.array([rows[k]["label"] for k in keys], int),
        collections=np.array([rows[k]["collection"] for k in keys], dtype=object),
        attack_types=np.array([rows[k]["attack_type"] for k in keys], dtype=object),
    )


def subsets(tests: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``tests``, sorted names, largest first."""
    names = sorted(tests)
    return [c for k in range(len(names), 0, -1) for c in itertools.combinations(names, k)]


def fit_linear(method: str, Z: np.ndarray, y: np.ndarray,
               thresholds: Sequence[float] | None = None) -> tuple[np.ndarray, float]:
    """(weights (k,), bias) of a fusion over log-odds ``Z`` (n, k).

    ``rule``: weights 1/k, bias −mean(logit(thresholds)) (the tests' own thresholds);
    ``lda``: LDA, lsqr solver, Ledoit–Wolf shrinkage; ``logistic``: L2, C = 1.
    """
    k = Z.shape[1]
    if method == "rule":
        t = logit(np.asarray(thresholds if thresholds is not None else [0.5] * k))
        return np.full(k, 1.0 / k), float(-t.mean())
    if method == "lda":
        model = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(Z, y)
    elif method == "logistic":
        model = LogisticRegression(C=1.0, max_iter=1000).fit(Z, y)
    else:
        raise ValueError(f"unknown fusion method {method!r}; choose from {METHODS}")
    return np.asarray(model.coef_[0], float), float(model.intercept_[0])


@dataclass(frozen=True)
class FittedSubset:
    """A subset's linear model on log-odds; threshold/calibration are set later."""

    tests: tuple[str, ...]
    weights: np.ndarray
    bias: float

    def log_odds(self, table: ScoreTable, rows: np.ndarray) -> np.ndarray:
        cols = [table.tests.index(t) for t in self.tests]
        return self.bias + logit(table.S[np.ix_(rows, cols)]) @ self.weights


def fit_subsets(method: str, table: ScoreTable, rows: np.ndarray,
                thresholds: Mapping[str, float]) -> dict[tuple[str, ...], FittedSubset]:
    """A model per subset of tests, fitted on the ``rows`` (mask) where all of it scored
    and both classes appear."""
    fitted = {}
    for subset in subsets(table.tests):
        use = rows & table.present(subset)
        if len(np.unique(table.labels[use])) < 2:
            continue
        cols = [table.tests.index(t) for t in subset]
        w, b = fit_linear(method, logit(table.S[np.ix_(use, cols)]), table.labels[use],
                          [thresholds.get(t, 0.5) for t in subset])
        fitted[subset] = FittedSubset(subset, w, b)
    return fitted


@dataclass(frozen=True)
class SubsetValidation:
    """Leave-one-collection-out of one method and one subset of tests."""

    per_collection: dict[str, EvaluationReport]
    oof: np.ndarray  # fused P(live) per row (NaN where the subset did not score)

    def summary(self) -> dict[str, float]:
        return summarise_folds(self.per_collection)


def loco(method: str, table: ScoreTable, operating_point: str,
         thresholds: Mapping[str, float]) -> dict[tuple[str, ...], SubsetValidation]:
    """Leave-one-collection-out of ``method`` for every subset of tests: in each fold the
    models and each subset's threshold (at ``operating_point``, on the training rows'
    fused scores) come from the other collections; the held-out rows where the subset
    scored are fused and judged."""
    oof = {s: np.full(len(table.labels), np.nan) for s in subsets(table.tests)}
    reports: dict[tuple[str, ...], dict[str, EvaluationReport]] = {s: {} for s in oof}
    for held_out in sorted(set(table.collections)):
        test = table.collections == held_out
        fitted = fit_subsets(method, table, ~test, thresholds)
        for subset, model in fitted.items():
            train_rows = ~test & table.present(subset)
            test_rows = test & table.present(subset)
            if not test_rows.any():
                continue
            train_scores = expit(model.log_odds(table, train_rows))
            threshold = threshold_at_operating_point(
                train_scores, table.labels[train_rows], operating_point,
                table.attack_types[train_rows])
            scores = expit(model.log_odds(table, test_rows))
            oof[subset][test_rows] = scores
            if len(np.unique(table.labels[test_rows])) == 2:
                reports[subset][str(held_out)] = evaluate(
                    scores, table.labels[test_rows], table.attack_types[test_rows],
                    threshold=threshold)
    return {s: SubsetValidation(reports[s], oof[s]) for s in oof}




def _key(subset: Sequence[str]) -> str:
    return "+".join(sorted(subset))


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def default_score_file(models_dir: Path, test: str) -> Path:
    """``<models_dir>/<test>/{evaluation,validation}/oof_scores.csv``, whichever exists;
    ``FileNotFoundError`` naming both otherwise."""
    from common.evaluation.oof import FILE

    for sub in ("evaluation", "validation"):
        path = models_dir / test / sub / FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"no out-of-fold scores for test {test!r} in {models_dir / test} "
                            f"(evaluation/{FILE} or validation/{FILE}): retrain it with "
                            f"`liveness train {test}`, or pass --scores {test}=PATH")


def train_fusion(score_files: Mapping[str, Path], out: Path, thresholds: Mapping[str, float],
                 datasets: Sequence[str] | None = None, operating_point: str = "apcer<=5%",
                 retry_band: float = 0.5, methods: Sequence[str] = METHODS,
                 version: str | None = None, command: str = "") -> Path:
    """Validate every method leave-one-collection-out, ship the best, write ``out/``
    (model.json, MODEL_CARD.md, plots, the fused out-of-fold scores). Returns the card.

    ``thresholds``: each test's shipped threshold (the rule's margins). ``retry_band``:
    half-width of the retry band in fused log-odds. Raises ``ValueError`` for unknown
    methods, an unknown operating point or unusable score files.
    """
    import datetime as dt

    from common.estimator import ModelInfo
    from common.evaluation.calibration import (
        expected_calibration_error,
        reliability_diagram,
    )
    from common.evaluation.oof import FILE as OOF_FILE
    from common.evaluation.oof import write_oof_scores
    from common.evaluation.report import write_report
    from common.modelfolder import write_model_folder

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown fusion methods {unknown}; choose from {METHODS}")
    table = load_score_table(score_files, datasets)
    full = tuple(table.tests)
    results = {m: loco(m, table, operating_point, thresholds) for m in methods}
    ranked = sorted(methods, key=lambda m: (round(results[m][full].summary().get(
        "hter_mean", 1.0), 4), -results[m][full].summary().get("auc_mean", 0.0)))
    best = ranked[0]
    fitted = fit_subsets(best, table, np.ones(len(table.labels), bool), thresholds)
    params: dict[str, dict] = {}
    pooled_full = None
    for subset, model in fitted.items():
        oof = results[best][subset].oof
        scored = ~np.isnan(oof)
        y, types = table.labels[scored], table.attack_types[scored]
        if len(np.unique(y)) < 2:
            continue
        report = evaluate(oof[scored], y, types, operating_point=operating_point)
        platt = fit_calibrator(oof[scored], y, "platt")
        a, b = platt.a, platt.b
        params[_key(subset)] = {
            "weights": dict(zip(subset, map(float, model.weights), strict=True)),
            "bias": model.bias, "threshold": float(report.threshold),
            "calibration": {"method": "platt", "a": a, "b": b}}
        if subset == full:
            pooled_full = (report, oof[scored], y, types)
    if pooled_full is None:
        raise ValueError("the full set of tests has no out-of-fold fused scores")
    report, oof_full, y_full, types_full = pooled_full
    z = logit(oof_full)
    band = np.abs(z - logit(np.array([report.threshold]))[0]) < retry_band
    calibrated = expit(params[_key(full)]["calibration"]["a"] * z
                       + params[_key(full)]["calibration"]["b"])
    summary = results[best][full].summary()
    now = dt.datetime.now(dt.UTC)
    info = ModelInfo(
        test="fusion", name=f"{best}-log-odds", version=version or now.date().isoformat(),
        threshold=float(report.threshold),
        threshold_rule=f"{operating_point} on the pooled leave-one-collection-out fused scores",
        trained_on=sorted({k.split('/', 1)[0] for k in table.keys}),
        created=now.isoformat(timespec="seconds"),
        metrics={"validation": "leave-one-collection-out on out-of-fold test scores",
                 "summary": summary, "retry_share": float(band.mean()),
                 "ece_raw": expected_calibration_error(oof_full, y_full),
                 "ece_calibrated": expected_calibration_error(calibrated, y_full)},
        notes=f"methods compared: {', '.join(methods)}; shipped the lowest mean HTER")
    manifest = {"format": "linear-log-odds", "format_version": 1, "info": info.to_dict(),
                "params": {"method": best, "tests": list(full), "subsets": params,
                           "operating_point": operating_point, "retry_band": retry_band}}
    write_model_folder(out, manifest, {})
    evaluation = out / "evaluation"
    paths = write_report(report, evaluation, f"fusion {info.name}: pooled leave-one-"
                         "collection-out fused scores", oof_full, y_full, types_full)
    paths["reliability"] = reliability_diagram(
        evaluation / "reliability.png", {"fused score": (oof_full, y_full),
                                         "calibrated (Platt)": (calibrated, y_full)})
    scored = ~np.isnan(results[best][full].oof)
    write_oof_scores(evaluation / OOF_FILE, [k for k, s in zip(table.keys, scored, strict=True)
                                             if s],
                     table.collections[scored], table.labels[scored],
                     table.attack_types[scored], results[best][full].oof[scored])
    card = out / "MODEL_CARD.md"
    card.write_text(_card(info, table, results, best, full, band, y_full, z,
                          float(report.threshold), retry_band, operating_point, command,
                          paths))
    return card


def _card(info, table: ScoreTable, results, best: str, full: tuple[str, ...],
          band: np.ndarray, y: np.ndarray, z: np.ndarray, threshold: float,
          retry_band: float, operating_point: str, command: str, paths) -> str:
    lines = [
        f"# Model card: fusion `{info.name}` {info.version}",
        "",
        "Fuses the tests' scores into one P(live) and decision. Trained on the tests' "
        "**out-of-fold** scores (each image scored by a test model that never saw its "
        f"collection), {len(table.keys)} images of {len(set(table.collections))} "
        f"collections ({', '.join(info.trained_on)}).",
        "",
        "## Leave-one-collection-out (fusion fitted and thresholded on the other "
        f"collections at {operating_point})",
        "",
        "| method | tests | mean AUC | worst AUC | mean EER | mean APCER | mean BPCER | "
        "mean HTER |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method, per_subset in results.items():
        for subset, validation in per_subset.items():
            s = validation.summary()
            if not s:
                continue
            mark = "**" if (method, subset) == (best, full) else ""
            lines.append(f"| {mark}{method}{mark} | {' + '.join(subset)} | {s['auc_mean']:.3f} "
                         f"| {s['auc_min']:.3f} | {_pct(s['eer_mean'])} | "
                         f"{_pct(s['apcer_mean'])} | {_pct(s['bpcer_mean'])} | "
                         f"{_pct(s['hter_mean'])} |")
    outside = ~band
    decided_y = y[outside]
    decided_live = z[outside] >= logit(np.array([threshold]))[0]
    apcer = float(np.mean(decided_live[decided_y == 0])) if (decided_y == 0).any() else 0.0
    bpcer = float(np.mean(~decided_live[decided_y == 1])) if (decided_y == 1).any() else 0.0
    lines += [
        "",
        f"Shipped: **{best}** (lowest mean HTER on {' + '.join(full)}); a model per subset of "
        "tests serves jobs where a test failed (the rows above with fewer tests).",
        "",
        "## Operating point and retry band",
        "",
        f"- Threshold {threshold:.4f} ({info.threshold_rule}); each subset has its own.",
        f"- Retry band: fused log-odds within ±{retry_band} of the threshold's answer "
        f"`retry`. On the pooled out-of-fold scores that is {_pct(float(band.mean()))} of "
        f"the images; outside it APCER {_pct(apcer)}, BPCER {_pct(bpcer)}.",
        f"- Calibration: Platt scaling of the fused log-odds; expected calibration error "
        f"{info.metrics['ece_raw']:.3f} before, {info.metrics['ece_calibrated']:.3f} after "
        "(`evaluation/reliability.png`).",
        "",
        f"Reproduce: `{command}`" if command else "",
        "",
        "Plots: " + ", ".join(f"`evaluation/{p.name}`" for k, p in paths.items() if k != "json"),
        "",
    ]
    return "\n".join(lines)


def in_process_scores(data_dirs: Sequence[Path], test: str, models_dir: Path | None,
                      out: Path, jobs: int | None = None) -> Path:
    """Score ``data_dirs`` with test ``test`` through the in-process pipeline and write
    them as an out-of-fold score file (:mod:`common.evaluation.oof`).

    Only honest for a test whose model never saw these images (a fixed rule, a plug-in
    trained elsewhere): such scores are out-of-fold by construction.
    """
    from common.datasets import open_dataset
    from common.evaluation.oof import write_oof_scores
    from common.evaluation.pipeline_report import score_datasets

    samples, results = score_datasets(data_dirs, (test,), models_dir, jobs)
    names = [open_dataset(Path(d)).name for d in data_dirs for _ in open_dataset(Path(d))
             .samples()]
    scores = [np.nan if r is None or (r["tests"].get(test) or {}).get("score") is None
              else float(r["tests"][test]["score"]) for r in results]
    return write_oof_scores(out, [f"{n}/{s.key}" for n, s in zip(names, samples, strict=True)],
                            [s.collection for s in samples], [s.label for s in samples],
                            [s.attack_type for s in samples], scores)
