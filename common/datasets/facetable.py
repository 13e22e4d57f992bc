"""Labelled images and the face stage's result for each, for the trainers.

Training or evaluating a face test needs, per image of the datasets, the face stage's
result (the slow part: :func:`common.faces.locate_face`, once per image, in ``jobs``
processes). It is cached under the trainer's ``cache_dir`` as
``faces-<detector>-<detect side>-<search side>.jsonl``: one line per image,
``{"key", "face"}`` (``FaceDetection.to_dict()``, ``null`` for an unreadable image),
keyed by ``<dataset name>/<sample key>``; a change of the face stage's settings starts
another file. Delete the folder after changing the face stage's code.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from common.config import Settings
from common.datasets import open_dataset
from common.errors import LivenessError
from common.result import FaceDetection


@dataclass(frozen=True)
class SampleTable:
    """The labelled images: ``keys`` ``<dataset>/<sample key>``, labels (1 bona fide),
    collections, attack types (arrays of length N) and where to read each image."""

    keys: list[str]
    y: np.ndarray
    collections: np.ndarray
    attack_types: np.ndarray
    sources: list[tuple[Any, Any]]  # (dataset manager, sample)

    def read_image(self, i: int) -> np.ndarray:
        dataset, sample = self.sources[i]
        return dataset.read_image(sample)


def load_samples(data_dirs: Sequence[Path]) -> SampleTable:
    """Every sample of the datasets at ``data_dirs`` (TSV folder, NUAA, … layouts)."""
    keys, sources = [], []
    for path in data_dirs:
        dataset = open_dataset(path)
        for sample in dataset.samples():
            keys.append(f"{dataset.name}/{sample.key}")
            sources.append((dataset, sample))
    return SampleTable(
        keys=keys,
        y=np.array([s.label for _, s in sources], dtype=int),
        collections=np.array([s.collection for _, s in sources], dtype=object),
        attack_types=np.array([s.attack_type for _, s in sources], dtype=object),
        sources=sources,
    )


_STATE: dict[str, Any] = {}


def _init_locator(settings: Settings) -> None:
    import cv2

    cv2.setNumThreads(1)
    _STATE["settings"] = settings


def _locate(source: tuple[Any, Any]) -> dict[str, Any] | None:
    from common.faces import locate_face

    dataset, sample = source
    try:
        return locate_face(dataset.read_image(sample), _STATE["settings"]).to_dict()
    except LivenessError:
        return None


def face_cache_path(cache_dir: Path, settings: Settings) -> Path:
    return cache_dir / (f"faces-{settings.face_detector}-{settings.face_detect_max_side}-"
                        f"{settings.face_search_max_side}.jsonl")


def locate_faces(table: SampleTable, cache_dir: Path, settings: Settings,
                 jobs: int = 1) -> list[FaceDetection | None]:
    """The face stage's result for every image (``None``: unreadable), from the cache
    where it has them; the others are located in ``jobs`` processes and appended."""
    path = face_cache_path(cache_dir, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    known: dict[str, dict[str, Any] | None] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                known[row["key"]] = row["face"]
    todo = [i for i, k in enumerate(table.keys) if k not in known]
    if todo:
        with path.open("a") as handle:
            def record(i: int, face: dict[str, Any] | None) -> None:
                known[table.keys[i]] = face
                handle.write(json.dumps({"key": table.keys[i], "face": face}) + "\n")
                handle.flush()

            sources = [table.sources[i] for i in todo]
            if jobs <= 1:
                _init_locator(settings)
                for i, source in zip(todo, tqdm(sources, desc="faces"), strict=True):
                    record(i, _locate(source))
            else:
                with ProcessPoolExecutor(max_workers=jobs,
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_locator,
                                         initargs=(settings,)) as pool:
                    results = pool.map(_locate, sources, chunksize=8)
                    for i, face in zip(todo, tqdm(results, total=len(todo), desc="faces"),
                                       strict=True):
                        record(i, face)
    return [None if known[k] is None else FaceDetection.from_dict(known[k])
            for k in table.keys]


