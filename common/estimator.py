"""The estimator contract every liveness test follows (after bob.pad.face).

Each test is an sklearn-style classifier — ``fit`` / ``predict_proba`` — that can
also ``save`` itself to a model folder as plain numbers (``model.json`` +
``weights.npz``, never pickle, so that loading a model cannot run code; see
:mod:`common.modelfolder`) and ``load`` it back. Fusion, evaluation and the CLI therefore
treat all tests alike. ``predict_proba`` columns follow ``classes_``
which is always ``[0, 1]`` = ``[attack, live]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from common.errors import ModelError
from common.modelfolder import (
    MANIFEST,
    load_npz,
    npz_bytes,
    read_model_folder,
    require_format,
    write_model_folder,
)

ATTACK, LIVE = 0, 1
MODEL_FILE = MANIFEST
#: The file holding an estimator's fitted state.
WEIGHTS_FILE = "weights.npz"


@dataclass
class ModelInfo:
    """What a model file says about itself; echoed in every result and the model card."""

    test: str
    name: str
    version: str
    threshold: float = 0.5
    threshold_rule: str = "default 0.5"
    trained_on: list[str] = field(default_factory=list)
    created: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LivenessEstimator(BaseEstimator, ClassifierMixin, ABC):
    """Base class: binary live-vs-attack classifier with safe persistence."""

    #: The liveness test this estimator implements (``quality``, ``cnn`` …).
    test_name: ClassVar[str] = ""
    #: Bumped when the saved format changes incompatibly.
    format_version: ClassVar[int] = 1

    info: ModelInfo | None

    @abstractmethod
    def fit(self, X: Any, y: Any) -> Self:
        """Learn from inputs ``X`` and labels ``y`` (1 live, 0 attack)."""

    @abstractmethod
    def predict_proba(self, X: Any) -> np.ndarray:
        """Return an (n, 2) array: P(attack), P(live)."""

    @abstractmethod
    def _to_arrays(self) -> dict[str, Any]:
        """The fitted state as JSON-serialisable numbers."""

    @abstractmethod
    def _from_arrays(self, state: dict[str, Any]) -> None:
        """Restore the fitted state written by :meth:`_to_arrays`."""

    def predict(self, X: Any) -> np.ndarray:
        """Hard labels at the model's calibrated threshold (not at 0.5)."""
        threshold = self.info.threshold if self.info else 0.5
        return (self.predict_proba(X)[:, LIVE] >= threshold).astype(int)

    def save(self, folder: str | Path) -> Path:
        """Write ``weights.npz`` (the fitted state) and ``model.json`` into ``folder``.

        See :mod:`common.modelfolder` for the layout; returns the path of ``model.json``.
        """
        manifest = {
            "format": f"{type(self).__module__}.{type(self).__qualname__}",
            "format_version": self.format_version,
            "info": self.info.to_dict() if self.info else None,
            "params": self.get_params(deep=False),
        }
        return write_model_folder(folder, manifest, {WEIGHTS_FILE: npz_bytes(self._to_arrays())})

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read a folder written by :meth:`save`; :class:`ModelError` if it is not one.

        Every weight file's SHA-256 is checked against ``model.json`` first.
        """
        doc = read_model_folder(folder, required=(WEIGHTS_FILE,))
        path = Path(folder)
        if not path.is_dir():
            path = path.parent
        require_format(doc, path, f"{cls.__module__}.{cls.__qualname__}", cls.format_version,
                       cls.__name__)
        if WEIGHTS_FILE not in doc["files"]:
            raise ModelError(f"{path}/model.json does not list {WEIGHTS_FILE}")
        model = cls(**doc.get("params", {}))
        try:
            model._from_arrays(load_npz(path / WEIGHTS_FILE))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path} is missing or has malformed fitted state: {exc}") from exc
        model.info = ModelInfo(**doc["info"]) if doc.get("info") else None
        return model
