"""Out-of-fold scores on disk: what a test scored on each image while that image's
collection was held out of its training (leave-one-collection-out).

Every trainer writes them beside its model card (``evaluation/oof_scores.csv``), keyed
by dataset sample key, so fusion can be trained on honest scores — never on images a
test was fitted on — by joining the files of several tests on ``key``.

Columns: ``key`` (``<dataset>/<sample key>``), ``collection``, ``label`` (1 bona fide,
0 attack presentation), ``attack_type``, ``score`` (P(live), empty when not scored).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE = "oof_scores.csv"
COLUMNS = ("key", "collection", "label", "attack_type", "score")


@dataclass(frozen=True)
class OofScores:
    """One test's out-of-fold scores: arrays of length N (``score`` NaN when absent)."""

    keys: list[str]
    collections: np.ndarray
    labels: np.ndarray
    attack_types: np.ndarray
    scores: np.ndarray


def write_oof_scores(path: Path, keys: Sequence[str], collections: Sequence[str],
                     labels: Sequence[int], attack_types: Sequence[str],
                     scores: Sequence[float]) -> Path:
    """Write the CSV (columns above); raises ``ValueError`` when the lengths differ."""
    n = len(keys)
    if not all(len(c) == n for c in (collections, labels, attack_types, scores)):
        raise ValueError("keys, collections, labels, attack_types and scores differ in length")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in zip(keys, collections, labels, attack_types, scores, strict=True):
            score = float(row[4])
            writer.writerow([row[0], row[1], int(row[2]), row[3],
                             "" if np.isnan(score) else repr(score)])
    return path


def read_oof_scores(path: Path) -> OofScores:
    """Read a CSV written by :func:`write_oof_scores`; ``ValueError`` names a bad file."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and tuple(rows[0]) != COLUMNS:
            raise ValueError(f"columns {tuple(rows[0])}, expected {COLUMNS}")
        return OofScores(
            keys=[r["key"] for r in rows],
            collections=np.array([r["collection"] for r in rows], dtype=object),
            labels=np.array([int(r["label"]) for r in rows], dtype=int),
            attack_types=np.array([r["attack_type"] for r in rows], dtype=object),
            scores=np.array([float(r["score"]) if r["score"] else np.nan for r in rows]),
        )
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not an out-of-fold score file: {exc}") from exc
