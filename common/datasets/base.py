"""Sample record and the abstract dataset manager (bob.bio / bob.pad style).

A manager lists :class:`Sample` records and hands out each sample's *encoded*
bytes. Stills are returned byte-identical to the files on disk because the
image-quality test measures the original compression; video frames have no
still encoding of their own, so they are encoded losslessly as PNG.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from common.config import get_settings
from common.errors import DatasetError, ImageError
from common.imageio import decode_image

logger = logging.getLogger(__name__)

#: Split names used by every manager; ``all`` means "no official split".
SPLITS = ("train", "devel", "test", "all")
#: Label values (project convention: 1 = bona fide, 0 = attack).
LIVE, ATTACK = 1, 0
#: Still-image file extensions the managers pick up (lower case).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
#: Separator between a file path and a frame index inside a sample key.
FRAME_SEP = "#frame="

# Presentation-attack-instrument species -> coarse family, for reporting APCER
# per attack family (ISO/IEC 30107-3) when a dataset records finer species.
_ATTACK_FAMILY = {
    "none": "none",
    "print": "print",
    "replay": "replay",
    "mobile_photo": "replay",
    "mobile_video": "replay",
    "highdef_photo": "replay",
    "highdef_video": "replay",
    "mask": "mask",
}


@dataclass(frozen=True)
class Sample:
    """One labelled image of a dataset.

    ``key`` is the sample's path relative to the dataset root (``/``-separated),
    followed by ``#frame=N`` for a frame taken from a video or a frame stack.
    """

    key: str
    label: int
    attack_type: str
    subject: str
    collection: str
    split: str

    @property
    def is_live(self) -> bool:
        return self.label == LIVE

    @property
    def path(self) -> str:
        """The root-relative file holding the sample (the key without its frame part)."""
        return self.key.split(FRAME_SEP, 1)[0]

    @property
    def frame(self) -> int | None:
        """Frame index inside a video / frame stack, ``None`` for a still."""
        if FRAME_SEP not in self.key:
            return None
        return int(self.key.split(FRAME_SEP, 1)[1])


def attack_family(attack_type: str) -> str:
    """Coarse attack family of a PAI species: ``mobile_video`` -> ``replay`` etc.

    Unknown species map to themselves so nothing is silently merged.
    """
    return _ATTACK_FAMILY.get(attack_type, attack_type)


def frame_key(path: str, frame: int) -> str:
    return f"{path}{FRAME_SEP}{int(frame)}"


def check_split(split: str | None) -> str | None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, not {split!r}")
    return split


def decode_rgb(data: bytes) -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 array with the service's own decoder.

    Going through :func:`common.imageio.decode_image` means training and serving see
    the same pixels. Its minimum-side check is relaxed: datasets hold small face
    crops and frames that are still worth decoding; the other limits stay.
    """
    settings = replace(get_settings(), min_image_side=1)
    try:
        return decode_image(data, settings=settings)
    except ImageError as exc:
        raise DatasetError(f"cannot decode image: {exc.message}") from exc


def encode_png(rgb: np.ndarray) -> bytes:
    """Lossless PNG bytes of an RGB uint8 image (for video frames, which have no still)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - imencode fails only on invalid arrays
        raise DatasetError("cannot encode frame as PNG")
    return buf.tobytes()


def even_indices(n_frames: int, n: int) -> list[int]:
    """``n`` frame indices spread evenly over ``n_frames`` (first and last included)."""
    if n_frames <= 0:
        return []
    n = min(n, n_frames)
    return sorted({int(i) for i in np.linspace(0, n_frames - 1, num=n).round()})


class DatasetManager(ABC):
    """A dataset on disk: lists its samples and reads their encoded bytes.

    Subclasses implement :meth:`_list_samples` (called once, lazily) and, when
    samples are not plain still files, :meth:`read_bytes`.
    """

    #: Layout identifier used by :func:`common.datasets.open_dataset`.
    kind: str = "base"

    def __init__(self, root: str | Path, name: str | None = None) -> None:
        self.root = Path(root)
        self.name = name or self.kind
        if not self.root.is_dir():
            raise DatasetError(f"dataset folder {self.root} does not exist")
        self._samples: list[Sample] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, name={self.name!r})"

    def __len__(self) -> int:
        return len(self.samples())

    @abstractmethod
    def _list_samples(self) -> list[Sample]:
        """Every sample of the dataset in a stable order."""

    def samples(self, split: str | None = None) -> list[Sample]:
        """The samples of ``split`` (``None`` or ``"all"``: every sample)."""
        check_split(split)
        if self._samples is None:
            self._samples = self._list_samples()
        if split in (None, "all"):
            return list(self._samples)
        return [s for s in self._samples if s.split == split]

    def source_path(self, sample: Sample) -> Path:
        """The file holding ``sample`` (a still, a video, a frame stack)."""
        return self.root / sample.path

    def read_bytes(self, sample: Sample) -> bytes:
        """The sample's encoded image: a still's original file bytes, never re-encoded."""
        path = self.source_path(sample)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DatasetError(f"cannot read {path}: {exc}") from exc

    def read_image(self, sample: Sample) -> np.ndarray:
        """The sample decoded to an RGB uint8 array."""
        try:
            return decode_rgb(self.read_bytes(sample))
        except DatasetError as exc:
            raise DatasetError(f"{sample.key}: {exc.message}") from exc

    def build_cache(
        self,
        h5_path: str | Path,
        split: str | None = None,
        progress: bool = True,
        force: bool = False,
    ) -> Path:
        """Write the samples of ``split`` with their encoded bytes to an HDF5 file.

        Skipped when ``h5_path`` already holds exactly these samples (same keys and
        labels) unless ``force``. See :mod:`common.datasets.cache` for the layout.
        """
        from common.datasets.cache import build_cache

        return build_cache(self, h5_path, split=split, progress=progress, force=force)
