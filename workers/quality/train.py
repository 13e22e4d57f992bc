"""Training and leave-one-collection-out validation of the W-IQA model.

Features are extracted once per dataset (in parallel, cached on disk as NPZ keyed by
the dataset, its sample keys and the feature code's version) so re-running a
validation costs seconds. Validation holds out one *collection* at a time — new
people, cameras, screens and printers — because a random split of frames from the
same videos says nothing about the users a deployed model meets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.augment import capture_chain, simulated_recapture
from common.datasets import open_dataset
from common.datasets.base import DatasetManager, Sample
from common.datasets.splits import leave_one_group_out
from common.errors import ImageError
from common.evaluation.metrics import threshold_at_operating_point
from common.evaluation.report import EvaluationReport, evaluate
from common.imageio import decode_image
from workers.quality.features import FEATURE_NAMES, WORKING_PIXELS, extract_features
from workers.quality.model import QualityClassifier

log = logging.getLogger(__name__)

#: Bump when feature code changes in a way that invalidates cached features.
FEATURES_VERSION = "1"
#: Bump when the augmentations change.
AUGMENT_VERSION = "1"


@dataclass
class FeatureSet:
    """Features of every usable sample of one or more datasets."""

    X: np.ndarray
    samples: list[Sample]
    dataset_names: list[str]
    skipped: int = 0
    #: ``<dataset name>/<sample key>`` of each row (the key of out-of-fold score files).
    keys: list[str] = field(default_factory=list)
    #: Augmented training rows (see common.augment); ``aug_owner[i]`` is the
    #: index in ``samples`` of the image row ``i`` was made from, so folds stay disjoint.
    aug_X: np.ndarray | None = None
    aug_y: np.ndarray | None = None
    aug_owner: np.ndarray | None = None

    def training_rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows to fit on for the samples ``idx``: their augmentations when present."""
        if self.aug_X is None or self.aug_y is None or self.aug_owner is None:
            return self.X[idx], self.y[idx]
        rows = np.isin(self.aug_owner, idx)
        return self.aug_X[rows], self.aug_y[rows]

    @property
    def y(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=int)

    @property
    def attack_types(self) -> np.ndarray:
        return np.array([s.attack_type for s in self.samples])

    @property
    def collections(self) -> np.ndarray:
        return np.array([s.collection for s in self.samples])


def _features_from_bytes(data: bytes) -> np.ndarray | None:
    """Worker-process body: decode and extract; ``None`` for an unusable image."""
    import cv2

    cv2.setNumThreads(1)
    try:
        return extract_features(decode_image(data))
    except ImageError:
        return None


def _augmented_from_bytes(job: tuple[bytes, int, int]) -> list[tuple[np.ndarray, int]] | None:
    """Worker-process body: one capture-chain copy of every image, plus a simulated
    recapture attack of every live image."""
    import cv2

    cv2.setNumThreads(1)
    data, label, seed = job
    rng = np.random.default_rng(seed)
    try:
        rgb = decode_image(data)
        rows = [(extract_features(capture_chain(rgb, rng)), label)]
        if label == 1:
            rows.append((extract_features(simulated_recapture(rgb, rng)), 0))
    except ImageError:
        return None
    return rows


def _cache_path(
    dataset: DatasetManager, samples: Sequence[Sample], cache_dir: Path, kind: str
) -> Path:
    digest = hashlib.sha256()
    digest.update(str(Path(dataset.root).resolve()).encode())
    versions = [FEATURES_VERSION, FEATURE_NAMES, WORKING_PIXELS]
    if kind == "aug":
        versions.append(AUGMENT_VERSION)
    digest.update(json.dumps(versions).encode())
    for s in samples:
        digest.update(s.key.encode())
    return cache_dir / f"quality-{kind}-{dataset.name}-{digest.hexdigest()[:16]}.npz"


