"""Training the depth3d classifiers and validating them on collections they never saw.

:func:`features` turns the reconstructions into what the classifiers read (depth maps
of a given side, the mesh signals against a reference face computed from the training
rows only). :func:`fit_classifier` trains one network (Adam, binary cross-entropy,
classes weighted to balance, each depth map also seen mirrored left-right — a face's
mirror image is a face).

* :func:`grouped_cv` — collections split into ``k`` groups (scikit-learn's
  ``GroupKFold``), each group held out in turn, on a capped training subset: the cheap
  validation that chooses the volume side (32³ or 64³) per classifier.
* :func:`loco` — every collection held out in turn (the figure that counts): the
  network and the reference face are fitted on the other collections; each held-out
  collection is judged at the threshold chosen at the operating point on the *other*
  collections' held-out scores (:func:`common.evaluation.loco.loco_fixed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from common.evaluation.loco import LocoResult, loco_fixed
from workers.depth3d.networks import build_classifier, inputs_of
from workers.depth3d.signals import mesh_signals, reference_shape
from workers.depth3d.volume import DEPTH_FAR, depth_map


@dataclass(frozen=True)
class TrainingConfig:
    """How one classifier is trained: ``kind`` (``voxnet``/``depthnet``), volume
    ``side``, ``epochs``, ``batch`` size, Adam's ``learning_rate``, ``seed``."""

    kind: str
    side: int
    epochs: int
    batch: int = 64
    learning_rate: float = 1e-3
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.kind}{self.side}"


def depth_maps(points: np.ndarray, side: int) -> np.ndarray:
    """(N, side, side) float32 depth maps of canonical points (N, 468, 3); rows without
    a reconstruction (NaN) are all far (no face)."""
    out = np.full((len(points), side, side), DEPTH_FAR, np.float32)
    for i, p in enumerate(points):
        if np.all(np.isfinite(p)):
            out[i] = depth_map(p, side)
    return out


def signals(points: np.ndarray, image_points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N, 7) float32 mesh signals (NaN rows without a reconstruction)."""
    out = np.full((len(points), 7), np.nan, np.float32)
    for i in range(len(points)):
        if np.all(np.isfinite(points[i])):
            out[i] = mesh_signals(points[i], image_points[i], reference)
    return out


def fit_classifier(config: TrainingConfig, depth: np.ndarray, sig: np.ndarray,
                   y: np.ndarray) -> Any:
    """The trained Keras classifier (module docstring) on rows with a reconstruction."""
    import keras

    depth = np.concatenate([depth, depth[:, :, ::-1]])
    sig = np.concatenate([sig, sig])
    y = np.concatenate([y, y]).astype(np.float32)
    model = build_classifier(config.kind, config.side, sig.mean(axis=0), sig.std(axis=0),
                             config.seed)
    model.compile(keras.optimizers.Adam(config.learning_rate), "binary_crossentropy")
    n_live = max(int(y.sum()), 1)
    n_attack = max(len(y) - n_live, 1)
    weights = {0: len(y) / (2.0 * n_attack), 1: len(y) / (2.0 * n_live)}
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(y))
    model.fit(inputs_of(config.kind, depth[order], sig[order]), y[order],
              batch_size=config.batch, epochs=config.epochs, class_weight=weights, verbose=0)
    return model


def predict(model: Any, kind: str, depth: np.ndarray, sig: np.ndarray) -> np.ndarray:
    """P(live) (N,) float64."""
    return np.asarray(model.predict(inputs_of(kind, depth, sig), batch_size=256,
                                    verbose=0)).ravel().astype(np.float64)


def features(points: np.ndarray, image_points: np.ndarray, train: np.ndarray,
             side: int, depth: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(depth maps, signals, reference face) with the reference fitted on ``train``
    rows (boolean mask) only; ``depth`` as for :func:`grouped_cv`."""
    reference = reference_shape(points[train])
    depth = depth_maps(points, side) if depth is None else depth
    return depth, signals(points, image_points, reference), reference


def _held_out_scores(config: TrainingConfig, points: np.ndarray, image_points: np.ndarray,
                     depth: np.ndarray, y: np.ndarray, train: np.ndarray,
                     test: np.ndarray) -> np.ndarray:
    reference = reference_shape(points[train])
    sig = signals(points, image_points, reference)
    model = fit_classifier(config, depth[train], sig[train], y[train])
    return predict(model, config.kind, depth[test], sig[test])


def grouped_cv(config: TrainingConfig, points: np.ndarray, image_points: np.ndarray,
               y: np.ndarray, collections: np.ndarray, k: int = 3,
               max_train_rows: int | None = None,
               depth: np.ndarray | None = None) -> dict[str, float]:
    """Mean and worst AUC over ``k`` groups of collections held out in turn, each fold
    trained on at most ``max_train_rows`` of its training rows (a fixed random subset,
    the same for every configuration, so that sides compare at equal data and a 64³
    VoxNet fits in the time a 32³ one takes on the full set). ``depth``: the
    :func:`depth_maps` of ``points`` at the config's side, when already computed."""
    valid = np.all(np.isfinite(points.reshape(len(points), -1)), axis=1)
    depth = depth_maps(points, config.side) if depth is None else depth
    rows = np.where(valid)[0]
    rng = np.random.default_rng(config.seed)
    aucs = []
    for tr, te in GroupKFold(n_splits=k).split(rows, y[rows], collections[rows]):
        if max_train_rows is not None and len(tr) > max_train_rows:
            tr = np.sort(rng.choice(tr, max_train_rows, replace=False))
        train = np.zeros(len(y), bool)
        test = np.zeros(len(y), bool)
        train[rows[tr]], test[rows[te]] = True, True
        scores = _held_out_scores(config, points, image_points, depth, y, train, test)
        aucs.append(float(roc_auc_score(y[test], scores)))
    return {"auc_mean": float(np.mean(aucs)), "auc_min": float(np.min(aucs)), "folds": k,
            "train_rows": max_train_rows or 0}


def loco(config: TrainingConfig, points: np.ndarray, image_points: np.ndarray,
         y: np.ndarray, attack_types: np.ndarray, collections: np.ndarray,
         operating_point: str = "eer", depth: np.ndarray | None = None) -> LocoResult:
    """Leave-one-collection-out result (module docstring); NaN for rows without a
    reconstruction. ``depth`` as for :func:`grouped_cv`."""
    valid = np.all(np.isfinite(points.reshape(len(points), -1)), axis=1)
    depth = depth_maps(points, config.side) if depth is None else depth
    oof = np.full(len(y), np.nan)
    names: Sequence[str] = sorted({str(c) for c in collections[valid]})
    for held_out in names:
        test = valid & (collections == held_out)
        train = valid & ~test
        if len(np.unique(y[train])) < 2:
            continue
        oof[test] = _held_out_scores(config, points, image_points, depth, y, train, test)
    return loco_fixed(oof, y, attack_types, collections, operating_point)
