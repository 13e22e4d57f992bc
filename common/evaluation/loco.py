"""Leave-one-collection-out results of a test's scores, shared by the trainers.

Every collection — its people, cameras, screens, printers — is held out in turn. Figures
per held-out collection: AUC, EER (both threshold-free), and APCER, BPCER, HTER at the
fold's threshold (ISO/IEC 30107-3; :func:`common.evaluation.report.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.evaluation.metrics import threshold_at_operating_point
from common.evaluation.report import EvaluationReport, evaluate, summarise_folds


@dataclass(frozen=True)
class LocoResult:
    """Per held-out collection: its report and the threshold it was judged at; the
    held-out scores of every image (NaN where an image was not scored)."""

    per_collection: dict[str, EvaluationReport]
    thresholds: dict[str, float]
    oof: np.ndarray

    def summary(self) -> dict[str, float]:
        """Mean and worst AUC, mean EER, APCER, BPCER, HTER over the held-out
        collections (:func:`common.evaluation.report.summarise_folds`)."""
        return summarise_folds(self.per_collection)


def held_out_collections(collections: np.ndarray, valid: np.ndarray) -> list[str]:
    return sorted({str(c) for c in collections[valid]})


def fold_report(scores: np.ndarray, y: np.ndarray, types: np.ndarray, test: np.ndarray,
            threshold: float) -> EvaluationReport | None:
    if len(np.unique(y[test])) < 2:
        return None
    return evaluate(scores[test], y[test], types[test], threshold=threshold)


def loco_fixed(scores: np.ndarray, y: np.ndarray, attack_types: np.ndarray,
               collections: np.ndarray, operating_point: str = "eer") -> LocoResult:
    """Leave-one-collection-out figures of scores that need no fitting (the pretrained
    networks): each held-out collection judged at the threshold chosen at
    ``operating_point`` on the other collections' scores. NaN scores are left out."""
    valid = np.isfinite(scores)
    reports, thresholds = {}, {}
    for held_out in held_out_collections(collections, valid):
        test = valid & (collections == held_out)
        train = valid & ~test
        t = threshold_at_operating_point(scores[train], y[train], operating_point,
                                         attack_types[train])
        report = fold_report(scores, y, attack_types, test, t)
        if report is not None:
            reports[held_out], thresholds[held_out] = report, t
    return LocoResult(reports, thresholds, np.where(valid, scores, np.nan))


def better(a: LocoResult, b: LocoResult) -> bool:
    """Whether ``a`` generalises better than ``b``: higher mean leave-one-collection-out
    AUC, then higher worst-collection AUC (rounded to 3 decimals), then lower mean HTER."""
    sa, sb = a.summary(), b.summary()
    return ((round(sa["auc_mean"], 3), round(sa["auc_min"], 3), -sa["hter_mean"])
            > (round(sb["auc_mean"], 3), round(sb["auc_min"], 3), -sb["hter_mean"]))
