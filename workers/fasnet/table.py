"""The fasnet evaluation table: every labelled image's face and both networks' outputs.

Training and evaluating the fasnet test needs, per image of the datasets, the face
stage's result (the slow part: :func:`common.faces.locate_face`, once per image, in
``jobs`` processes) and, per box mapping (:data:`workers.fasnet.crop.BOX_MAPPINGS`),
both networks' softmax and embedding on its two crops. Both are cached under
``cache_dir``:

* ``faces-<detector>-<detect side>-<search side>.jsonl``: one line per image,
  ``{"key", "face"}`` (``FaceDetection.to_dict()``, ``null`` for an unreadable image),
  keyed by ``<dataset name>/<sample key>``; a change of the face stage's settings
  starts another file. Delete the folder after changing the face stage's code.
* ``outputs-<mapping>.npz``: the arrays of :data:`OUTPUT_ARRAYS` and the keys they
  belong to; recomputed when the keys differ.
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
from workers.fasnet.crop import SCALES, BoxMapping, fasnet_crops

#: The arrays cached per box mapping: each network's softmax (N, 3) and embedding (N, 128).
OUTPUT_ARRAYS = ("softmax_v2", "softmax_v1se", "embedding_v2", "embedding_v1se")


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


def network_outputs(table: SampleTable, faces: Sequence[FaceDetection | None],
                    mappings: Sequence[BoxMapping], networks: Sequence[Any], cache_dir: Path,
                    batch: int = 64) -> dict[str, dict[str, np.ndarray]]:
    """Per box mapping (by name), both networks' softmax and embedding
    (:data:`OUTPUT_ARRAYS`, float32; NaN rows for unreadable images) on its crops.
    Mappings whose cache holds exactly these keys are read from it; the others are
    computed in one pass over the images. ``networks``: the Keras V2 and V1SE models."""
    n = len(table.keys)
    result: dict[str, dict[str, np.ndarray]] = {}
    for mapping in mappings:
        path = cache_dir / f"outputs-{mapping.name}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as cached:
                if list(cached["keys"]) == table.keys:
                    result[mapping.name] = {name: cached[name] for name in OUTPUT_ARRAYS}
    todo = [m for m in mappings if m.name not in result]
    if not todo:
        return result
    for m in todo:
        result[m.name] = {name: np.full((n, 3 if name.startswith("softmax") else 128),
                                        np.nan, np.float32) for name in OUTPUT_ARRAYS}
    rows = [i for i in range(n) if faces[i] is not None]
    for start in tqdm(range(0, len(rows), batch), desc="networks"):
        chunk = rows[start:start + batch]
        crops: dict[str, list[list[np.ndarray]]] = {m.name: [[], []] for m in todo}
        for i in chunk:
            image = table.read_image(i)
            for m in todo:
                for j, crop in enumerate(fasnet_crops(image, faces[i], m,  # type: ignore[arg-type]
                                                      SCALES)):
                    crops[m.name][j].append(crop)
        for m in todo:
            for tag, net, stack in zip(("v2", "v1se"), networks, crops[m.name], strict=True):
                softmax, embedding = net(np.stack(stack).astype(np.float32), training=False)
                result[m.name][f"softmax_{tag}"][chunk] = np.asarray(softmax)
                result[m.name][f"embedding_{tag}"][chunk] = np.asarray(embedding)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for m in todo:
        np.savez(cache_dir / f"outputs-{m.name}.npz", keys=np.array(table.keys),
                 **result[m.name])
    return result
