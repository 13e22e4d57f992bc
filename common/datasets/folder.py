"""Plain folder layout: ``live/`` + ``spoof/`` images, optionally described by a TSV.

This is the layout of the project's shared data: a folder ``<name>/`` with a
``<name>.tsv`` beside it (or ``labels.tsv`` inside it) whose columns are
``path label attack_type subject collection source_repo commit original_path``
(``path`` relative to the folder, ``label`` ``live``/``spoof``). An optional
``split`` column assigns official splits; without it every sample is ``all``.
Without a TSV, images under ``live/`` are bona fide and images under ``spoof/``
are attacks of unknown type; subject and collection are the folder name.
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

from common.datasets.base import ATTACK, IMAGE_EXTENSIONS, LIVE, SPLITS, DatasetManager, Sample
from common.errors import DatasetError

_LABELS = {
    "live": LIVE,
    "bonafide": LIVE,
    "bona_fide": LIVE,
    "real": LIVE,
    "1": LIVE,
    "spoof": ATTACK,
    "attack": ATTACK,
    "fake": ATTACK,
    "0": ATTACK,
}
LIVE_DIR, SPOOF_DIR = "live", "spoof"


def find_tsv(root: Path) -> Path | None:
    """The TSV describing ``root``: ``<root>.tsv`` beside it, else ``root/labels.tsv``."""
    for candidate in (root.parent / f"{root.name}.tsv", root / "labels.tsv"):
        if candidate.is_file():
            return candidate
    return None


def _images_under(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )


class FolderDataset(DatasetManager):
    """A ``live/`` + ``spoof/`` folder, labelled by its TSV when there is one."""

    kind = "folder"

    def __init__(self, root: str | Path, tsv: str | Path | None = None) -> None:
        root = Path(root)
        super().__init__(root, name=root.resolve().name)
        self.tsv = Path(tsv) if tsv is not None else find_tsv(self.root)
        if self.tsv is None:
            missing = [d for d in (LIVE_DIR, SPOOF_DIR) if not (self.root / d).is_dir()]
            if missing:
                raise DatasetError(
                    f"{self.root} has no TSV ({self.root.name}.tsv beside it or labels.tsv "
                    f"inside) and lacks the sub-folder(s) {', '.join(m + '/' for m in missing)}"
                )
        elif not self.tsv.is_file():
            raise DatasetError(f"TSV {self.tsv} does not exist")

    def _list_samples(self) -> list[Sample]:
        if self.tsv is not None:
            return self._from_tsv(self.tsv)
        samples = []
        for sub, label in ((LIVE_DIR, LIVE), (SPOOF_DIR, ATTACK)):
            for path in _images_under(self.root / sub):
                samples.append(
                    Sample(
                        key=path.relative_to(self.root).as_posix(),
                        label=label,
                        attack_type="none" if label == LIVE else "unknown",
                        subject=self.name,
                        collection=self.name,
                        split="all",
                    )
                )
        return samples

    def _from_tsv(self, tsv: Path) -> list[Sample]:
        with tsv.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            columns = set(reader.fieldnames or ())
            if not {"path", "label"} <= columns:
                raise DatasetError(f"{tsv}: needs at least the columns 'path' and 'label'")
            samples, missing = [], []
            for line_no, row in enumerate(reader, start=2):
                samples.append(self._row_sample(tsv, line_no, row))
                if not (self.root / samples[-1].key).is_file():
                    missing.append(samples[-1].key)
        if missing:
            raise DatasetError(
                f"{tsv}: {len(missing)} listed file(s) missing under {self.root}, "
                f"e.g. {missing[:3]}"
            )
        return samples

    def _row_sample(self, tsv: Path, line_no: int, row: dict[str, str]) -> Sample:
        def field(name: str) -> str:
            return (row.get(name) or "").strip()

        where = f"{tsv}:{line_no}"
        rel = PurePosixPath(field("path").replace("\\", "/"))
        if not rel.parts or rel.is_absolute() or ".." in rel.parts:
            raise DatasetError(f"{where}: path {field('path')!r} must be relative to the folder")
        label_text = field("label").lower()
        if label_text not in _LABELS:
            raise DatasetError(f"{where}: label {field('label')!r} is not live/spoof")
        label = _LABELS[label_text]
        split = field("split") or "all"
        if split not in SPLITS:
            raise DatasetError(f"{where}: split {split!r} is not one of {SPLITS}")
        attack_type = field("attack_type") or ("none" if label == LIVE else "unknown")
        if (label == LIVE) != (attack_type == "none"):
            raise DatasetError(
                f"{where}: label {field('label')!r} contradicts attack_type {attack_type!r}"
            )
        return Sample(
            key=rel.as_posix(),
            label=label,
            attack_type=attack_type,
            subject=field("subject") or self.name,
            collection=field("collection") or self.name,
            split=split,
        )
