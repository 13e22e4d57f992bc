"""Linear probes on frozen backbone features, validated leave-one-collection-out.

The baseline the CNN test must beat: a standardised logistic regression on the pooled
features of one scale (or of several, concatenated). Each collection — its people,
cameras, screens, printers — is held out in turn; the model and its threshold (at the
operating point, on the training collections' own scores) come from the other
collections only, so the held-out HTER is what a new deployment would see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from common.evaluation.metrics import threshold_at_operating_point
from common.evaluation.report import EvaluationReport, evaluate, summarise_folds
from workers.cnn.features import FeatureTable


def probe_model(C: float = 0.1) -> object:
    """Standardise, then an L2 logistic regression (``C``: inverse regularisation)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


def collection_balanced_weights(collections: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Sample weights (N,) float64, mean 1, that give every (collection, label) group the
    same total weight.

    Without them the largest collections (NUAA's 1,164 images, one collection's 760)
    decide the head, and a new camera looks like them or is misjudged; with them each
    collection's bona fide and attack presentations count alike, as the
    leave-one-collection-out figures (a mean over collections) do.
    """
    groups = [(str(c), int(label)) for c, label in zip(collections, labels, strict=True)]
    sizes = Counter(groups)
    weights = np.array([1.0 / sizes[g] for g in groups], float)
    return weights * len(weights) / weights.sum() if len(weights) else weights


def fit_probe(X: np.ndarray, y: np.ndarray, C: float,
              collections: np.ndarray | None = None) -> object:
    """:func:`probe_model` fitted on ``X`` (N, D), ``y`` (N,); with ``collections`` (N,)
    each (collection, label) group weighs the same (:func:`collection_balanced_weights`)."""
    model = probe_model(C)
    if collections is None:
        return model.fit(X, y)  # type: ignore[attr-defined]
    return model.fit(X, y, logisticregression__sample_weight=  # type: ignore[attr-defined]
                     collection_balanced_weights(collections, y))


@dataclass(frozen=True)
class LocoResult:
    """Per held-out collection reports, and the pooled out-of-fold scores."""

    per_collection: dict[str, EvaluationReport]
    oof: np.ndarray


FitScores = Callable[[np.ndarray, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]


def loco(y: np.ndarray, attack_types: np.ndarray, collections: np.ndarray,
         operating_point: str, fit_scores: FitScores) -> dict[str, LocoResult]:
    """Hold out each collection in turn.

    ``fit_scores(train, test)`` gets two boolean masks over the N samples, fits on
    ``train`` and returns, per model name, the training and held-out P(live) (one model
    or several, e.g. one per crop scale and their fusion). Each model's threshold comes
    from its own training scores at ``operating_point``. Returns a result per name.
    """
    oof: dict[str, np.ndarray] = {}
    reports: dict[str, dict[str, EvaluationReport]] = {}
    for held_out in sorted(set(collections)):
        test = collections == held_out
        train = ~test
        if len(np.unique(y[train])) < 2:
            continue
        for name, (train_scores, test_scores) in fit_scores(train, test).items():
            oof.setdefault(name, np.full(len(y), np.nan))[test] = test_scores
            threshold = threshold_at_operating_point(train_scores, y[train], operating_point,
                                                     attack_types[train])
            if len(np.unique(y[test])) == 2:
                reports.setdefault(name, {})[str(held_out)] = evaluate(
                    test_scores, y[test], attack_types[test], threshold=threshold)
    return {name: LocoResult(reports.get(name, {}), scores) for name, scores in oof.items()}


#: ``fit(X, y, collections)`` → a function giving P(live) (M,) of features (M, D).
Fit = Callable[[np.ndarray, np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]


def training_rows(table: FeatureTable, scales: Sequence[str], rows: np.ndarray,
                  copies: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, collections) to fit on: the ``rows`` (boolean mask) of the concatenated
    features of ``scales``, followed with ``copies`` by the same rows of each of the
    table's lower-resolution copies (same labels and collections)."""
    views = [table.X] + (list(table.copies) if copies else [])
    X = np.concatenate([np.concatenate([v[s] for s in scales], axis=1)[rows] for v in views])
    return (X, np.tile(table.y[rows], len(views)),
            np.tile(table.collections[rows], len(views)))


def _loco(table: FeatureTable, scales: Sequence[str], operating_point: str, fit: Fit,
          copies: bool = False) -> LocoResult:
    """:func:`loco` of one model on the concatenated features of ``scales``, fitted by
    ``fit`` on the training collections (and, with ``copies``, their lower-resolution
    copies); its threshold comes from its scores on the training collections' own images,
    and only the held-out collection's own images are scored."""
    X = np.concatenate([table.X[s] for s in scales], axis=1)

    def by_mask(train: np.ndarray, test: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        predict = fit(*training_rows(table, scales, train, copies))
        return {"model": (predict(X[train]), predict(X[test]))}

    return loco(table.y, table.attack_types, table.collections, operating_point,
                by_mask)["model"]


def loco_probe(table: FeatureTable, scales: Sequence[str], operating_point: str = "eer",
               C: float = 0.1, balanced: bool = False, copies: bool = False) -> LocoResult:
    """Leave-one-collection-out evaluation of a probe on the features of ``scales``
    (``balanced``: collection-balanced sample weights, :func:`fit_probe`; ``copies``:
    trained on the table's lower-resolution copies too). Raises ``ValueError`` when
    ``copies`` is asked of a table without them."""
    if copies and not table.copies:
        raise ValueError("the feature table has no lower-resolution copies")

    def fit(x: np.ndarray, y: np.ndarray, c: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        model = fit_probe(x, y, C, c if balanced else None)
        return lambda z: model.predict_proba(z)[:, 1]  # type: ignore[attr-defined]

    return _loco(table, scales, operating_point, fit, copies)


def seed_head(dim: int, seed: int = 0) -> object:
    """Collins 2019's head: dense 1024 → 256 → 32, each LeakyReLU(0.3), batch norm and
    dropout 0.3, then a sigmoid unit (the seed's two-way softmax, as one output)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((dim,))
    x = inputs
    for width in (1024, 256, 32):
        x = layers.Dense(width)(x)
        x = layers.LeakyReLU(0.3)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(0.3)(x)
    model = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    return model


def loco_seed_head(table: FeatureTable, scales: Sequence[str], operating_point: str = "eer",
                   epochs: int = 15) -> LocoResult:
    """Leave-one-collection-out evaluation of :func:`seed_head` on standardised features
    (Adam 1e-3, batch 64, ``epochs``; threshold on the training collections' scores)."""
    def fit(x: np.ndarray, y: np.ndarray, _: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        mean, std = x.mean(0), x.std(0) + 1e-6
        model = seed_head(x.shape[1])
        model.fit((x - mean) / std, y, epochs=epochs, batch_size=64,  # type: ignore[attr-defined]
                  verbose=0)
        # batch evaluation of whole folds (not a per-image serving path)
        return lambda z: model.predict((z - mean) / std, verbose=0)[:, 0]  # type: ignore[attr-defined]

    return _loco(table, scales, operating_point, fit)


def summary_row(result: LocoResult) -> dict[str, float]:
    """Mean (and worst) AUC, EER, APCER, BPCER, HTER over the held-out collections."""
    return summarise_folds(result.per_collection)
