"""Idiap 3D Mask Attack Dataset, 3DMAD (Erdogmus & Marcel, BTAS 2013).

Kinect recordings of 17 subjects, one HDF5 file per recording named
``<client>_<session>_<shot>.hdf5`` (e.g. ``session01/Data/01_01_01.hdf5``;
some copies keep all files flat in one ``Data/`` folder, so files are found
anywhere under the root and the session is read from the name). Sessions 01
and 02 are bona fide, session 03 is a wearable rigid-mask attack. Each file
holds ``Color_Data`` (frames x 3 x 480 x 640 uint8, RGB planes, the layout of
Bob's video arrays), ``Depth_Data`` (frames x 1 x 480 x 640) and ``Eye_Pos``.

Splits follow ``bob.db.maskattack``: clients 1-7 train ("world"), 8-12 devel,
13-17 test, so they are subject-disjoint. Only the colour stream is used here.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np

from common.datasets.base import ATTACK, LIVE, Sample
from common.datasets.video import FrameDataset
from common.errors import DatasetError

COLLECTION = "3dmad"
COLOR_KEY = "Color_Data"
ATTACK_SESSION = 3
_NAME = re.compile(r"^(\d{2})_(\d{2})_(\d{2})\.hdf5$")


def split_of_client(client: int) -> str:
    """Official split of a 3DMAD client id (``bob.db.maskattack``)."""
    if 1 <= client <= 7:
        return "train"
    if 8 <= client <= 12:
        return "devel"
    if 13 <= client <= 17:
        return "test"
    return "all"


def find_recordings(root: Path, max_depth: int = 3) -> list[Path]:
    """3DMAD recording files (``NN_NN_NN.hdf5``) up to ``max_depth`` folders below ``root``."""
    found = []
    for depth in range(max_depth + 1):
        pattern = "/".join(["*"] * depth + ["*.hdf5"])
        found.extend(p for p in root.glob(pattern) if _NAME.match(p.name) and p.is_file())
    return sorted(found)


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """One ``Color_Data`` frame (3xHxW planes, or HxWx3, or 1xHxW grey) as HxWx3 RGB."""
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[0] in (1, 3) and frame.shape[-1] not in (1, 3):
        frame = np.moveaxis(frame, 0, -1)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[-1] not in (1, 3):
        raise DatasetError(f"unexpected 3DMAD colour frame shape {frame.shape}")
    if frame.shape[-1] == 1:
        frame = np.repeat(frame, 3, axis=-1)
    return np.ascontiguousarray(frame.astype(np.uint8, copy=False))


class Mad3dDataset(FrameDataset):
    """3DMAD colour frames, ``frames_per_video`` sampled evenly from each recording."""

    kind = "3dmad"

    def __init__(self, root: str | Path, frames_per_video: int = 10) -> None:
        super().__init__(root, frames_per_video)
        self._files = find_recordings(self.root)
        if not self._files:
            raise DatasetError(
                f"{self.root} is not a 3DMAD folder: expected "
                "session0N/Data/<client>_<session>_<shot>.hdf5 files"
            )

    def _recordings(self) -> list[tuple[str, int, Sample]]:
        recordings = []
        for path in self._files:
            client, session, _shot = (int(t) for t in _NAME.match(path.name).groups())
            label = ATTACK if session == ATTACK_SESSION else LIVE
            try:
                with h5py.File(path, "r") as f:
                    n_frames = int(f[COLOR_KEY].shape[0])
            except (OSError, KeyError) as exc:
                raise DatasetError(f"{path}: no readable {COLOR_KEY} ({exc})") from exc
            template = Sample(
                key="",
                label=label,
                attack_type="mask" if label == ATTACK else "none",
                subject=f"{COLLECTION}_{client:02d}",
                collection=COLLECTION,
                split=split_of_client(client),
            )
            recordings.append((path.relative_to(self.root).as_posix(), n_frames, template))
        return recordings

    def _decode_frames(self, path: Path, indices: list[int]) -> dict[int, np.ndarray]:
        try:
            with h5py.File(path, "r") as f:
                data = f[COLOR_KEY]
                if indices and max(indices) >= data.shape[0]:
                    raise DatasetError(f"{path}: frame {max(indices)} beyond {data.shape[0]}")
                stack = data[sorted(indices)]
        except (OSError, KeyError) as exc:
            raise DatasetError(f"{path}: cannot read {COLOR_KEY} ({exc})") from exc
        return {i: to_rgb(frame) for i, frame in zip(sorted(indices), stack, strict=True)}
