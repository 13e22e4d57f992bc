"""Fine-tuning the last block of an ImageNet backbone, with capture-chain augmentation
and simulated recapture, on cached activations.

The recipe of issue 9, made cheap enough for a CPU:

1. The trunk is split at :data:`SPLIT_LAYERS` (the input of its last inverted-residual
   block, 7×7 at 224 px): a frozen *prefix* and a trainable *suffix* (that block and
   the 1×1 head convolution).
2. Each image is seen as several *variants* per crop scale: ``0`` the view served in
   production, ``1…V`` another camera (:func:`common.augment.camera_chain`: defocus,
   gamma, colour cast, rescale, sensor noise, JPEG), and for bona fide images one
   simulated print/screen recapture labelled as an attack
   (:func:`common.augment.simulated_recapture`). The prefix's activations of every
   variant are computed once and cached (HDF5, float16).
3. Per crop scale a suffix + global average pooling + dropout + sigmoid unit is trained
   on the cache (tf.data, Adam, class-balanced weights, batch norm kept in inference
   mode, fixed seeds), with early stopping on bona fide/attack *collections held out of
   training* (never a random split).

Held-out collections are scored on their variant 0 only: augmented and simulated images
are for training, never a test.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from common.augment import camera_chain, simulated_recapture
from common.config import Settings
from common.datasets.base import Sample
from common.faces import locate_face
from workers.cnn.backbones import Backbone
from workers.cnn.features import crop_at_scale

#: Where each ImageNet backbone is split: the first layer of the trainable suffix.
SPLIT_LAYERS = {"efficientnet_lite0": "block15_expand", "mobilenet_v2": "block_16_expand"}
#: Attack type of the simulated recaptures (training only).
SIMULATED = "simulated_recapture"


def split_trunk(trunk: Any, layer: str) -> tuple[Any, Any]:
    """(prefix, suffix) Keras models sharing ``trunk``'s layers, split before ``layer``.

    Raises ``ValueError`` when ``trunk`` has no such layer.
    """
    import keras

    try:
        cut = trunk.get_layer(layer).input
    except ValueError as exc:
        raise ValueError(f"{trunk.name} has no layer {layer!r} to split at") from exc
    return keras.Model(trunk.input, cut), keras.Model(cut, trunk.output)


@dataclass(frozen=True)
class ActivationTable:
    """Cached prefix activations, one row per (image, variant).

    ``A[scale]`` (M, h, w, c) float16; ``y`` (M,) 1 bona fide; ``image`` (M,) index of
    the source image in the dataset order; ``variant`` (M,) 0 served view, k ≥ 1 camera
    chain, −1 simulated recapture; ``collections`` and ``attack_types`` (M,).
    """

    A: dict[str, np.ndarray]
    y: np.ndarray
    image: np.ndarray
    variant: np.ndarray
    collections: np.ndarray
    attack_types: np.ndarray


def views(image: np.ndarray, face: Any, scale: str, side: int, variants: int,
          bona_fide: bool, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    """The RGB uint8 (side, side, 3) crops of one image at ``scale`` and their variant
    codes (module docstring). Augmentations run on a crop at twice the side, then the
    result is resized to ``side`` as the served crop is."""
    crops, codes = [crop_at_scale(image, face, scale, side)], [0]
    big = crop_at_scale(image, face, scale, 2 * side)

    def fit(x: np.ndarray) -> np.ndarray:
        return cv2.resize(x, (side, side), interpolation=cv2.INTER_AREA)

    for k in range(1, variants + 1):
        crops.append(fit(camera_chain(big, rng)))
        codes.append(k)
    if bona_fide:
        crops.append(fit(simulated_recapture(big, rng)))
        codes.append(-1)
    return crops, codes


def extract_activations(samples: Sequence[tuple[Sample, object]], backbone: Backbone,
                        prefix: Any, scales: Sequence[str], cache: Path, settings: Settings,
                        variants: int = 1, seed: int = 0, batch: int = 32) -> ActivationTable:
    """Prefix activations of every sample's variants at every scale, reusing ``cache``.

    One HDF5 group per sample key (prefixed by the dataset name) holds, per scale, the
    (V, h, w, c) float16 activations and the variant codes; a sample's augmentations are
    seeded by ``seed`` and its key, so a rebuilt cache is identical. ``cache`` must be
    specific to the backbone, split layer, ``variants`` and ``seed`` (the caller names it).
    """
    import tensorflow as tf

    side = backbone.input_side
    run = tf.function(lambda x: prefix(x, training=False), reduce_retracing=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, Sample]] = []
    with h5py.File(cache, "a") as store:
        todo = []
        for sample, dataset in samples:
            key = f"{dataset.name}/{sample.key}"  # type: ignore[attr-defined]
            rows.append((key, sample))
            if key not in store or any(s not in store[key] for s in scales):
                todo.append((key, sample, dataset))
        for key, sample, dataset in todo:
            image = dataset.read_image(sample)  # type: ignore[attr-defined]
            face = locate_face(image, settings) if "face" in scales else None
            group = store.require_group(key)
            for scale in scales:
                if scale in group:
                    continue
                rng = np.random.default_rng([seed, zlib.crc32(f"{key}/{scale}".encode())])
                crops, codes = views(image, face, scale, side, variants, sample.label == 1, rng)
                x = backbone.preprocess(np.stack(crops))
                acts = np.concatenate([np.asarray(run(tf.constant(x[i:i + batch])))
                                       for i in range(0, len(x), batch)])
                group.create_dataset(scale, data=acts.astype(np.float16))
                group.create_dataset(f"{scale}_variants", data=np.array(codes, np.int8))
        A: dict[str, list[np.ndarray]] = {s: [] for s in scales}
        y, image_index, variant, colls, types = [], [], [], [], []
        for i, (key, sample) in enumerate(rows):
            codes = store[key][f"{scales[0]}_variants"][()]
            for scale in scales:
                A[scale].append(store[key][scale][()])
            for code in codes:
                attack = sample.label == 0 or code == -1
                y.append(0 if attack else 1)
                types.append(SIMULATED if code == -1 else sample.attack_type)
                image_index.append(i)
                variant.append(int(code))
                colls.append(sample.collection)
    return ActivationTable(
        A={s: np.concatenate(v) for s, v in A.items()},
        y=np.array(y, int), image=np.array(image_index), variant=np.array(variant),
        collections=np.array(colls, dtype=object), attack_types=np.array(types, dtype=object),
    )


def scale_head(suffix: Any, name: str, dropout: float = 0.2, frozen_bn: bool = True) -> Any:
    """Activations → ``suffix`` → GAP → dropout → P(live). ``frozen_bn``: batch norm in
    inference mode (fine-tuning); False when training from scratch."""
    import keras
    from keras import layers

    inputs = keras.Input(suffix.input.shape[1:], name=f"{name}_activations")
    maps = suffix(inputs, training=False) if frozen_bn else suffix(inputs)
    x = layers.GlobalAveragePooling2D()(maps)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid", name="p_live")(x),
                       name=f"finetune_{name}")


@dataclass(frozen=True)
class FitConfig:
    """Training hyper-parameters (Adam learning rate, batch, epoch cap, patience of
    early stopping on the held-out collections' loss, seed, batch norm frozen)."""

    learning_rate: float = 3e-4
    batch: int = 64
    epochs: int = 5
    patience: int = 1
    seed: int = 0
    frozen_bn: bool = True


def fit_scale(suffix: Any, start: list[np.ndarray], A: np.ndarray, y: np.ndarray,
              val: tuple[np.ndarray, np.ndarray] | None, config: FitConfig,
              epochs: int | None = None) -> tuple[Any, int]:
    """Train ``scale_head(suffix)`` from the suffix weights ``start`` on activations ``A``
    (M, h, w, c) float16 and labels ``y``; early stopping on ``val`` (activations,
    labels), else exactly ``epochs``. Returns (model, epochs trained to its best)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    suffix.set_weights(start)
    model = scale_head(suffix, "scale", frozen_bn=config.frozen_bn)
    model.compile(keras.optimizers.Adam(config.learning_rate), "binary_crossentropy")
    counts = np.bincount(y, minlength=2).astype(float)
    class_weight = {c: len(y) / (2 * counts[c]) for c in (0, 1) if counts[c]}
    data = (tf.data.Dataset.from_tensor_slices((A, y.astype(np.float32)))
            .shuffle(len(y), seed=config.seed)
            .map(lambda a, t: (tf.cast(a, tf.float32), t))
            .batch(config.batch).prefetch(tf.data.AUTOTUNE))
    callbacks = []
    if val is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True))
    history = model.fit(
        data, epochs=epochs or config.epochs, class_weight=class_weight, verbose=0,
        shuffle=False,  # the tf.data pipeline shuffles (seeded)
        validation_data=(val[0].astype(np.float32), val[1]) if val is not None else None,
        callbacks=callbacks)
    if val is None:
        return model, epochs or config.epochs
    losses = history.history["val_loss"]
    return model, int(np.argmin(losses)) + 1


def predict(model: Any, A: np.ndarray, batch: int = 256) -> np.ndarray:
    """P(live) (M,) of a :func:`scale_head` model on activations (batch evaluation)."""
    import tensorflow as tf

    run = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return np.concatenate([np.asarray(run(tf.constant(A[i:i + batch], tf.float32)))[:, 0]
                           for i in range(0, len(A), batch)])


def mean_logit(scores: Sequence[np.ndarray]) -> np.ndarray:
    """Fuse P(live) of several scales: the sigmoid of their mean log-odds."""
    p = np.clip(np.stack(scores), 1e-7, 1 - 1e-7)
    return 1.0 / (1.0 + np.exp(-np.mean(np.log(p / (1 - p)), axis=0)))


def validation_collections(collections: np.ndarray, count: int, seed: int) -> list[str]:
    """``count`` collections (never the largest) to hold out of training for early stopping."""
    names, sizes = np.unique(collections.astype(str), return_counts=True)
    candidates = sorted(names[np.argsort(sizes)[:-1]].tolist())
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(candidates, size=min(count, len(candidates)), replace=False))


def loco_finetune(table: ActivationTable, suffixes: dict[str, Any],
                  operating_point: str = "eer", config: FitConfig | None = None,
                  val_count: int = 2) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """Leave-one-collection-out fine-tuning of one suffix per scale (``suffixes``: scale →
    suffix model, trained from its current weights in every fold).

    Each fold trains on every variant of the training collections except ``val_count``
    of them, which early stopping watches (their served views; without both classes
    there, the fold trains ``config.epochs``); the held-out collection is scored on its
    served views. Returns ({scale: LocoResult, "a+b": the mean-log-odds
    fusion of the scales}, {scale: best epoch count per fold}).
    """
    from workers.cnn.probe import loco

    config = config or FitConfig()
    served = table.variant == 0
    images = table.image[served]
    order = np.argsort(images)  # served rows in image order
    y, types, colls = (table.y[served][order], table.attack_types[served][order],
                       table.collections[served][order])
    starts = {s: m.get_weights() for s, m in suffixes.items()}
    epochs: dict[str, list[int]] = {s: [] for s in suffixes}

    def fit_scores(train: np.ndarray, test: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        val_colls = validation_collections(colls[train], val_count, config.seed)
        fit_rows = train[table.image] & ~np.isin(table.collections.astype(str), val_colls)
        val_rows = served & np.isin(table.collections.astype(str), val_colls) & train[table.image]
        train_served = served & train[table.image]
        test_served = served & test[table.image]
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for scale, suffix in suffixes.items():
            A = table.A[scale]
            val = ((A[val_rows], table.y[val_rows])
                   if len(np.unique(table.y[val_rows])) == 2 else None)
            model, best = fit_scale(suffix, starts[scale], A[fit_rows], table.y[fit_rows],
                                    val, config)
            epochs[scale].append(best)
            out[scale] = (
                _in_image_order(predict(model, A[train_served]), table.image[train_served]),
                _in_image_order(predict(model, A[test_served]), table.image[test_served]))
        if len(suffixes) > 1:
            out["+".join(suffixes)] = (mean_logit([v[0] for v in out.values()]),
                                       mean_logit([v[1] for v in out.values()]))
        for scale, suffix in suffixes.items():
            suffix.set_weights(starts[scale])
        return out

    return loco(y, types, colls, operating_point, fit_scores), epochs


def _in_image_order(scores: np.ndarray, image: np.ndarray) -> np.ndarray:
    return scores[np.argsort(image)]
