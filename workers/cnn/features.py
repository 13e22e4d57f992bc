"""Frozen-backbone features of face crops at several context scales, cached in HDF5.

Scales (the evidence of an attack lives at different ones):

* ``face`` – the face stage's aligned crop (:func:`common.faces.face_crop`) at
  ``context = 1.6``: the face with a margin (screen moiré, print texture, skin);
* ``frame`` – the whole image resized to the backbone's input square: where screen
  bezels, paper edges and fingers holding a photo are.

Poolings (what is averaged over the image):

* ``last`` – global average pooling of the backbone's last feature map (its 1280
  semantic channels for the ImageNet backbones);
* ``stages`` – the same pooling of the last map of every stage
  (:attr:`~workers.cnn.backbones.Backbone.stage_layers`) as well, concatenated finest
  first (EfficientNet-Lite0: 24 + 40 + 80 + 112 + 192 + 320 + 1280 = 2048 channels).
  Early stages keep the texture evidence of a recapture (print dots, screen moiré, blur)
  that the last map has abstracted away. Pooled convolutional activations are texture
  descriptors (Cimpoi, Maji & Vedaldi, "Deep filter banks for texture recognition and
  segmentation", CVPR 2015), and earlier layers are the more general, less
  task-specific ones (Yosinski et al., "How transferable are features in deep neural
  networks?", NeurIPS 2014). Measured here leave-one-collection-out on 20 collections
  (``models/cnn/MODEL_CARD.md``).

:class:`FeatureExtractor` runs the backbone and global average pooling through one
compiled ``tf.function`` with a fixed input signature (Keras's per-call ``predict`` is
several times slower on CPU); :func:`extract_features` caches its output per dataset
sample, backbone and scale in ``<cache>/`` :func:`cache_name` so training heads and
cross-validation never recompute it. With ``copies`` it also caches the features of that
many lower-resolution copies of every image (:func:`common.augment.lower_resolution`,
seeded per sample and copy), the training copies of the shipped probe.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np

from common.augment import lower_resolution
from common.config import Settings
from common.datasets.base import Sample
from common.errors import ModelError
from common.faces import face_crop, locate_face
from common.result import FaceBox, FaceDetection
from workers.cnn.backbones import Backbone

SCALES = ("face", "frame")
#: What is pooled: the last feature map, or the last map of every stage too.
POOLINGS = ("last", "stages")
#: Context of the ``face`` scale (1.0: ArcFace's tight framing).
FACE_CONTEXT = 1.6


def crop_at_scale(image: np.ndarray, face: FaceDetection, scale: str, side: int) -> np.ndarray:
    """The RGB uint8 (side, side, 3) view of ``image`` at ``scale`` (module docstring)."""
    if scale == "face":
        return face_crop(image, face, side, context=FACE_CONTEXT)
    if scale == "frame":
        return cv2.resize(np.ascontiguousarray(image), (side, side), interpolation=cv2.INTER_AREA)
    raise ValueError(f"unknown scale {scale!r}; expected one of {SCALES}")


def cache_name(backbone: Backbone, pooling: str) -> str:
    """The feature cache file of ``backbone`` at ``pooling`` (``<backbone>.h5`` for
    ``last``, ``<backbone>-stages.h5``)."""
    return f"{backbone.name}.h5" if pooling == "last" else f"{backbone.name}-{pooling}.h5"


def pooled_trunk(backbone: Backbone, model: object, pooling: str) -> object:
    """The Keras model whose output maps are pooled: ``model`` itself for ``last``; for
    ``stages`` a model with one output per stage layer, then the last map.

    Raises ``ValueError`` for an unknown pooling, :class:`ModelError` when the backbone
    names no stages (or names a layer it lacks)."""
    if pooling == "last":
        return model
    if pooling != "stages":
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
    if not backbone.stage_layers:
        raise ModelError(f"backbone {backbone.name} names no stages: use pooling 'last'")
    import keras

    try:
        maps = [model.get_layer(n).output for n in backbone.stage_layers]  # type: ignore[attr-defined]
    except ValueError as exc:
        raise ModelError(f"backbone {backbone.name}: {exc}") from exc
    return keras.Model(model.input, [*maps, model.output],  # type: ignore[attr-defined]
                       name=f"{backbone.name}_stages")


class FeatureExtractor:
    """Backbone + global average pooling (``pooling``: :data:`POOLINGS`) as one compiled
    function: uint8 batches in, float32 (N, D) features out. ``model`` is the backbone,
    ``trunk`` the model whose maps are pooled (:func:`pooled_trunk`)."""

    def __init__(self, backbone: Backbone, init: Path | None = None,
                 pooling: str = "last") -> None:
        import tensorflow as tf

        self.backbone = backbone
        self.pooling = pooling
        self.model = backbone.build(init)
        self.trunk = pooled_trunk(backbone, self.model, pooling)
        side = backbone.input_side

        @tf.function(input_signature=[tf.TensorSpec((None, side, side, 3), tf.float32)],
                     reduce_retracing=True)
        def pooled(x: tf.Tensor) -> tf.Tensor:
            maps = self.trunk(x, training=False)
            maps = maps if isinstance(maps, list | tuple) else [maps]
            return tf.concat([tf.reduce_mean(m, axis=[1, 2]) for m in maps], axis=1)

        self._pooled = pooled

    def __call__(self, crops: np.ndarray, batch: int = 32) -> np.ndarray:
        out = [np.asarray(self._pooled(self.backbone.preprocess(crops[i:i + batch])))
               for i in range(0, len(crops), batch)]
        return np.concatenate(out).astype(np.float32)


def scaled_face(face: FaceDetection, fx: float, fy: float) -> FaceDetection:
    """``face`` in an image resized by ``fx`` horizontally and ``fy`` vertically (box
    rounded to pixels, landmarks scaled)."""
    box = face.box
    return dataclasses.replace(
        face,
        box=FaceBox(top=round(box.top * fy), right=round(box.right * fx),
                    bottom=round(box.bottom * fy), left=round(box.left * fx)),
        landmarks=tuple((x * fx, y * fy) for x, y in face.landmarks))


def copy_rng(seed: int, copy: int, key: str) -> np.random.Generator:
    """The generator of lower-resolution copy ``copy`` of sample ``key``: the same copy
    whatever the order or subset of samples extracted."""
    return np.random.default_rng([seed, copy, zlib.crc32(key.encode())])


def lower_resolution_views(image: np.ndarray, face: FaceDetection, key: str, copies: int,
                           seed: int, side: int) -> list[dict[str, np.ndarray]]:
    """Per copy, the ``side``-pixel view at every scale of a lower-resolution copy of
    ``image`` (:func:`common.augment.lower_resolution`; the face box scaled with it)."""
    views = []
    h, w = image.shape[:2]
    for copy in range(copies):
        small = lower_resolution(image, copy_rng(seed, copy, key))
        moved = scaled_face(face, small.shape[1] / w, small.shape[0] / h)
        views.append({s: crop_at_scale(small, moved, s, side) for s in SCALES})
    return views


@dataclass(frozen=True)
class FeatureTable:
    """Cached features: ``X[scale]`` (N, D) float32, labels (1 bona fide), sample keys;
    ``copies[k][scale]`` (N, D) the features of each image's lower-resolution copy ``k``
    (training only; empty unless asked for)."""

    X: dict[str, np.ndarray]
    y: np.ndarray
    keys: list[str]
    collections: np.ndarray
    attack_types: np.ndarray
    copies: tuple[dict[str, np.ndarray], ...] = ()


def copy_key(key: str, copy: int, seed: int) -> str:
    """The cache group of lower-resolution copy ``copy`` (generator seed ``seed``) of
    sample ``key``."""
    return f"lowres-{copy}-seed{seed}/{key}"


def extract_features(samples: Sequence[tuple[Sample, object]], extractor: FeatureExtractor,
                     cache: Path, settings: Settings, batch: int = 32, copies: int = 0,
                     seed: int = 0) -> FeatureTable:
    """Features of every ``(sample, dataset)`` at every scale, reusing ``cache``; with
    ``copies`` also those of that many lower-resolution copies of each image
    (:func:`lower_resolution_views`, generators seeded by ``seed``, the sample and the
    copy).

    The cache is one HDF5 file per backbone, a group per dataset sample key (prefixed by
    the dataset name; a copy's under :func:`copy_key`) holding one vector per scale;
    samples already there are not recomputed, and the face stage runs once per image.
    Raises ``ValueError`` for a negative ``copies``.
    """
    if copies < 0:
        raise ValueError(f"copies must be >= 0, got {copies}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    side = extractor.backbone.input_side
    rows: list[tuple[str, Sample]] = []
    with h5py.File(cache, "a") as store:
        todo: list[tuple[str, Sample, object]] = []
        for sample, dataset in samples:
            key = f"{dataset.name}/{sample.key}"  # type: ignore[attr-defined]
            rows.append((key, sample))
            wanted = [key] + [copy_key(key, k, seed) for k in range(copies)]
            if any(name not in store for name in wanted):
                todo.append((key, sample, dataset))
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            names: list[str] = []
            crops: dict[str, list[np.ndarray]] = {s: [] for s in SCALES}
            for key, sample, dataset in chunk:
                image = dataset.read_image(sample)  # type: ignore[attr-defined]
                face = locate_face(image, settings)
                views = [{s: crop_at_scale(image, face, s, side) for s in SCALES}]
                views += lower_resolution_views(image, face, key, copies, seed, side)
                for k, view in enumerate(views):
                    names.append(key if k == 0 else copy_key(key, k - 1, seed))
                    for scale in SCALES:
                        crops[scale].append(view[scale])
            feats = {s: extractor(np.stack(c)) for s, c in crops.items()}
            for i, name in enumerate(names):
                if name in store:
                    del store[name]
                group = store.create_group(name)
                for scale in SCALES:
                    group.create_dataset(scale, data=feats[scale][i])

        def stacked(group: Callable[[str], str]) -> dict[str, np.ndarray]:
            return {s: np.stack([store[group(k)][s][()] for k, _ in rows]) for s in SCALES}

        X = stacked(lambda k: k)
        extra = tuple(stacked(lambda k, c=c: copy_key(k, c, seed)) for c in range(copies))
    return FeatureTable(
        X=X,
        y=np.array([s.label for _, s in rows], dtype=int),
        keys=[k for k, _ in rows],
        collections=np.array([s.collection for _, s in rows], dtype=object),
        attack_types=np.array([s.attack_type for _, s in rows], dtype=object),
        copies=extra,
    )
