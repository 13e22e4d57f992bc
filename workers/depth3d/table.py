"""The depth3d training table: every labelled image's ``mesh`` reconstruction.

Per image of the datasets, the face stage's face
(:func:`common.datasets.facetable.locate_faces`, cached) and the Face Mesh
reconstruction on it (:func:`workers.depth3d.reconstruct.reconstruct_mesh`), cached
under ``cache_dir`` as ``mesh.npz``: ``keys``, ``image_points`` (N, 468, 3) and
``points`` (N, 468, 3) float32 (NaN rows where there is no face or no usable mesh);
recomputed when the keys differ. Everything the classifiers read (depth maps, volumes,
signals) is derived from ``points`` / ``image_points`` in seconds.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from common.datasets.facetable import SampleTable
from common.errors import LivenessError
from common.result import FaceDetection
from workers.depth3d.reconstruct import N_POINTS, reconstruct_mesh

CACHE_FILE = "mesh.npz"


def _reconstruct(job: tuple[Any, dict[str, Any]]) -> np.ndarray | None:
    import cv2

    cv2.setNumThreads(1)
    (dataset, sample), face = job
    try:
        return reconstruct_mesh(dataset.read_image(sample),
                                FaceDetection.from_dict(face)).image_points
    except LivenessError:
        return None


def mesh_points(table: SampleTable, faces: Sequence[FaceDetection | None], cache_dir: Path,
                jobs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(image_points, points), each (N, 468, 3) float32, NaN where an image has no found
    face or no usable mesh; from the cache when it holds exactly these keys."""
    from workers.depth3d.reconstruct import canonical_points

    path = Path(cache_dir) / CACHE_FILE
    if path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            if list(cached["keys"]) == table.keys:
                return cached["image_points"], cached["points"]
    n = len(table.keys)
    image_points = np.full((n, N_POINTS, 3), np.nan, np.float32)
    rows = [i for i in range(n) if faces[i] is not None and faces[i].found]  # type: ignore[union-attr]
    work = [(table.sources[i], faces[i].to_dict()) for i in rows]  # type: ignore[union-attr]
    if jobs <= 1:
        results: Any = map(_reconstruct, work)
    else:
        pool = ProcessPoolExecutor(max_workers=jobs,
                                   mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_reconstruct, work, chunksize=16)
    for i, got in zip(rows, tqdm(results, total=len(rows), desc="meshes"), strict=True):
        if got is not None:
            image_points[i] = got
    if jobs > 1:
        pool.shutdown()
    points = np.full_like(image_points, np.nan)
    for i in rows:
        if np.all(np.isfinite(image_points[i])):
            try:
                points[i] = canonical_points(image_points[i])[0]
            except ValueError:
                image_points[i] = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, keys=np.array(table.keys), image_points=image_points,
                        points=points)
    return image_points, points
