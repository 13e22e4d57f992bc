"""Fusion: how the per-test outcomes of one image become one score and decision.

Every fusion implements :class:`Fusion` — ``fuse(outcomes) -> FusedScore`` — over
whichever tests answered (a test that failed or timed out has ``score=None``). The
pipeline and the fusion worker load the fusion once per process with
:func:`load_fusion`: the model folder ``<models_dir>/fusion/`` when it holds a
``model.json``, else the default rule :class:`NormalisedLogOddsFusion`.

The default rule maps each test's P(live) ``s_i`` onto a common scale — its log-odds
margin over that test's own calibrated threshold ``t_i``, ``logit(s_i) - logit(t_i)`` —
averages the margins of the tests that answered and maps back with the logistic
function. The fused threshold is therefore 0.5 whatever subset of tests arrived, and a
single test's decision is exactly its own decision at its own threshold.

A trained fusion (:class:`LinearLogOddsFusion`, seed: Collins 2019's LDA
"consolidation layer") is linear in the tests' log-odds ``logit(s_i)``, with one weight
vector, bias, threshold and calibration per subset of tests, so a job whose CNN or 3D
test failed is still fused by a model fitted for exactly the tests that answered. LDA
and logistic regression both give such a model; ``liveness train fusion`` writes it
(:mod:`workers.fusion.train`).

Decisions: ``live`` at or above the threshold, ``spoof`` below, and ``retry`` when the
fused log-odds lie within ``retry_band`` of the threshold's (the service then asks for
another capture instead of guessing). A trained model names its ``operating_point`` and
gives a calibrated ``probability`` of bona fide (Platt scaling of the fused log-odds on
out-of-fold scores: Platt, "Probabilistic outputs for support vector machines", 1999).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from common.calibration import Calibrator
from common.errors import ModelError
from common.modelfolder import MANIFEST, read_model_folder
from common.result import TestOutcome

#: Name of the default rule (``fusion`` in every result it produced).
DEFAULT_RULE_NAME = "mean-threshold-normalised-log-odds"
#: Version of the default rule (a calibration profile records the fusion it was fitted on).
DEFAULT_RULE_VERSION = "1"
#: The default rule's decision threshold on the fused score.
DEFAULT_THRESHOLD = 0.5
#: Sub-folder of the models folder that holds a trained fusion model.
FUSION_SUBDIR = "fusion"
_EPS = 1e-12


@dataclass(frozen=True)
class FusedScore:
    """The fused P(live) (``None`` when no test scored), its threshold and decision,
    the operating point the threshold was chosen at, and the calibrated probability."""

    score: float | None
    threshold: float
    decision: str
    name: str
    operating_point: str | None = None
    probability: float | None = None
    #: Half-width (log-odds) of the band around the threshold that answers ``retry``.
    retry_band: float = 0.0


class Fusion(Protocol):
    """What the pipeline needs of a fusion; loaded once per process."""

    name: str
    version: str

    def fuse(self, outcomes: Mapping[str, TestOutcome]) -> FusedScore:
        """Combine the outcomes (test name → outcome) of one image."""
        ...


def decide(score: float | None, threshold: float, retry_band: float = 0.0) -> str:
    """``live`` at or above ``threshold``, ``spoof`` below; ``retry`` without a score or
    when ``|logit(score) − logit(threshold)| < retry_band`` (log-odds units)."""
    if score is None:
        return "retry"
    if retry_band > 0 and abs(_logit(score) - _logit(threshold)) < retry_band:
        return "retry"
    return "live" if score >= threshold else "spoof"


def _logit(p: float) -> float:
    p = min(max(float(p), _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def _expit(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _scored(outcomes: Mapping[str, TestOutcome]) -> dict[str, TestOutcome]:
    return {n: o for n, o in outcomes.items() if o.score is not None and math.isfinite(o.score)}


class NormalisedLogOddsFusion:
    """The default rule: mean of threshold-normalised log-odds (module docstring)."""

    name = DEFAULT_RULE_NAME
    version = DEFAULT_RULE_VERSION
    threshold = DEFAULT_THRESHOLD

    def fuse(self, outcomes: Mapping[str, TestOutcome]) -> FusedScore:
        margins = [
            _logit(o.score) - _logit(o.threshold if o.threshold is not None else 0.5)
            for o in _scored(outcomes).values()
            if o.score is not None
        ]
        score = _expit(sum(margins) / len(margins)) if margins else None
        return FusedScore(score, self.threshold, decide(score, self.threshold), self.name)


@dataclass(frozen=True)
class SubsetModel:
    """The fusion of one subset of tests: ``z = bias + Σ w_t · logit(s_t)``, P(live) =
    ``expit(z)``, decided at ``threshold`` (a P(live)); calibrated probability by
    ``calibrator`` (a :class:`~common.calibration.Calibrator` of the fused score),
    ``"identity"`` (the fused score itself) or ``None`` (uncalibrated)."""

    weights: dict[str, float]
    bias: float
    threshold: float
    calibrator: Calibrator | str | None = None

    def log_odds(self, scores: Mapping[str, float]) -> float:
        return self.bias + sum(w * _logit(scores[t]) for t, w in self.weights.items())

    def probability(self, score: float) -> float | None:
        if self.calibrator is None:
            return None
        if self.calibrator == "identity":
            return score
        return float(self.calibrator(np.array([score]))[0])  # type: ignore[operator]


def _calibrator(doc: Mapping[str, Any] | None) -> Calibrator | str | None:
    """A subset's ``calibration``: ``{"method": "identity"}``, a Calibrator's dict
    (``platt``, ``isotonic``), the older ``{"a", "b"}`` (Platt), or absent."""
    if not doc:
        return None
    if doc.get("method") == "identity":
        return "identity"
    if "method" not in doc:
        return Calibrator("platt", float(doc.get("a", 1.0)), float(doc.get("b", 0.0)))
    return Calibrator.from_dict(dict(doc))


class LinearLogOddsFusion:
    """A trained linear fusion over the tests' log-odds, one model per subset of tests.

    ``subsets`` maps ``"+"``-joined sorted test names (``"cnn+quality"``) to
    ``{"weights": {test: w}, "bias": b, "threshold": t, "operating_points": {name: t},
    "calibration": {…}}`` (threshold and calibration optional: the model's
    ``threshold``, no calibration); the fused score is ``expit(b + Σ w_test ·
    logit(s_test))`` for the subset of tests that answered, decided at that subset's
    threshold with the ``retry_band``. ``select`` picks another of the named operating
    points every subset ships (``LIVENESS_OPERATING_POINT``; :class:`ModelError` when a
    subset lacks it). A subset without a fitted model falls back to the largest fitted
    subset of the tests that answered (their other tests ignored).
    """

    format = "linear-log-odds"

    def __init__(self, name: str, threshold: float, subsets: Mapping[str, Mapping[str, Any]],
                 operating_point: str | None = None, retry_band: float = 0.0,
                 version: str = "", select: str | None = None) -> None:
        if not subsets:
            raise ModelError("a linear fusion model needs at least one fitted subset")
        if not (math.isfinite(retry_band) and retry_band >= 0):
            raise ModelError(f"retry_band must be a non-negative number, got {retry_band!r}")
        self.name = name
        self.version = version
        self.threshold = float(threshold)
        self.operating_point = select or operating_point
        self.retry_band = float(retry_band)
        self.subsets: dict[frozenset[str], SubsetModel] = {}
        for key, model in subsets.items():
            tests = frozenset(t for t in key.split("+") if t)
            weights = {str(t): float(w) for t, w in model["weights"].items()}
            if set(weights) != tests:
                raise ModelError(f"fusion subset {key!r} has weights for {sorted(weights)}")
            subset_threshold = float(model.get("threshold", threshold))
            if select and select != operating_point:
                points = model.get("operating_points") or {}
                if select not in points:
                    raise ModelError(f"LIVENESS_OPERATING_POINT={select!r}: fusion model "
                                     f"{name!r} has no threshold for it; it ships: "
                                     f"{', '.join(points) or operating_point}")
                subset_threshold = float(points[select])
            self.subsets[tests] = SubsetModel(weights, float(model["bias"]), subset_threshold,
                                              _calibrator(model.get("calibration")))
        self.calibrated = any(m.calibrator is not None for m in self.subsets.values())

    @classmethod
    def from_manifest(cls, doc: Mapping[str, Any], select: str | None = None
                      ) -> LinearLogOddsFusion:
        info = doc.get("info") or {}
        params = doc.get("params") or {}
        try:
            return cls(str(info["name"]), float(info["threshold"]), params["subsets"],
                       params.get("operating_point"), float(params.get("retry_band", 0.0)),
                       str(info.get("version", "")), select or None)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"malformed linear fusion model: {exc}") from exc

    def model_for(self, tests: frozenset[str]) -> SubsetModel | None:
        """The model of ``tests``, else of the largest fitted subset of them, else None."""
        if tests in self.subsets:
            return self.subsets[tests]
        fitting = [s for s in self.subsets if s <= tests]
        return self.subsets[max(fitting, key=lambda s: (len(s), sorted(s)))] if fitting else None

    def fuse(self, outcomes: Mapping[str, TestOutcome]) -> FusedScore:
        scored = _scored(outcomes)
        model = self.model_for(frozenset(scored))
        if model is None:
            return FusedScore(None, self.threshold, "retry", self.name, self.operating_point)
        z = model.log_odds({t: scored[t].score or 0.0 for t in model.weights})
        score = _expit(z)
        return FusedScore(score, model.threshold,
                          decide(score, model.threshold, self.retry_band), self.name,
                          self.operating_point, model.probability(score), self.retry_band)


#: Fusion model formats a ``models/fusion/model.json`` may declare.
FORMATS: dict[str, Any] = {LinearLogOddsFusion.format: LinearLogOddsFusion}


def load_fusion(models_dir: str | Path, operating_point: str = "") -> Fusion:
    """The fusion model in ``<models_dir>/fusion/`` when present, else the default rule.

    ``operating_point`` selects another of the thresholds the model ships (empty: its
    default). Raises :class:`ModelError` when the folder holds a ``model.json`` that is
    unreadable, fails its SHA-256 check, declares an unknown ``format`` or lacks that
    operating point; and when an operating point is asked of the default rule.
    """
    folder = Path(models_dir) / FUSION_SUBDIR
    if not (folder / MANIFEST).is_file():
        if operating_point:
            raise ModelError(f"LIVENESS_OPERATING_POINT={operating_point!r}, but no trained "
                             f"fusion model is installed in {folder} (the default rule has "
                             "one threshold)")
        return NormalisedLogOddsFusion()
    doc = read_model_folder(folder)
    kind = FORMATS.get(str(doc.get("format")))
    if kind is None:
        raise ModelError(f"{folder}: unknown fusion format {doc.get('format')!r}; "
                         f"known: {', '.join(FORMATS)}")
    return kind.from_manifest(doc, operating_point)
