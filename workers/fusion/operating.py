"""Operating points of the fusion: where a subset's threshold sits, from fitting data only.

Two kinds of point, both fitted on the collections a model is trained on and never on
the collection it is judged on:

* the plain points of :func:`common.evaluation.metrics.threshold_at_operating_point`
  (``apcer<=5%``, ``apcer<=1%``, ``eer``, ``bpcer<=N%``), computed on the pooled fused
  scores — the strict ones are security-first: on a new camera they reject most live
  people (the threshold does not transfer);
* ``loco-bpcer<=A%/B%`` (the default, ``loco-bpcer<=10%/25%``), convenience-first: the
  threshold a live person on a *new* camera passes. A threshold fitted on some cameras
  is applied to another, so the rule is chosen by how it transfers: within the fitting
  data, each collection is held out in turn, the fusion is refitted on the others, and
  for each ``q`` of :data:`WORST_BPCER_GRID` the threshold ``worst-bpcer<=q`` (every
  fitting collection keeps at most ``q`` of its live images rejected,
  :func:`worst_bpcer_threshold`) is applied to the held-out one; the ``q`` whose held-out
  BPCER is at most A on average and B on every collection, with the lowest mean APCER,
  is chosen (:func:`choose_worst_bpcer`), and the threshold is ``worst-bpcer<=q`` on all
  the fitting data. Where no ``q`` meets both caps, the ``q`` closest to them (the
  smallest excess) is chosen and the choice says so.

Evaluated leave-one-collection-out (:mod:`workers.fusion.train`), this is a nested
procedure: the outer held-out collection is in neither the inner folds nor the final
threshold of its fold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: The default operating point: held-out BPCER ≤ 10 % on average, ≤ 25 % on any collection.
DEFAULT_POINT = "loco-bpcer<=10%/25%"
#: Security-first alternatives an operator may choose instead (their held-out BPCER is
#: reported beside the default's so the trade is visible).
STRICT_POINTS = ("apcer<=5%", "apcer<=1%")
#: Candidate ``q`` of the ``worst-bpcer<=q`` rule (fractions).
WORST_BPCER_GRID: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
                                       0.2, 0.3)
_LOCO = re.compile(r"^loco-bpcer\s*<=\s*([0-9.]+)\s*%\s*/\s*([0-9.]+)\s*%$")


@dataclass(frozen=True)
class LocoBpcerPoint:
    """``loco-bpcer<=A%/B%``: held-out BPCER ≤ ``mean_cap`` on average and ≤ ``worst_cap``
    on every collection (fractions)."""

    mean_cap: float
    worst_cap: float

    @property
    def name(self) -> str:
        return f"loco-bpcer<={100 * self.mean_cap:g}%/{100 * self.worst_cap:g}%"


def parse_point(name: str) -> LocoBpcerPoint | str:
    """A :class:`LocoBpcerPoint` for ``loco-bpcer<=A%/B%``, else the name itself (a plain
    point; ``threshold_at_operating_point`` validates it). ``ValueError`` for caps
    outside [0, 100] %."""
    found = _LOCO.match(name.strip().lower())
    if found is None:
        return name
    mean_cap, worst_cap = float(found.group(1)) / 100, float(found.group(2)) / 100
    if not (0 <= mean_cap <= 1 and 0 <= worst_cap <= 1):
        raise ValueError(f"operating point {name!r}: rates must be within 0-100 %")
    return LocoBpcerPoint(mean_cap, worst_cap)


def worst_bpcer_threshold(scores: np.ndarray, labels: np.ndarray, collections: np.ndarray,
                          q: float) -> float:
    """The highest threshold at which every collection rejects at most a fraction ``q``
    of its bona fide presentations (a presentation is accepted when score ≥ threshold).

    For a collection with ``n`` bona fide scores sorted ascending, the ``(⌊q·n⌋+1)``-th
    smallest is the highest threshold rejecting at most ``⌊q·n⌋`` of them; the minimum
    over collections keeps every one within ``q``. ``ValueError`` without bona fide.
    """
    s, y, c = np.asarray(scores, float), np.asarray(labels, int), np.asarray(collections)
    limits = []
    for name in np.unique(c[y == 1]):
        live = np.sort(s[(y == 1) & (c == name)])
        limits.append(live[min(int(np.floor(q * len(live))), len(live) - 1)])
    if not limits:
        raise ValueError("worst-bpcer needs bona fide presentations")
    return float(min(limits))


@dataclass(frozen=True)
class InnerFold:
    """One inner held-out collection: the refitted fusion's scores on the other fitting
    collections (to threshold) and on the held-out one (to judge)."""

    train_scores: np.ndarray
    train_labels: np.ndarray
    train_collections: np.ndarray
    test_scores: np.ndarray
    test_labels: np.ndarray


@dataclass(frozen=True)
class RuleChoice:
    """The chosen ``q`` and, per candidate, the held-out mean and worst BPCER and mean
    APCER of the inner folds; ``feasible`` is False when no candidate met both caps."""

    q: float
    feasible: bool
    candidates: list[dict[str, float]] = field(default_factory=list)


def choose_worst_bpcer(folds: Iterable[InnerFold], point: LocoBpcerPoint,
                       grid: Sequence[float] = WORST_BPCER_GRID) -> RuleChoice:
    """The ``q`` of ``worst-bpcer<=q`` that meets ``point`` on the inner folds (module
    docstring). Folds without bona fide count for neither BPCER figure; folds without
    attacks for no APCER. ``ValueError`` when no fold has bona fide presentations."""
    bpcer: dict[float, list[float]] = {q: [] for q in grid}
    apcer: dict[float, list[float]] = {q: [] for q in grid}
    for fold in folds:
        for q in grid:
            t = worst_bpcer_threshold(fold.train_scores, fold.train_labels,
                                      fold.train_collections, q)
            live, attack = fold.test_labels == 1, fold.test_labels == 0
            if live.any():
                bpcer[q].append(float(np.mean(fold.test_scores[live] < t)))
            if attack.any():
                apcer[q].append(float(np.mean(fold.test_scores[attack] >= t)))
    if not any(bpcer.values()):
        raise ValueError("no inner fold has bona fide presentations")
    rows = [{"q": q, "bpcer_mean": float(np.mean(bpcer[q])),
             "bpcer_worst": float(np.max(bpcer[q])),
             "apcer_mean": float(np.mean(apcer[q])) if apcer[q] else 0.0} for q in grid]
    feasible = [r for r in rows if r["bpcer_mean"] <= point.mean_cap + 1e-12
                and r["bpcer_worst"] <= point.worst_cap + 1e-12]
    if feasible:
        best = min(feasible, key=lambda r: (r["apcer_mean"], -r["q"]))
        return RuleChoice(best["q"], True, rows)
    best = min(rows, key=lambda r: (max(r["bpcer_mean"] - point.mean_cap, 0)
                                    + max(r["bpcer_worst"] - point.worst_cap, 0),
                                    r["apcer_mean"]))
    return RuleChoice(best["q"], False, rows)
