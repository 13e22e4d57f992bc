"""Subject- or collection-disjoint evaluation splits on top of scikit-learn.

Frames of one person (or images from one small collection) are strongly
correlated; letting them fall on both sides of a split inflates every figure.
:func:`groups` gives the ``groups`` array that scikit-learn's group-aware
splitters (``LeaveOneGroupOut``, ``GroupKFold``, ``GroupShuffleSplit``)
expect; the two helpers below wrap the common cases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, LeaveOneGroupOut

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from common.datasets.base import Sample

GROUP_FIELDS = ("subject", "collection")


def groups(samples: Sequence[Sample], by: str = "collection") -> np.ndarray:
    """Group label of each sample (``subject`` or ``collection``), for sklearn splitters."""
    if by not in GROUP_FIELDS:
        raise ValueError(f"by must be one of {GROUP_FIELDS}, not {by!r}")
    return np.array([getattr(s, by) for s in samples], dtype=object)


def leave_one_group_out(
    samples: Sequence[Sample], by: str = "collection"
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(held-out group, train indices, test indices)``, one fold per group.

    Needs at least two groups (scikit-learn raises ``ValueError`` otherwise).
    """
    g = groups(samples, by)
    placeholder = np.zeros((len(g), 1))
    for train_idx, test_idx in LeaveOneGroupOut().split(placeholder, groups=g):
        yield str(g[test_idx[0]]), train_idx, test_idx


def group_disjoint_split(
    samples: Sequence[Sample],
    by: str = "subject",
    test_size: float | int = 0.25,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One random ``(train indices, test indices)`` split with no group on both sides.

    As in :class:`sklearn.model_selection.GroupShuffleSplit`, ``test_size`` is a
    proportion (float) or a count (int) of *groups*, not of samples.
    """
    g = groups(samples, by)
    if len(set(g)) < 2:
        raise ValueError(f"need at least two distinct {by} groups to split, got {len(set(g))}")
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train_idx, test_idx = next(splitter.split(np.zeros((len(g), 1)), groups=g))
    return train_idx, test_idx
