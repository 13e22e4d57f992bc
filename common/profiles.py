"""Calibration profiles: an operator's own calibration and operating point, by name.

A profile (``<models_dir>/profiles/<name>.json``, written by ``liveness calibrate`` on
the operator's labelled images) maps the fused score to a calibrated probability of a
bona fide presentation (Platt or isotonic: :mod:`common.evaluation.calibration`) and
decides at its own threshold on that probability, with its own retry band, at the
operating point it was fitted for. A request picks one with ``profile=<name>``; an API
key may have a default (``LIVENESS_KEY_PROFILES="key-id=name,…"``), and the deployment
one (``LIVENESS_DEFAULT_PROFILE``); with none, the fusion model's own threshold applies.

A profile is JSON only (no code): ``name``, ``operating_point``, ``threshold``,
``retry_band`` (log-odds half-width), ``calibration`` (``{"method": …}``), ``fusion``
(the fusion model name it was fitted on), and what it was fitted on (``fitted_on``).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.calibration import Calibrator
from common.errors import ModelError

PROFILES_SUBDIR = "profiles"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def valid_name(name: str) -> bool:
    """1–64 characters: letters, digits, ``_ . -``, not starting with a symbol."""
    return bool(_NAME.match(name))


@dataclass(frozen=True)
class Profile:
    """One calibration profile (module docstring)."""

    name: str
    operating_point: str
    threshold: float
    calibration: dict[str, Any]
    retry_band: float = 0.0
    fusion: str = ""
    fitted_on: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def calibrator(self) -> Calibrator:
        """The calibration map, built once per loaded profile."""
        return Calibrator.from_dict(self.calibration)

    def calibrate(self, score: float) -> float:
        """The calibrated P(bona fide) of a fused score."""
        return float(self.calibrator(score))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "operating_point": self.operating_point,
                "threshold": self.threshold, "retry_band": self.retry_band,
                "calibration": self.calibration, "fusion": self.fusion,
                "fitted_on": self.fitted_on}

    def summary(self) -> dict[str, Any]:
        """What ``/v1/profiles`` lists (no calibration internals)."""
        return {"name": self.name, "operating_point": self.operating_point,
                "threshold": self.threshold, "retry_band": self.retry_band,
                "calibration": self.calibration.get("method"), "fusion": self.fusion,
                "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Profile:
        """Raises :class:`ModelError` naming what is wrong."""
        try:
            profile = cls(str(doc["name"]), str(doc["operating_point"]),
                          float(doc["threshold"]), dict(doc["calibration"]),
                          float(doc.get("retry_band", 0.0)), str(doc.get("fusion", "")),
                          dict(doc.get("fitted_on") or {}))
            profile.calibrator  # noqa: B018 - builds it, so a bad map fails at load
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed calibration profile: {exc}") from exc
        if not valid_name(profile.name):
            raise ModelError(f"bad profile name {profile.name!r}")
        if not (0.0 < profile.threshold < 1.0 and math.isfinite(profile.retry_band)
                and profile.retry_band >= 0):
            raise ModelError(f"profile {profile.name!r}: threshold must be in (0, 1) and "
                             "retry_band ≥ 0")
        return profile


def profile_path(models_dir: Path, name: str) -> Path:
    if not valid_name(name):
        raise ValueError(f"bad profile name {name!r}: 1–64 letters, digits, _ . -")
    return Path(models_dir) / PROFILES_SUBDIR / f"{name}.json"


def save_profile(models_dir: Path, profile: Profile) -> Path:
    path = profile_path(models_dir, profile.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile.to_dict(), indent=1) + "\n")
    return path


def load_profiles(models_dir: Path) -> dict[str, Profile]:
    """Every profile in ``<models_dir>/profiles/``; :class:`ModelError` names a bad file
    (a service must not start with a profile it cannot apply)."""
    folder = Path(models_dir) / PROFILES_SUBDIR
    profiles: dict[str, Profile] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable profile: {exc}") from exc
        profile = Profile.from_dict(doc)
        if profile.name != path.stem:
            raise ModelError(f"{path}: holds profile {profile.name!r}; the file must be "
                             f"named {profile.name}.json")
        profiles[profile.name] = profile
    return profiles


def parse_key_profiles(spec: str) -> dict[str, str]:
    """``"key-id=profile,…"`` → ``{key id: profile}``; ``ValueError`` on a bad entry."""
    table = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        key_id, sep, name = entry.partition("=")
        if not sep or not key_id.strip() or not valid_name(name.strip()):
            raise ValueError(f"bad entry {entry[:40]!r}: expected key-id=profile-name")
        table[key_id.strip()] = name.strip()
    return table