def _parallel(fn, jobs_iter, total: int, jobs: int | None, desc: str) -> list:
    """Map over worker processes (spawned: forking a process that already runs
    OpenCV/BLAS threads can deadlock), or in-process for ``jobs=1``."""
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1:
        return [fn(item) for item in tqdm(jobs_iter, total=total, desc=desc)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        return list(tqdm(pool.map(fn, jobs_iter, chunksize=8), total=total, desc=desc))


def dataset_features(
    dataset: DatasetManager,
    cache_dir: Path | None = None,
    jobs: int | None = None,
    augment: bool = False,
) -> FeatureSet:
    """Extract (or load cached) features for every sample of one dataset."""
    samples = dataset.samples()
    cache = _cache_path(dataset, samples, cache_dir, "base") if cache_dir else None
    if cache is not None and cache.exists():
        with np.load(cache) as npz:
            X, keep = npz["X"], npz["keep"]
    else:
        payloads = (dataset.read_bytes(s) for s in samples)
        rows = _parallel(_features_from_bytes, payloads, len(samples), jobs,
                         f"features {dataset.name}")
        keep = np.array([r is not None for r in rows], dtype=bool)
        X = np.array([r for r in rows if r is not None], dtype=np.float64).reshape(
            -1, len(FEATURE_NAMES)
        )
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(cache, X=X, keep=keep)
    kept = [s for s, k in zip(samples, keep, strict=True) if k]
    if not keep.all():
        log.warning("%s: %d unusable images skipped", dataset.name, int((~keep).sum()))
    features = FeatureSet(X, kept, [dataset.name], skipped=int((~keep).sum()),
                          keys=[f"{dataset.name}/{s.key}" for s in kept])
    if augment:
        _add_augmentations(features, dataset, cache_dir, jobs)
    return features


def _add_augmentations(
    features: FeatureSet, dataset: DatasetManager, cache_dir: Path | None, jobs: int | None
) -> None:
    samples = features.samples
    cache = _cache_path(dataset, samples, cache_dir, "aug") if cache_dir else None
    if cache is not None and cache.exists():
        with np.load(cache) as npz:
            features.aug_X, features.aug_y, features.aug_owner = npz["X"], npz["y"], npz["owner"]
        return
    seed_base = int(hashlib.sha256(dataset.name.encode()).hexdigest()[:8], 16)
    payloads = (
        (dataset.read_bytes(s), s.label, seed_base + i) for i, s in enumerate(samples)
    )
    results = _parallel(_augmented_from_bytes, payloads, len(samples), jobs,
                        f"augment {dataset.name}")
    rows = [(x, label, i) for i, res in enumerate(results) for x, label in (res or [])]
    features.aug_X = np.array([r[0] for r in rows], dtype=np.float64)
    features.aug_y = np.array([r[1] for r in rows], dtype=int)
    features.aug_owner = np.array([r[2] for r in rows], dtype=int)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, X=features.aug_X, y=features.aug_y, owner=features.aug_owner)


def load_features(
    paths: Sequence[str | Path],
    cache_dir: Path | None = None,
    jobs: int | None = None,
    augment: bool = False,
) -> FeatureSet:
    """Features of several datasets, concatenated."""
    parts = [dataset_features(open_dataset(Path(p)), cache_dir, jobs, augment) for p in paths]
    merged = FeatureSet(
        X=np.vstack([p.X for p in parts]),
        samples=[s for p in parts for s in p.samples],
        dataset_names=[n for p in parts for n in p.dataset_names],
        skipped=sum(p.skipped for p in parts),
        keys=[k for p in parts for k in p.keys],
    )
    if augment:
        offsets = np.cumsum([0] + [len(p.samples) for p in parts[:-1]])
        merged.aug_X = np.vstack([p.aug_X for p in parts if p.aug_X is not None])
        merged.aug_y = np.concatenate([p.aug_y for p in parts if p.aug_y is not None])
        merged.aug_owner = np.concatenate(
            [p.aug_owner + off for p, off in zip(parts, offsets, strict=True)
             if p.aug_owner is not None]
        )
    return merged


@dataclass
class CrossValidation:
    """Leave-one-collection-out results."""

    per_fold: dict[str, EvaluationReport]
    pooled: EvaluationReport
    oof_scores: np.ndarray
    threshold: float
    operating_point: str


def leave_one_collection_out(
    features: FeatureSet, operating_point: str = "eer", shrinkage: str | float = "auto"
) -> CrossValidation:
    """Hold out each collection in turn.

    Per fold, the model is fitted on the training collections (their augmentations
    when present) and the threshold is chosen on those collections' *real* images'
    scores, then applied to the held-out collection's real images (an honest HTER).
    The pooled out-of-fold scores then give the threshold the shipped model uses.
    """
    y, types = features.y, features.attack_types
    oof = np.full(len(y), np.nan)
    per_fold: dict[str, EvaluationReport] = {}
    for held_out, train_idx, test_idx in leave_one_group_out(features.samples, by="collection"):
        if len(np.unique(y[train_idx])) < 2:
            continue
        model = QualityClassifier(shrinkage=shrinkage).fit(*features.training_rows(train_idx))
        train_scores = model.predict_proba(features.X[train_idx])[:, 1]
        threshold = threshold_at_operating_point(
            train_scores, y[train_idx], operating_point, types[train_idx]
        )
        oof[test_idx] = model.predict_proba(features.X[test_idx])[:, 1]
        if len(np.unique(y[test_idx])) == 2:
            per_fold[held_out] = evaluate(
                oof[test_idx], y[test_idx], types[test_idx], threshold=threshold
            )
    scored = ~np.isnan(oof)
    pooled = evaluate(oof[scored], y[scored], types[scored], operating_point=operating_point)
    return CrossValidation(per_fold, pooled, oof, pooled.threshold, operating_point)
