"""Score calibrators: a fitted map from a fused score to a calibrated probability of a
bona fide presentation, JSON-serialisable (no code), applied with NumPy only.

* ``platt``: Platt, "Probabilistic outputs for support vector machines", 1999 — a
  logistic function of the score's log-odds, ``expit(a · logit(s) + b)``;
* ``isotonic``: Zadrozny & Elkan, KDD 2002 — a monotone step function, interpolated
  between its knots.

They are fitted by :func:`common.evaluation.calibration.fit_calibrator`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

_EPS = 1e-12


def log_odds(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 − p))`` of probabilities, clipped to [1e-12, 1 − 1e-12] (a test's
    P(live) may sit within 1e-9 of 1 and still rank)."""
    p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def expit(z: np.ndarray) -> np.ndarray:
    """The logistic function, ``1 / (1 + exp(−z))``."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, float)))


@dataclass(frozen=True)
class Calibrator:
    """A fitted score → probability map: ``platt`` (``a``, ``b`` on the log-odds) or
    ``isotonic`` (a monotone step function through ``x`` → ``y``, interpolated)."""

    method: str
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        if self.method == "platt":
            return expit(self.a * log_odds(scores) + self.b)
        return np.interp(np.asarray(scores, float), self.x, self.y)

    def to_dict(self) -> dict:
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, doc: dict) -> Calibrator:
        """Raises ``ValueError`` for an unknown method or malformed parameters."""
        method = doc.get("method")
        if method == "platt":
            return cls("platt", float(doc["a"]), float(doc["b"]))
        if method == "isotonic":
            x, y = tuple(float(v) for v in doc["x"]), tuple(float(v) for v in doc["y"])
            if len(x) != len(y) or len(x) < 2 or any(b < a for a, b in itertools.pairwise(x)):
                raise ValueError("isotonic calibration needs ≥ 2 increasing x and as many y")
            return cls("isotonic", x=x, y=y)
        raise ValueError(f"unknown calibration method {method!r}; expected platt or isotonic")


