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

Every method is validated leave-one-collection-out on these scores: for each held-out
collection, the subset models, their thresholds (at the operating point, which for the
default ``loco-bpcer<=10%/25%`` runs its own leave-one-collection-out inside the
fitting collections, :mod:`workers.fusion.operating`) and their calibrations are fitted
on the other collections only, then applied to the held-out one. The method whose best
subset has the lowest mean HTER ships, and that subset is recorded as the recommended
default tests (the registry's defaults must match it); the card's and ``model.json``'s
headline figures are that subset's. The shipped models are refitted on every
row, and **their own** thresholds come from the same rule applied to their own fused
scores (the rule that was validated, not a threshold of the fold models); the
calibration (identity, Platt or isotonic, whichever has the lowest out-of-fold
expected calibration error) is fitted on them too. Retry-band and calibration figures
are out-of-fold.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression

from common.calibration import Calibrator, expit
from common.calibration import log_odds as logit
from common.evaluation.calibration import fit_calibrator
from common.evaluation.loco_table import loco_summary
from common.evaluation.metrics import threshold_at_operating_point
from common.evaluation.oof import read_oof_scores
from common.evaluation.report import EvaluationReport, evaluate, summarise_folds
from workers.fusion.operating import (
    DEFAULT_POINT,
    STRICT_POINTS,
    InnerFold,
    LocoBpcerPoint,
    RuleChoice,
    choose_worst_bpcer,
    parse_point,
    worst_bpcer_threshold,
)

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


def fit_one(method: str, table: ScoreTable, rows: np.ndarray, subset: tuple[str, ...],
            thresholds: Mapping[str, float]) -> FittedSubset | None:
    """The ``subset``'s model fitted on ``rows`` (mask) where all of it scored; ``None``
    without both classes there."""
    use = rows & table.present(subset)
    if len(np.unique(table.labels[use])) < 2:
        return None
    cols = [table.tests.index(t) for t in subset]
    w, b = fit_linear(method, logit(table.S[np.ix_(use, cols)]), table.labels[use],
                      [thresholds.get(t, 0.5) for t in subset])
    return FittedSubset(subset, w, b)


def subset_threshold(point: LocoBpcerPoint | str, method: str, table: ScoreTable,
                     rows: np.ndarray, model: FittedSubset, thresholds: Mapping[str, float]
                     ) -> tuple[float, RuleChoice | None]:
    """The threshold of ``model`` (fitted on ``rows``) at ``point``, from ``rows`` only.

    A plain point is computed on the model's fused scores of ``rows``; a
    :class:`LocoBpcerPoint` first chooses its ``q`` by leave-one-collection-out inside
    ``rows`` (the model refitted without each collection), then applies
    ``worst-bpcer<=q`` to the model's own fused scores of ``rows``.
    """
    use = rows & table.present(model.tests)
    scores = expit(model.log_odds(table, use))
    labels, colls = table.labels[use], table.collections[use]
    if not isinstance(point, LocoBpcerPoint):
        return float(threshold_at_operating_point(scores, labels, point,
                                                  table.attack_types[use])), None
    folds = []
    for inner in np.unique(colls):
        train = use & (table.collections != inner)
        refit = fit_one(method, table, train, model.tests, thresholds)
        if refit is None:
            continue
        test = use & (table.collections == inner)
        folds.append(InnerFold(expit(refit.log_odds(table, train)), table.labels[train],
                               table.collections[train], expit(refit.log_odds(table, test)),
                               table.labels[test]))
    choice = choose_worst_bpcer(folds, point)
    return worst_bpcer_threshold(scores, labels, colls, choice.q), choice


#: Calibrations compared out of fold; the lowest expected calibration error ships.
CALIBRATIONS = ("identity", "platt", "isotonic")


def _calibrate(method: str, train_scores: np.ndarray, train_labels: np.ndarray
               ) -> Calibrator | None:
    """``None`` for ``identity`` (the fused score itself), else the fitted map."""
    return None if method == "identity" else fit_calibrator(train_scores, train_labels, method)


@dataclass(frozen=True)
class SubsetValidation:
    """Leave-one-collection-out of one method and one subset of tests: per held-out
    collection its report (threshold from the other collections), and per row the
    fused score, the threshold applied to it and each calibration's probability
    (all NaN where the subset did not score)."""

    per_collection: dict[str, EvaluationReport]
    oof: np.ndarray
    oof_threshold: np.ndarray
    calibrated: dict[str, np.ndarray]

    def summary(self) -> dict[str, float]:
        return summarise_folds(self.per_collection)


def loco(method: str, table: ScoreTable, operating_point: str,
         thresholds: Mapping[str, float],
         only: Sequence[tuple[str, ...]] | None = None) -> dict[tuple[str, ...],
                                                              SubsetValidation]:
    """Leave-one-collection-out of ``method`` for every subset of tests (or ``only``):
    in each fold the models, each subset's threshold at ``operating_point`` and the
    calibrations come from the other collections; the held-out rows where the subset
    scored are fused and judged. The held-out collection's scores are read only to be
    judged (``tests/unit/test_fusion_train.py`` checks that changing them changes
    nothing else)."""
    point = parse_point(operating_point)
    chosen = list(only) if only is not None else subsets(table.tests)
    n = len(table.labels)
    oof = {s: np.full(n, np.nan) for s in chosen}
    oof_t = {s: np.full(n, np.nan) for s in chosen}
    calibrated = {s: {c: np.full(n, np.nan) for c in CALIBRATIONS} for s in chosen}
    reports: dict[tuple[str, ...], dict[str, EvaluationReport]] = {s: {} for s in chosen}
    for held_out in sorted(set(table.collections)):
        test = table.collections == held_out
        for subset in chosen:
            test_rows = test & table.present(subset)
            if not test_rows.any():
                continue
            model = fit_one(method, table, ~test, subset, thresholds)
            if model is None:
                continue
            threshold, _ = subset_threshold(point, method, table, ~test, model, thresholds)
            scores = expit(model.log_odds(table, test_rows))
            oof[subset][test_rows] = scores
            oof_t[subset][test_rows] = threshold
            train_rows = ~test & table.present(subset)
            train_scores = expit(model.log_odds(table, train_rows))
            for name in CALIBRATIONS:
                calibrator = _calibrate(name, train_scores, table.labels[train_rows])
                calibrated[subset][name][test_rows] = (
                    scores if calibrator is None else calibrator(scores))
            if len(np.unique(table.labels[test_rows])) == 2:
                reports[subset][str(held_out)] = evaluate(
                    scores, table.labels[test_rows], table.attack_types[test_rows],
                    threshold=threshold)
    return {s: SubsetValidation(reports[s], oof[s], oof_t[s], calibrated[s]) for s in chosen}


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


def _best_subset(per_subset: Mapping[tuple[str, ...], SubsetValidation]) -> tuple[str, ...]:
    """The subset of tests with the lowest mean held-out HTER (then the highest mean AUC)."""
    return min((s for s in per_subset if per_subset[s].summary()),
               key=lambda s: _rank(per_subset[s]))


def _rank(validation: SubsetValidation) -> tuple[float, float]:
    summary = validation.summary()
    return (round(summary.get("hter_mean", 1.0), 4), -summary.get("auc_mean", 0.0))


@dataclass(frozen=True)
class RetryFigures:
    """Out of fold: the share of images inside the retry band around their fold's
    threshold, and APCER / BPCER of the images outside it."""

    share: float
    apcer: float
    bpcer: float

    @classmethod
    def of(cls, validation: SubsetValidation, labels: np.ndarray, band: float
           ) -> RetryFigures:
        scored = ~np.isnan(validation.oof)
        z = logit(validation.oof[scored])
        zt = logit(validation.oof_threshold[scored])
        y = labels[scored]
        inside = np.abs(z - zt) < band
        live = z >= zt
        outside_attack, outside_bona = ~inside & (y == 0), ~inside & (y == 1)
        return cls(float(inside.mean()),
                   float(live[outside_attack].mean()) if outside_attack.any() else 0.0,
                   float((~live[outside_bona]).mean()) if outside_bona.any() else 0.0)


def train_fusion(score_files: Mapping[str, Path], out: Path, thresholds: Mapping[str, float],
                 datasets: Sequence[str] | None = None, operating_point: str = DEFAULT_POINT,
                 retry_band: float = 0.5, methods: Sequence[str] = METHODS,
                 version: str | None = None, command: str = "",
                 alternatives: Sequence[str] = STRICT_POINTS) -> Path:
    """Validate every method leave-one-collection-out, ship the best, write ``out/``
    (model.json, MODEL_CARD.md, plots, the fused out-of-fold scores). Returns the card.

    ``thresholds``: each test's shipped threshold (the rule's margins). ``retry_band``:
    half-width of the retry band in fused log-odds. ``alternatives``: further named
    operating points whose thresholds ship beside the default's (an operator selects one
    with ``LIVENESS_OPERATING_POINT``) and whose held-out figures the card shows. Raises
    ``ValueError`` for unknown methods, an unknown operating point or unusable score
    files.
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
    point = parse_point(operating_point)
    table = load_score_table(score_files, datasets)
    full = tuple(table.tests)
    results = {m: loco(m, table, operating_point, thresholds) for m in methods}
    best = min(methods, key=lambda m: _rank(results[m][_best_subset(results[m])]))
    recommended = _best_subset(results[best])
    shown = list(dict.fromkeys([recommended, full]))
    others = {p: loco(best, table, p, thresholds, only=shown)
              for p in alternatives if p != operating_point}
    everything = np.ones(len(table.labels), bool)
    params: dict[str, dict] = {}
    ece: dict[str, dict[str, float]] = {}
    rules: dict[str, dict] = {}
    for subset in subsets(table.tests):
        model = fit_one(best, table, everything, subset, thresholds)
        validation = results[best][subset]
        scored = ~np.isnan(validation.oof)
        if model is None or len(np.unique(table.labels[scored])) < 2:
            continue
        threshold, choice = subset_threshold(point, best, table, everything, model, thresholds)
        use = table.present(subset)
        fused = expit(model.log_odds(table, use))
        y = table.labels[scored]
        ece[_key(subset)] = {c: expected_calibration_error(validation.calibrated[c][scored], y)
                             for c in CALIBRATIONS}
        calibration = min(CALIBRATIONS, key=lambda c: ece[_key(subset)][c])
        calibrator = _calibrate(calibration, fused, table.labels[use])
        points = {operating_point: threshold}
        for name in others:
            points[name] = float(threshold_at_operating_point(
                fused, table.labels[use], name, table.attack_types[use]))
        params[_key(subset)] = {
            "weights": dict(zip(subset, map(float, model.weights), strict=True)),
            "bias": model.bias, "threshold": float(threshold),
            "operating_points": points,
            "calibration": ({"method": "identity"} if calibrator is None
                            else calibrator.to_dict())}
        if choice is not None:
            rules[_key(subset)] = {"worst_bpcer_q": choice.q, "feasible": choice.feasible}
    if _key(full) not in params:
        raise ValueError("the full set of tests has no out-of-fold fused scores")
    # The headline figures are those of the recommended subset: what a job that names
    # no tests gets once the registry's defaults follow it (tests/unit/test_fusion_shipped).
    validation = results[best][recommended]
    scored = ~np.isnan(validation.oof)
    oof_full, y_full = validation.oof[scored], table.labels[scored]
    types_full = table.attack_types[scored]
    retry = RetryFigures.of(validation, table.labels, retry_band)
    # The fusion's "shipped operating point" figures are the honest ones: each held-out
    # collection judged at the default point's threshold fitted without it.
    summary = loco_summary(validation.per_collection, validation.per_collection)
    now = dt.datetime.now(dt.UTC)
    chosen_calibration = params[_key(recommended)]["calibration"]["method"]
    info = ModelInfo(
        test="fusion", name=f"{best}-log-odds", version=version or now.date().isoformat(),
        threshold=params[_key(recommended)]["threshold"],
        threshold_rule=(f"{operating_point}, applied to the shipped model's own fused "
                        "scores (validated leave-one-collection-out)"),
        trained_on=sorted({k.split('/', 1)[0] for k in table.keys}),
        created=now.isoformat(timespec="seconds"),
        metrics={"validation": "leave-one-collection-out on out-of-fold test scores; "
                               "models, thresholds and calibrations fitted without the "
                               "held-out collection",
                 "summary": summary,
                 "per_collection": {
                     c: {"auc": r.auc, "eer": r.eer, "apcer": r.apcer_pooled,
                         "apcer_max": r.apcer_max, "bpcer": r.bpcer, "acer": r.acer,
                         "threshold": r.threshold}
                     for c, r in validation.per_collection.items()},
                 "retry_share": retry.share, "retry_apcer": retry.apcer,
                 "retry_bpcer": retry.bpcer,
                 "ece_out_of_fold": ece[_key(recommended)],
                 "calibration": chosen_calibration,
                 "recommended_tests": list(recommended),
                 "headline_tests": list(recommended),
                 "alternatives": {p: {_key(t): r[t].summary() for t in shown}
                                  for p, r in others.items()}},
        notes=f"methods compared: {', '.join(methods)}; shipped the lowest mean HTER of "
              "each method's best subset of tests")
    manifest = {"format": "linear-log-odds", "format_version": 1, "info": info.to_dict(),
                "params": {"method": best, "tests": list(full), "subsets": params,
                           "operating_point": operating_point, "retry_band": retry_band,
                           "recommended_tests": list(recommended), "rule": rules}}
    write_model_folder(out, manifest, {})
    evaluation = out / "evaluation"
    report = evaluate(oof_full, y_full, types_full, threshold=info.threshold)
    paths = write_report(report, evaluation, f"fusion {info.name}: pooled leave-one-"
                         "collection-out fused scores (the shipped threshold)", oof_full,
                         y_full, types_full)
    curves = {"fused score (out of fold)": (oof_full, y_full)}
    for name in ("platt", "isotonic"):
        curves[f"{name} (fitted on the other collections)"] = (
            validation.calibrated[name][scored], y_full)
    paths["reliability"] = reliability_diagram(evaluation / "reliability.png", curves)
    write_oof_scores(evaluation / OOF_FILE, [k for k, s in zip(table.keys, scored, strict=True)
                                             if s],
                     table.collections[scored], table.labels[scored],
                     table.attack_types[scored], oof_full)
    card = out / "MODEL_CARD.md"
    card.write_text(_card(info, table, results, others, best, full, recommended, retry,
                          ece, retry_band, operating_point, command, paths))
    return card


def _summary_row(label: str, tests: Sequence[str], s: Mapping[str, float], bold: bool) -> str:
    mark = "**" if bold else ""
    return (f"| {mark}{label}{mark} | {' + '.join(tests)} | {s['auc_mean']:.3f} | "
            f"{s['auc_min']:.3f} | {_pct(s['eer_mean'])} | {_pct(s['apcer_mean'])} | "
            f"{_pct(s['bpcer_mean'])} | {_pct(s['hter_mean'])} |")


def _card(info, table: ScoreTable, results, others, best: str, full: tuple[str, ...],
          recommended: tuple[str, ...], retry: RetryFigures, ece: Mapping[str, Mapping],
          retry_band: float, operating_point: str, command: str, paths) -> str:
    header = ("| method | tests | mean AUC | worst AUC | mean EER | mean APCER | mean BPCER | "
              "mean HTER |")
    rule = "|---|---|---:|---:|---:|---:|---:|---:|"
    lines = [
        f"# Model card: fusion `{info.name}` {info.version}",
        "",
        "Fuses the tests' scores into one P(live) and decision. Trained on the tests' "
        "**out-of-fold** scores (each image scored by a test model that never saw its "
        f"collection), {len(table.keys)} images of {len(set(table.collections))} "
        f"collections ({', '.join(info.trained_on)}).",
        "",
        f"## Leave-one-collection-out at the default operating point `{operating_point}`",
        "",
        "Each collection held out in turn; the fusion, its threshold and its calibration "
        "fitted on the other collections only (the default point's own rule chooses its "
        "parameter by a further leave-one-collection-out inside them).",
        "",
        header, rule,
    ]
    for method, per_subset in results.items():
        for subset, validation in per_subset.items():
            if validation.summary():
                lines.append(_summary_row(method, subset, validation.summary(),
                                          (method, subset) == (best, recommended)))
    lines += ["", f"Shipped: **{best}** (the lowest mean HTER of each method's best subset); "
              "a model per subset of tests serves jobs that ask for other tests or where a "
              f"test failed. Recommended default tests (the lowest mean HTER of {best}'s "
              f"subsets): **{' + '.join(recommended)}** — the registry's defaults, so a job "
              "that names no tests gets these figures.",
              "", f"### Per held-out collection ({best}, {' + '.join(recommended)})", "",
              "APCER over all attacks and for the worst attack type, BPCER and ACER at the "
              "default point's threshold fitted without the collection.", "",
              "| collection | live | attacks | AUC | EER | APCER | APCER (worst type) | BPCER "
              "| ACER | threshold |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    headline = results[best][recommended].per_collection
    for name, r in sorted(headline.items()):
        lines.append(f"| {name} | {r.n_bona_fide} | {sum(r.n_attacks.values())} | "
                     f"{r.auc:.3f} | {_pct(r.eer)} | {_pct(r.apcer_pooled)} | "
                     f"{_pct(r.apcer_max)} | {_pct(r.bpcer)} | {_pct(r.acer)} | "
                     f"{r.threshold:.4g} |")
    s = info.metrics["summary"]  # loco_summary of these reports (train_fusion)
    lines.append(f"| **mean** | | | **{s['auc_mean']:.3f}** | **{_pct(s['eer_mean'])}** | "
                 f"**{_pct(s['apcer_mean'])}** | **{_pct(s['shipped_apcer_mean'])}** | "
                 f"**{_pct(s['bpcer_mean'])}** | **{_pct(s['shipped_acer_mean'])}** | |")
    lines.append(f"| **worst** | | | **{s['auc_min']:.3f}** | "
                 f"**{_pct(max(r.eer for r in headline.values()))}** | "
                 f"**{_pct(max(r.apcer_pooled for r in headline.values()))}** | "
                 f"**{_pct(s['shipped_apcer_max'])}** | **{_pct(s['shipped_bpcer_max'])}** | "
                 f"**{_pct(s['shipped_acer_max'])}** | |")
    per_type: dict[str, list[float]] = {}
    for r in headline.values():
        for kind, value in r.apcer_per_type.items():
            per_type.setdefault(kind, []).append(value)
    lines += ["", "APCER per attack type (mean over the collections that have it): "
              + ", ".join(f"{k} {_pct(float(np.mean(v)))} ({len(v)})"
                          for k, v in sorted(per_type.items())) + ".", ""]
    if others:
        lines += ["## Named alternatives (security first)", "",
                  "The same leave-one-collection-out with the threshold at a strict point "
                  "(fitted on the other collections): fewer attacks accepted, far more live "
                  "people refused on a new camera. Their thresholds ship beside the default's "
                  "(`LIVENESS_OPERATING_POINT`).", "", header, rule]
        for name, per_subset in others.items():
            for subset, validation in per_subset.items():
                if validation.summary():
                    lines.append(_summary_row(f"{best} @ {name}", subset,
                                              validation.summary(), False))
        lines.append("")
    headline_ece = ece["+".join(sorted(recommended))]
    lines += [
        "## Retry band and calibration (out of fold)",
        "",
        f"- Threshold of the shipped {' + '.join(recommended)} model {info.threshold:.4g} "
        f"({info.threshold_rule}); each subset has its own.",
        f"- Retry band: fused log-odds within ±{retry_band} of the threshold answer `retry`. "
        f"Held out, {_pct(retry.share)} of the images fall inside it (around their fold's "
        f"threshold); outside it APCER {_pct(retry.apcer)}, BPCER {_pct(retry.bpcer)}.",
        "- Expected calibration error of P(bona fide), held-out collections, maps fitted on "
        "the others: " + ", ".join(f"{c} {v:.3f}" for c, v in headline_ece.items())
        + f"; shipped: **{info.metrics['calibration']}** (`evaluation/reliability.png`).",
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
