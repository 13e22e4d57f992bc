"""Presentation-attack-detection error rates (ISO/IEC 30107-3:2023).

One plain function per figure, in the style of ``sklearn.metrics``. The terms
(APCER, BPCER, per-PAI-species reporting, BPCER at a fixed APCER) are those
defined in ISO/IEC 30107-3:2023, clause 3.2 ("Metrics"), for the PAD-subsystem
evaluation of clause 7.3.

Conventions, shared by the whole project:

* ``scores`` are P(live): higher means more likely bona fide.
* ``labels``: 1 = bona fide (live) presentation, 0 = attack presentation.
* At a ``threshold`` a presentation is classified bona fide when
  ``score >= threshold``. An attack is therefore *accepted* (an APCER error)
  when ``score >= threshold`` and a bona fide presentation is *rejected*
  (a BPCER error) when ``score < threshold``. This is exactly the convention of
  :func:`sklearn.metrics.roc_curve` with ``pos_label=1``, so its false-positive
  rate is the pooled APCER and its false-negative rate is the BPCER.
* ``attack_types`` holds one string per sample (the PAI species, e.g. "print",
  "replay", "mask"); entries of bona fide samples are ignored, conventionally
  "none". ``None`` pools every attack under the single type ``"attack"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

__all__ = [
    "POOLED_ATTACK_TYPE",
    "acer",
    "apcer",
    "apcer_max",
    "apcer_per_attack_type",
    "auc",
    "bpcer",
    "bpcer_at_apcer",
    "confusion",
    "equal_error_rate",
    "hter",
    "threshold_at_operating_point",
]

#: Name used for the attack type when ``attack_types`` is ``None``.
POOLED_ATTACK_TYPE = "attack"

#: Attack-type strings that mean "no attack"; an attack labelled with one is an error.
_NO_ATTACK = frozenset({"", "none", "bona fide", "bonafide", "live"})

# Guard against float products such as 0.29 * 100 = 28.999999999999996 when turning
# a rate target into an admissible count of errors.
_COUNT_EPS = 1e-9


# --------------------------------------------------------------------------- inputs


def _as_scores_labels(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(scores float64, labels int8)`` as 1-D arrays."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1:
        raise ValueError(
            f"scores and labels must be 1-D, got shapes {s.shape} and {y.shape}"
        )
    if s.shape != y.shape:
        raise ValueError(
            f"scores and labels differ in length: {s.shape[0]} != {y.shape[0]}"
        )
    if s.size == 0:
        raise ValueError("scores is empty")
    if np.isnan(s).any():
        raise ValueError(f"scores contain {int(np.isnan(s).sum())} NaN value(s)")
    if not np.isfinite(s).all():
        raise ValueError("scores contain infinite values")
    if not np.isin(y, (0, 1)).all():
        bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
        raise ValueError(
            f"labels must be 1 (bona fide) or 0 (attack); found {bad.tolist()}"
        )
    return s, y.astype(np.int8)


def _require(y: np.ndarray, *, bona_fide: bool = False, attacks: bool = False, what: str) -> None:
    """Raise a clear ValueError when a class that ``what`` needs is absent."""
    if bona_fide and not (y == 1).any():
        raise ValueError(f"{what} needs bona fide samples (label 1); there are none")
    if attacks and not (y == 0).any():
        raise ValueError(f"{what} needs attack samples (label 0); there are none")


def _as_attack_types(
    attack_types: Sequence[str] | np.ndarray | None, y: np.ndarray
) -> np.ndarray:
    """One type string per sample; bona fide entries become ``"none"``."""
    if attack_types is None:
        types = np.full(y.shape, POOLED_ATTACK_TYPE, dtype=object)
    else:
        types = np.asarray([str(t) for t in attack_types], dtype=object)
        if types.shape != y.shape:
            raise ValueError(
                f"attack_types has {types.shape[0]} entries for {y.shape[0]} samples"
            )
        attack_rows = np.flatnonzero(y == 0)
        unnamed = [i for i in attack_rows if types[i].strip().lower() in _NO_ATTACK]
        if unnamed:
            raise ValueError(
                f"{len(unnamed)} attack sample(s) (label 0) have no attack type, e.g. "
                f"index {unnamed[0]} = {types[unnamed[0]]!r}; use 'unknown' if it is not known"
            )
    types[y == 1] = "none"
    return types


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if math.isnan(t):
        raise ValueError("threshold is NaN")
    return t


# ------------------------------------------------------------- rates at a threshold


def apcer_per_attack_type(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    attack_types: Sequence[str] | np.ndarray | None,
    threshold: float,
) -> dict[str, float]:
    """APCER of each PAI species: the share of its attacks accepted as bona fide.

    ISO/IEC 30107-3:2023 (3.2) defines APCER per PAI species and requires it to be
    reported per species rather than only pooled, because one easy species can
    hide a weak one. Keys are sorted attack-type names.
    """
    s, y = _as_scores_labels(scores, labels)
    _require(y, attacks=True, what="APCER")
    t = _check_threshold(threshold)
    types = _as_attack_types(attack_types, y)
    is_attack = y == 0
    out: dict[str, float] = {}
    for name in sorted(set(types[is_attack])):
        sel = is_attack & (types == name)
        out[name] = float(np.mean(s[sel] >= t))
    return out


def apcer_max(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    attack_types: Sequence[str] | np.ndarray | None,
    threshold: float,
) -> float:
    """The worst (largest) per-species APCER.

    ISO/IEC 30107-3:2023 summarises a set of PAI species by the highest APCER among
    them (APCER_AP for one attack-potential level): a system is as weak as its
    weakest species.
    """
    return max(apcer_per_attack_type(scores, labels, attack_types, threshold).values())


def apcer(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    threshold: float,
) -> float:
    """APCER pooled over every attack, whatever its species.

    Not an ISO figure on its own (it weights species by how many samples a data
    set happens to hold) but it is what the HTER literature averages.
    """
    s, y = _as_scores_labels(scores, labels)
    _require(y, attacks=True, what="APCER")
    t = _check_threshold(threshold)
    return float(np.mean(s[y == 0] >= t))


def bpcer(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    threshold: float,
) -> float:
    """BPCER: the share of bona fide presentations rejected (score < threshold).

    ISO/IEC 30107-3:2023, 3.2.
    """
    s, y = _as_scores_labels(scores, labels)
    _require(y, bona_fide=True, what="BPCER")
    t = _check_threshold(threshold)
    return float(np.mean(s[y == 1] < t))


def acer(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    attack_types: Sequence[str] | np.ndarray | None,
    threshold: float,
) -> float:
    """ACER = (max per-species APCER + BPCER) / 2.

    The summary used by the OULU-NPU and SiW protocols. ISO/IEC 30107-3 does not
    define it and advises against averaging the two error rates (they count
    different populations and carry different costs), so report it only next to
    APCER and BPCER, for comparison with the literature.
    """
    return 0.5 * (
        apcer_max(scores, labels, attack_types, threshold) + bpcer(scores, labels, threshold)
    )


def hter(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    threshold: float,
) -> float:
    """HTER = (pooled APCER + BPCER) / 2 at a given threshold.

    The half total error rate of the Replay-Attack / cross-data-set literature,
    where the threshold is fixed on a development set (usually at its EER) and then
    applied to the test set. Not an ISO/IEC 30107-3 figure.
    """
    return 0.5 * (apcer(scores, labels, threshold) + bpcer(scores, labels, threshold))


def confusion(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    threshold: float,
) -> np.ndarray:
    """2x2 count matrix from :func:`sklearn.metrics.confusion_matrix`.

    Rows are the truth, columns the decision, both ordered (attack, bona fide):
    ``[[attacks rejected, attacks accepted], [bona fide rejected, bona fide accepted]]``.
    """
    s, y = _as_scores_labels(scores, labels)
    t = _check_threshold(threshold)
    decision = (s >= t).astype(np.int8)
    return confusion_matrix(y, decision, labels=[0, 1])


# --------------------------------------------------------------- threshold-free


def auc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Area under the ROC curve (:func:`sklearn.metrics.roc_auc_score`).

    The probability that a random bona fide sample scores above a random attack
    (ties count one half). Threshold-free, so useful to compare models before an
    operating point is chosen; not an ISO figure.
    """
    s, y = _as_scores_labels(scores, labels)
    _require(y, bona_fide=True, attacks=True, what="AUC")
    return float(roc_auc_score(y, s))


