"""Idiap Replay-Attack (Chingovska, Anjos & Marcel, BIOSIG 2012).

Layout of the distributed videos (one folder per official split)::

    <split>/real/client001_session01_webcam_authenticate_adverse_1.mov
    <split>/attack/{fixed,hand}/attack_print_client001_session01_highdef_photo_adverse.mov
    <split>/attack/{fixed,hand}/attack_highdef_client001_session01_highdef_video_controlled.mov
    <split>/attack/{fixed,hand}/attack_mobile_client001_session01_mobile_photo_adverse.mov

with ``<split>`` one of ``train``, ``devel``, ``test`` (clients are disjoint
across splits). The token after ``attack_`` is the presentation instrument
(``print`` = paper, ``mobile`` = iPhone screen, ``highdef`` = iPad screen) and
``photo``/``video`` what it shows; ``attack_type`` keeps that species
(``print``, ``mobile_photo``, ``mobile_video``, ``highdef_photo``,
``highdef_video``; see :func:`common.datasets.base.attack_family`). The
``enroll`` videos are not part of the PAD protocol and are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from common.datasets.base import ATTACK, LIVE, Sample
from common.datasets.video import FrameDataset, frame_count, read_frames
from common.errors import DatasetError

SPLIT_DIRS = ("train", "devel", "test")
COLLECTION = "replay_attack"
VIDEO_EXTENSIONS = frozenset({".mov", ".mp4", ".avi"})
_CLIENT = re.compile(r"client(\d+)")
_ATTACK = re.compile(r"^attack_(print|mobile|highdef)_client\d+_.*_(photo|video)_")


def is_replay_attack(root: Path) -> bool:
    """Whether ``root`` holds at least one ``<split>/real`` or ``<split>/attack`` folder."""
    return any((root / split / sub).is_dir() for split in SPLIT_DIRS for sub in ("real", "attack"))


def parse_name(stem: str, is_attack: bool) -> tuple[str, str]:
    """``(client id, attack_type)`` from a Replay-Attack file name (without extension)."""
    client = _CLIENT.search(stem)
    if client is None:
        raise DatasetError(f"Replay-Attack file name {stem!r} has no 'clientNNN'")
    if not is_attack:
        return client.group(1), "none"
    match = _ATTACK.match(stem)
    if match is None:
        return client.group(1), "unknown"
    instrument, medium = match.groups()
    return client.group(1), "print" if instrument == "print" else f"{instrument}_{medium}"


class ReplayAttackDataset(FrameDataset):
    """Replay-Attack videos, ``frames_per_video`` frames sampled evenly from each."""

    kind = "replay_attack"

    def __init__(self, root: str | Path, frames_per_video: int = 10) -> None:
        super().__init__(root, frames_per_video)
        if not is_replay_attack(self.root):
            raise DatasetError(
                f"{self.root} is not a Replay-Attack folder: expected "
                "train|devel|test/real/*.mov and train|devel|test/attack/{fixed,hand}/*.mov"
            )

    def _recordings(self) -> list[tuple[str, int, Sample]]:
        recordings = []
        for split in SPLIT_DIRS:
            for sub, label in (("real", LIVE), ("attack", ATTACK)):
                folder = self.root / split / sub
                if not folder.is_dir():
                    continue
                for path in sorted(folder.rglob("*")):
                    if path.suffix.lower() not in VIDEO_EXTENSIONS or not path.is_file():
                        continue
                    client, attack_type = parse_name(path.stem, label == ATTACK)
                    template = Sample(
                        key="",
                        label=label,
                        attack_type=attack_type,
                        subject=f"{COLLECTION}_client{client}",
                        collection=COLLECTION,
                        split=split,
                    )
                    rel = path.relative_to(self.root).as_posix()
                    recordings.append((rel, frame_count(path), template))
        return recordings

    def _decode_frames(self, path: Path, indices: list[int]) -> dict[int, np.ndarray]:
        return read_frames(path, indices)
