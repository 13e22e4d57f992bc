"""Pick the dataset manager for a folder from its layout."""

from __future__ import annotations

from pathlib import Path

from common.datasets.base import DatasetManager
from common.datasets.folder import LIVE_DIR, SPOOF_DIR, FolderDataset, find_tsv
from common.datasets.mad3d import Mad3dDataset, find_recordings
from common.datasets.nuaa import NuaaDataset, detect_variant
from common.datasets.replay_attack import ReplayAttackDataset, is_replay_attack
from common.errors import DatasetError

KINDS = ("folder", "nuaa", "replay_attack", "3dmad")

_EXPECTED = (
    "a folder with live/ and spoof/ (and optionally <folder>.tsv beside it or labels.tsv "
    "inside), NUAA (ClientRaw/ + ImposterRaw/), Replay-Attack (train|devel|test/real, "
    "train|devel|test/attack) or 3DMAD (session0N/Data/NN_NN_NN.hdf5)"
)


def detect_kind(path: str | Path) -> str:
    """The layout of ``path``: one of :data:`KINDS`; :class:`DatasetError` when none fits."""
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"dataset path {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"dataset path {root} is not a folder")
    if detect_variant(root) is not None:
        return "nuaa"
    if is_replay_attack(root):
        return "replay_attack"
    if find_tsv(root) is not None:
        return "folder"
    has_live, has_spoof = (root / LIVE_DIR).is_dir(), (root / SPOOF_DIR).is_dir()
    if has_live and has_spoof:
        return "folder"
    if find_recordings(root):
        return "3dmad"
    if not any(root.iterdir()):
        raise DatasetError(f"dataset folder {root} is empty; expected {_EXPECTED}")
    if has_live or has_spoof:
        present, absent = (LIVE_DIR, SPOOF_DIR) if has_live else (SPOOF_DIR, LIVE_DIR)
        raise DatasetError(
            f"{root} has {present}/ but no {absent}/ folder (and no TSV naming its labels)"
        )
    raise DatasetError(f"cannot tell the layout of {root}; expected {_EXPECTED}")


def open_dataset(
    path: str | Path, kind: str = "auto", frames_per_video: int = 10
) -> DatasetManager:
    """The manager for the dataset at ``path``.

    ``kind`` is ``"auto"`` (detect from the layout) or one of :data:`KINDS`;
    ``frames_per_video`` applies to the video datasets (Replay-Attack, 3DMAD).
    """
    if kind == "auto":
        kind = detect_kind(path)
    if kind == "folder":
        return FolderDataset(path)
    if kind == "nuaa":
        return NuaaDataset(path)
    if kind == "replay_attack":
        return ReplayAttackDataset(path, frames_per_video=frames_per_video)
    if kind == "3dmad":
        return Mad3dDataset(path, frames_per_video=frames_per_video)
    raise ValueError(f"kind must be 'auto' or one of {KINDS}, not {kind!r}")