def _roc(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(APCER, BPCER, threshold) at every distinct score, thresholds decreasing.

    sklearn starts the curve at threshold +inf (nothing accepted); it is replaced
    by the next float above the highest score, which has the same effect and keeps
    every threshold finite (and JSON-safe).
    """
    fpr, tpr, thr = roc_curve(y, s, pos_label=1, drop_intermediate=False)
    thr = thr.astype(np.float64, copy=True)
    if not np.isfinite(thr[0]):
        thr[0] = np.nextafter(s.max(), np.inf)
    return fpr, 1.0 - tpr, thr


def equal_error_rate(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[float, float]:
    """Equal error rate of pooled APCER and BPCER, and the threshold where it occurs.

    The empirical curve is a staircase, so APCER and BPCER are rarely equal at any
    actual threshold. The EER is taken where the straight ROC segment between the
    last point with APCER < BPCER and the first with APCER >= BPCER crosses the
    line APCER = BPCER; the threshold is interpolated linearly between those two
    points' thresholds (applied to these same scores it realises the upper one).
    Separable scores give ``(0.0, lowest bona fide score)``; all-equal scores 0.5.
    """
    s, y = _as_scores_labels(scores, labels)
    _require(y, bona_fide=True, attacks=True, what="EER")
    fpr, fnr, thr = _roc(s, y)
    diff = fpr - fnr  # rises from -1 (nothing accepted) to +1 (everything accepted)
    i = int(np.argmax(diff >= 0))
    if diff[i] == 0 or i == 0:
        return float(fpr[i]), float(thr[i])
    d0, d1 = diff[i - 1], diff[i]
    w = -d0 / (d1 - d0)  # fraction of the way from point i-1 to point i
    eer = fpr[i - 1] + w * (fpr[i] - fpr[i - 1])
    threshold = thr[i - 1] + w * (thr[i] - thr[i - 1])
    return float(eer), float(threshold)


def _max_errors(rate: float, n: int) -> int:
    """Largest error count k with k / n <= rate."""
    return math.floor(rate * n + _COUNT_EPS)


def _lowest_threshold_above(s: np.ndarray, value: float) -> float:
    """The smallest score strictly above ``value`` (or the next float above the top).

    Every threshold in (value, that score] makes the same decisions on ``s``; the
    score itself is the one a reader can recognise.
    """
    above = s[s > value]
    return float(above.min()) if above.size else float(np.nextafter(value, np.inf))


def bpcer_at_apcer(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    apcer_target: float,
    attack_types: Sequence[str] | np.ndarray | None = None,
) -> tuple[float, float]:
    """BPCER at the lowest threshold where every attack type's APCER <= target.

    ISO/IEC 30107-3:2023 reports BPCER at a fixed APCER (BPCER20 at APCER = 5 %,
    BPCER100 at 1 %), with the APCER that of the worst PAI species, so the
    threshold is raised until the most successful species is held to the target.
    Lowering the threshold further would lower BPCER but break the target, so the
    returned threshold is the lowest that meets it. With ``attack_types=None`` all
    attacks are pooled. Returns ``(bpcer, threshold)``.

    A target below 1/n of a species (e.g. 1 % with fewer than 100 attacks of a
    type) can only be met by accepting none of that species.
    """
    s, y = _as_scores_labels(scores, labels)
    _require(y, bona_fide=True, attacks=True, what="BPCER@APCER")
    target = float(apcer_target)
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"apcer_target must be in [0, 1], got {apcer_target!r}")
    types = _as_attack_types(attack_types, y)
    is_attack = y == 0
    # The highest score that must be rejected: for each species, its (k+1)-th
    # highest attack score, where k is the number of accepted attacks allowed.
    must_reject = -np.inf
    for name in set(types[is_attack]):
        a = np.sort(s[is_attack & (types == name)])[::-1]
        k = _max_errors(target, a.size)
        if k < a.size:
            must_reject = max(must_reject, float(a[k]))
    threshold = float(s.min()) if must_reject == -np.inf else _lowest_threshold_above(
        s, must_reject
    )
    return float(np.mean(s[y == 1] < threshold)), threshold


def _threshold_at_bpcer(s: np.ndarray, y: np.ndarray, bpcer_target: float) -> float:
    """Highest threshold whose BPCER <= target (so APCER of every type is lowest)."""
    b = np.sort(s[y == 1])
    k = _max_errors(bpcer_target, b.size)
    # Rejected are the bona fide scores < threshold; threshold b[k] rejects at most k.
    return float(b[k]) if k < b.size else float(np.nextafter(s.max(), np.inf))


_POINT = re.compile(
    r"^\s*(apcer|bpcer)\s*(?:<=|=|≤)\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(%?)\s*$")


def threshold_at_operating_point(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    point: str,
    attack_types: Sequence[str] | np.ndarray | None = None,
) -> float:
    """Threshold for a named operating point, fitted on the given scores.

    ``point`` is one of

    * ``"eer"``: pooled APCER = BPCER (:func:`equal_error_rate`);
    * ``"apcer<=5%"`` (or ``"apcer=0.05"``): the lowest threshold keeping the worst
      attack type's APCER within the target, i.e. the lowest BPCER at that security
      (:func:`bpcer_at_apcer`);
    * ``"bpcer<=5%"`` (or ``"bpcer=0.05"``): the highest threshold keeping BPCER
      within the target, i.e. the most attacks rejected at that convenience.

    Fit on development data: a threshold fitted on the test scores themselves
    gives optimistic test figures.
    """
    s, y = _as_scores_labels(scores, labels)
    _require(y, bona_fide=True, attacks=True, what="an operating point")
    name = point.strip().lower()
    if name == "eer":
        return equal_error_rate(s, y)[1]
    m = _POINT.match(name)
    if m is None:
        raise ValueError(
            f"unknown operating point {point!r}; use 'eer', 'apcer<=<rate>' (e.g. apcer<=5%) "
            "or 'bpcer<=<rate>'"
        )
    rate = float(m.group(2)) / (100.0 if m.group(3) else 1.0)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"operating point rate must be in [0, 1], got {point!r}")
    if m.group(1) == "apcer":
        return bpcer_at_apcer(s, y, rate, attack_types)[1]
    return _threshold_at_bpcer(s, y, rate)
