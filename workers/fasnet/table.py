"""The fasnet evaluation table: both networks' outputs for every labelled image.

Per box mapping (:data:`workers.fasnet.crop.BOX_MAPPINGS`), both networks' softmax and
embedding on its two crops of the face stage's face
(:func:`common.datasets.facetable.locate_faces`), cached under ``cache_dir`` as
``outputs-<mapping>.npz``: the arrays of :data:`OUTPUT_ARRAYS` and the keys they belong
to; recomputed when the keys differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from common.datasets.facetable import SampleTable, load_samples, locate_faces
from common.result import FaceDetection
from workers.fasnet.crop import SCALES, BoxMapping, fasnet_crops

__all__ = ["OUTPUT_ARRAYS", "SampleTable", "load_samples", "locate_faces", "network_outputs"]

#: The arrays cached per box mapping: each network's softmax (N, 3) and embedding (N, 128).
OUTPUT_ARRAYS = ("softmax_v2", "softmax_v1se", "embedding_v2", "embedding_v1se")


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
