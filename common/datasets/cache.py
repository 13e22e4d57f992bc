"""HDF5 cache of a dataset's encoded images and labels.

Reading thousands of small files (or decoding videos) for every experiment is
slow; one HDF5 file with the *encoded* bytes is fast to read and stays faithful
to the original compression, which the image-quality features depend on.

Layout (one row per sample, all datasets of length N)::

    /image        vlen uint8    encoded bytes (original file, or PNG for a video frame)
    /label        int8          1 bona fide, 0 attack
    /key /attack_type /subject /collection /split    UTF-8 strings
    attrs: format, format_version, dataset, kind, root, split, n_samples

The file is written to a temporary name and renamed when complete, so a file at
the final path is never a half-written cache.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
from tqdm import tqdm

from common.datasets.base import Sample, check_split, decode_rgb
from common.errors import DatasetError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from common.datasets.base import DatasetManager

logger = logging.getLogger(__name__)

FORMAT = "liveness-dataset-cache"
FORMAT_VERSION = 1
_TEXT_COLUMNS = ("key", "attack_type", "subject", "collection", "split")


def _read_samples(f: h5py.File) -> list[Sample]:
    columns = {name: [v.decode("utf-8") for v in f[name][()]] for name in _TEXT_COLUMNS}
    labels = f["label"][()].astype(int).tolist()
    return [
        Sample(
            key=columns["key"][i],
            label=labels[i],
            attack_type=columns["attack_type"][i],
            subject=columns["subject"][i],
            collection=columns["collection"][i],
            split=columns["split"][i],
        )
        for i in range(len(labels))
    ]


def _check_format(f: h5py.File, path: Path) -> None:
    if f.attrs.get("format") != FORMAT:
        raise DatasetError(f"{path} is not a dataset cache (format attribute missing)")
    if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
        raise DatasetError(
            f"{path}: cache format version {f.attrs.get('format_version')} "
            f"is not {FORMAT_VERSION}; rebuild it"
        )
    missing = [c for c in ("image", "label", *_TEXT_COLUMNS) if c not in f]
    if missing:
        raise DatasetError(f"{path}: cache lacks dataset(s) {missing}")


def cache_matches(h5_path: str | Path, samples: Sequence[Sample]) -> bool:
    """Whether ``h5_path`` is a complete cache of exactly ``samples`` (same order)."""
    path = Path(h5_path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            _check_format(f, path)
            return _read_samples(f) == list(samples)
    except (OSError, DatasetError) as exc:
        logger.info("existing cache %s is unusable (%s); rebuilding", path, exc)
        return False


def write_cache(
    h5_path: str | Path,
    samples: Sequence[Sample],
    read_bytes,
    attrs: dict[str, str] | None = None,
    progress: bool = True,
) -> Path:
    """Write ``samples`` and ``read_bytes(sample)`` of each to ``h5_path`` (atomic rename)."""
    path = Path(h5_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = len(samples)
    text = h5py.string_dtype("utf-8")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["n_samples"] = n
            for name, value in (attrs or {}).items():
                f.attrs[name] = value
            images = f.create_dataset("image", shape=(n,), dtype=h5py.vlen_dtype(np.uint8))
            f.create_dataset("label", data=np.array([s.label for s in samples], dtype=np.int8))
            for name in _TEXT_COLUMNS:
                f.create_dataset(name, data=[getattr(s, name) for s in samples], dtype=text)
            bar = tqdm(samples, desc=f"caching {path.name}", unit="img", disable=not progress)
            for i, sample in enumerate(bar):
                images[i] = np.frombuffer(read_bytes(sample), dtype=np.uint8)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def build_cache(
    manager: DatasetManager,
    h5_path: str | Path,
    split: str | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Cache ``manager``'s samples of ``split``; skipped when an identical cache exists."""
    check_split(split)
    samples = manager.samples(split)
    if not samples:
        raise DatasetError(f"{manager.name}: no samples in split {split or 'all'!r} to cache")
    path = Path(h5_path)
    if not force and cache_matches(path, samples):
        logger.info("cache %s is up to date (%d samples); not rebuilt", path, len(samples))
        return path
    attrs = {
        "dataset": manager.name,
        "kind": manager.kind,
        "root": str(Path(manager.root).resolve()),
        "split": split or "all",
    }
    return write_cache(path, samples, manager.read_bytes, attrs=attrs, progress=progress)


class CachedDataset:
    """Lazy reader of a cache written by :func:`build_cache`.

    Metadata columns are read on open; image bytes are read on access. The HDF5
    handle is opened on first use, so an unopened instance can be handed to a
    worker process.
    """

    def __init__(self, h5_path: str | Path) -> None:
        self.path = Path(h5_path)
        if not self.path.is_file():
            raise DatasetError(f"cache file {self.path} does not exist")
        self._file: h5py.File | None = None
        try:
            with h5py.File(self.path, "r") as f:
                _check_format(f, self.path)
                self._samples = _read_samples(f)
                self.attrs = {k: _plain(v) for k, v in f.attrs.items()}
        except OSError as exc:
            raise DatasetError(f"cannot read cache {self.path}: {exc}") from exc
        self._labels = np.array([s.label for s in self._samples], dtype=np.int64)

    @property
    def name(self) -> str:
        return str(self.attrs.get("dataset", ""))

    @property
    def root(self) -> str:
        return str(self.attrs.get("root", ""))

    @property
    def samples(self) -> list[Sample]:
        return list(self._samples)

    @property
    def labels(self) -> np.ndarray:
        """Labels as int64 (1 bona fide, 0 attack), a copy."""
        return self._labels.copy()

    def __len__(self) -> int:
        return len(self._samples)

    def _index(self, i: int) -> int:
        n = len(self._samples)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} samples")
        return i % n

    def _h5(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def bytes(self, i: int) -> bytes:
        """Encoded image bytes of sample ``i``."""
        return self._h5()["image"][self._index(i)].tobytes()

    def __getitem__(self, i: int) -> tuple[np.ndarray, Sample]:
        i = self._index(i)
        try:
            image = decode_rgb(self.bytes(i))
        except DatasetError as exc:
            raise DatasetError(f"{self.path}[{i}] {self._samples[i].key}: {exc.message}") from exc
        return image, self._samples[i]

    def __iter__(self) -> Iterator[tuple[np.ndarray, Sample]]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> CachedDataset:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def __repr__(self) -> str:
        return f"CachedDataset({str(self.path)!r}, n={len(self)}, dataset={self.name!r})"


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value
