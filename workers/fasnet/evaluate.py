"""Leave-one-collection-out figures of the fasnet variants, and the choice of what ships.

Every collection — its people, cameras, screens, printers — is held out in turn. The
pretrained pair has seen none of them (it was trained on Minivision's own data), so its
plain scores are out-of-sample everywhere; only the threshold is fitted, and it comes
from the *other* collections' scores (:func:`loco_fixed`). A head re-fitted on the
embeddings (:func:`loco_head`) is fitted on the other collections, and its threshold is
chosen on *their* leave-one-collection-out scores (a nested split), so neither the head
nor the threshold of a fold has seen the held-out collection.

Figures per held-out collection: AUC, EER (both threshold-free), and APCER, BPCER, HTER
at the fold's threshold (ISO/IEC 30107-3; :func:`common.evaluation.report.evaluate`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from joblib import Parallel, delayed
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from common.evaluation.loco import (
    LocoResult,
    better,
    fold_report,
    held_out_collections,
    loco_fixed,
)
from common.evaluation.metrics import threshold_at_operating_point

__all__ = ["LocoResult", "better", "head_model", "loco_fixed", "loco_head"]


def head_model(C: float) -> object:
    """Standardise, then an L2 logistic regression (``C``: inverse regularisation)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))


Fit = Callable[[np.ndarray, np.ndarray], object]


def _oof_scores(X: np.ndarray, y: np.ndarray, collections: np.ndarray, rows: np.ndarray,
                fit: Fit) -> np.ndarray:
    """Leave-one-collection-out P(live) of the ``rows`` (boolean mask), each collection
    scored by a model fitted on the other rows."""
    out = np.full(len(y), np.nan)
    for held_out in sorted({str(c) for c in collections[rows]}):
        test = rows & (collections == held_out)
        train = rows & ~test
        if len(np.unique(y[train])) < 2:
            continue
        model = fit(X[train], y[train])
        out[test] = model.predict_proba(X[test])[:, 1]  # type: ignore[attr-defined]
    return out


def loco_head(X: np.ndarray, y: np.ndarray, attack_types: np.ndarray,
              collections: np.ndarray, C: float = 0.1,
              operating_point: str = "eer", n_jobs: int = 1) -> LocoResult:
    """Leave-one-collection-out figures of a standardised logistic head on features
    ``X`` (N, D) (rows with NaN features are left out). Per held-out collection the head
    is fitted on the other collections, and its threshold is chosen at
    ``operating_point`` on their own leave-one-collection-out scores (nested: heads
    fitted without the held-out collection and without the scored one). ``n_jobs``:
    processes fitting the outer folds in parallel (joblib; the result does not depend
    on it)."""
    valid = np.all(np.isfinite(X), axis=1)

    def fit(xtr: np.ndarray, ytr: np.ndarray) -> object:
        return head_model(C).fit(xtr, ytr)  # type: ignore[attr-defined]

    def fold(held_out: str) -> tuple[np.ndarray, np.ndarray, float]:
        test = valid & (collections == held_out)
        train = valid & ~test
        model = fit(X[train], y[train])
        inner = _oof_scores(X, y, collections, train, fit)
        scored = train & np.isfinite(inner)
        t = threshold_at_operating_point(inner[scored], y[scored], operating_point,
                                         attack_types[scored])
        return test, model.predict_proba(X[test])[:, 1], t  # type: ignore[attr-defined]

    # The outer folds are independent: one process each, up to ``n_jobs`` at a time.
    names = held_out_collections(collections, valid)
    folds = Parallel(n_jobs=n_jobs)(delayed(fold)(h) for h in names)
    oof = np.full(len(y), np.nan)
    reports, thresholds = {}, {}
    for held_out, (test, scores, t) in zip(names, folds, strict=True):
        oof[test] = scores
        report = fold_report(oof, y, attack_types, test, t)
        if report is not None:
            reports[held_out], thresholds[held_out] = report, t
    return LocoResult(reports, thresholds, oof)


