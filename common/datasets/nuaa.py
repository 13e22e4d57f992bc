"""NUAA Photograph Imposter Database as distributed (Tan et al., ECCV 2010).

Layout (``raw`` version; ``Detectedface`` and ``NormalizedFace`` have the same
shape with ``Face`` / ``Normalized`` in place of ``Raw``)::

    ClientRaw/<subject>/<subject>_<glasses>_<pos>_<session>_<n>.jpg   bona fide
    ImposterRaw/<subject>/...jpg                                       printed photo
    client_train_raw.txt  imposter_train_raw.txt                       official split
    client_test_raw.txt   imposter_test_raw.txt

Split lists hold one path per line relative to ``ClientRaw`` / ``ImposterRaw``,
with Windows separators (``0001\\0001_00_00_01_0.jpg``). Images not named in
any list get split ``all``; listed images that are missing are skipped with a
warning (partial copies of the database are common).
"""

from __future__ import annotations

import logging
from pathlib import Path

from common.datasets.base import ATTACK, IMAGE_EXTENSIONS, LIVE, DatasetManager, Sample
from common.errors import DatasetError

logger = logging.getLogger(__name__)

#: variant -> (bona fide folder, attack folder, split-list suffix)
VARIANTS = {
    "raw": ("ClientRaw", "ImposterRaw", "raw"),
    "face": ("ClientFace", "ImposterFace", "face"),
    "normalized": ("ClientNormalized", "ImposterNormalized", "normalized"),
}
COLLECTION = "nuaa"


def detect_variant(root: Path) -> str | None:
    """The NUAA variant whose client and imposter folders both exist in ``root``."""
    for variant, (live_dir, attack_dir, _) in VARIANTS.items():
        if (root / live_dir).is_dir() and (root / attack_dir).is_dir():
            return variant
    return None


def _read_list(path: Path) -> list[str]:
    """Entries of an official split list, normalised to ``/`` separators."""
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        tokens = line.split()
        if tokens:
            entries.append(tokens[0].replace("\\", "/").lstrip("/"))
    return entries


class NuaaDataset(DatasetManager):
    """NUAA Photograph Imposter Database: bona fide vs. hand-held printed photos."""

    kind = "nuaa"

    def __init__(self, root: str | Path, variant: str | None = None) -> None:
        super().__init__(root)
        found = detect_variant(self.root)
        if variant is None:
            variant = found
        elif variant not in VARIANTS:
            raise ValueError(f"variant must be one of {tuple(VARIANTS)}, not {variant!r}")
        if variant is None or not all((self.root / d).is_dir() for d in VARIANTS[variant][:2]):
            wanted = " or ".join(f"{a}/ + {b}/" for a, b, _ in VARIANTS.values())
            raise DatasetError(f"{self.root} is not a NUAA folder: expected {wanted}")
        self.variant = variant

    def _split_of(self) -> dict[str, str]:
        live_dir, attack_dir, suffix = VARIANTS[self.variant]
        split_of: dict[str, str] = {}
        for prefix, folder in (("client", live_dir), ("imposter", attack_dir)):
            for split in ("train", "test"):
                lst = self.root / f"{prefix}_{split}_{suffix}.txt"
                if lst.is_file():
                    for entry in _read_list(lst):
                        split_of[f"{folder}/{entry}"] = split
        return split_of

    def _list_samples(self) -> list[Sample]:
        live_dir, attack_dir, _ = VARIANTS[self.variant]
        split_of = self._split_of()
        samples = []
        for folder, label in ((live_dir, LIVE), (attack_dir, ATTACK)):
            base = self.root / folder
            for path in sorted(base.rglob("*")):
                if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
                    continue
                key = path.relative_to(self.root).as_posix()
                subject = path.parent.name if path.parent != base else path.stem.split("_")[0]
                samples.append(
                    Sample(
                        key=key,
                        label=label,
                        attack_type="none" if label == LIVE else "print",
                        subject=f"{COLLECTION}_{subject}",
                        collection=COLLECTION,
                        split=split_of.get(key, "all"),
                    )
                )
        missing = set(split_of) - {s.key for s in samples}
        if missing:
            logger.warning(
                "%s: %d image(s) named in the split lists are missing, e.g. %s",
                self.root,
                len(missing),
                sorted(missing)[:3],
            )
        return samples
