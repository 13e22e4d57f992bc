"""Dataset managers (folder/TSV, NUAA, Replay-Attack, 3DMAD), HDF5 cache and splits."""

from common.datasets.base import (
    ATTACK,
    LIVE,
    SPLITS,
    DatasetManager,
    Sample,
    attack_family,
)
from common.datasets.cache import CachedDataset, build_cache
from common.datasets.detect import KINDS, detect_kind, open_dataset
from common.datasets.folder import FolderDataset
from common.datasets.mad3d import Mad3dDataset
from common.datasets.nuaa import NuaaDataset
from common.datasets.replay_attack import ReplayAttackDataset
from common.datasets.splits import group_disjoint_split, groups, leave_one_group_out

__all__ = [
    "ATTACK",
    "KINDS",
    "LIVE",
    "SPLITS",
    "CachedDataset",
    "DatasetManager",
    "FolderDataset",
    "Mad3dDataset",
    "NuaaDataset",
    "ReplayAttackDataset",
    "Sample",
    "attack_family",
    "build_cache",
    "detect_kind",
    "group_disjoint_split",
    "groups",
    "leave_one_group_out",
    "open_dataset",
]
