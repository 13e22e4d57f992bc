"""Calibration profiles: an operator's own calibration and operating point, by name.

A profile (``<models_dir>/profiles/<name>.json``, written by ``liveness calibrate`` on
the operator's labelled images) maps the fused score to a calibrated probability of a
bona fide presentation (Platt or isotonic: :mod:`common.evaluation.calibration`) and
decides at its own threshold on that probability, with its own retry band, at the
operating point it was fitted for. A request picks one with ``profile=<name>``; an API
key may have a default (``LIVENESS_KEY_PROFILES="key-id=name,…"``), and the deployment
one (``LIVENESS_DEFAULT_PROFILE``); with none, the fusion model's own threshold applies.

A profile is JSON only (no code): ``name``, ``operating_point``, ``threshold``,
``retry_band`` (log-odds half-width), ``calibration`` (``{"method": …}``), and what it
was fitted on: the ``tests`` (sorted names), the ``models`` (test → ``{"name",
"version"}`` of the model that scored it), the ``fusion`` model's name and
``fusion_version``, and ``fitted_on`` (data, counts, date).

A calibration maps one particular fused score to a probability: the fused score of
exactly those tests, scored by exactly those models and fused by that fusion model. On
any other score it is meaningless — a profile fitted on ``quality+cnn`` applied to a
``quality``-only score accepted every attack — so a profile is never applied to anything
else (:meth:`Profile.check_tests`, :meth:`Profile.check_scored`; HTTP 422
``profile_mismatch`` at submission, a refused start for a deployment default).

:class:`ProfileCatalog` reads the folder and re-reads it when a file in it changes, so a
profile written by ``liveness calibrate`` reaches a running service without a restart.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.calibration import Calibrator
from common.errors import LivenessError, ModelError

log = logging.getLogger(__name__)

PROFILES_SUBDIR = "profiles"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ProfileMismatchError(LivenessError):
    """A calibration profile named for a job it was not fitted on: other tests, other
    model versions or another fusion model (HTTP 422)."""

    code = "profile_mismatch"
    http_status = 422


def valid_name(name: str) -> bool:
    """1–64 characters: letters, digits, ``_ . -``, not starting with a symbol."""
    return bool(_NAME.match(name))


@dataclass(frozen=True)
class Profile:
    """One calibration profile (module docstring).

    ``tests``: the sorted names of the tests whose fused score it calibrates; ``models``:
    test → ``{"name": …, "version": …}`` of the model that scored each one; ``fusion`` /
    ``fusion_version``: the fusion model that fused them.
    """

    name: str
    operating_point: str
    threshold: float
    calibration: dict[str, Any]
    tests: tuple[str, ...]
    models: dict[str, dict[str, str]]
    retry_band: float = 0.0
    fusion: str = ""
    fusion_version: str = ""
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tests", tuple(sorted(set(self.tests))))

    @functools.cached_property
    def calibrator(self) -> Calibrator:
        """The calibration map, built once per loaded profile."""
        return Calibrator.from_dict(self.calibration)

    def calibrate(self, score: float) -> float:
        """The calibrated P(bona fide) of a fused score."""
        return float(self.calibrator(score))

    # --- what it may be applied to ---------------------------------------------------
    def check_tests(self, tests: Iterable[str], what: str = "this job runs") -> None:
        """Raise :class:`ProfileMismatchError` unless ``tests`` are exactly the profile's."""
        asked = sorted(set(tests))
        if asked != list(self.tests):
            raise ProfileMismatchError(
                f"calibration profile {self.name!r} was fitted on the tests "
                f"{'+'.join(self.tests)}; {what} {'+'.join(asked) or 'no tests'}: a "
                f"profile calibrates one combination of tests only (run the job with "
                f"tests={','.join(self.tests)}, or fit a profile for "
                f"{','.join(asked)} with `liveness calibrate --tests {','.join(asked)}`)")

    def check_models(self, models: Mapping[str, tuple[str | None, str | None]]) -> None:
        """Raise :class:`ProfileMismatchError` when a test's model (test → (name,
        version)) is not the one the profile was fitted on."""
        for test, (name, version) in sorted(models.items()):
            fitted = self.models.get(test)
            if fitted is None:
                self.check_tests([*self.tests, test])
                continue
            if (name, version) != (fitted.get("name"), fitted.get("version")):
                raise ProfileMismatchError(
                    f"calibration profile {self.name!r} was fitted on the {test} model "
                    f"{fitted.get('name')} {fitted.get('version')}; this one is {name} "
                    f"{version}: re-run `liveness calibrate` for the installed models")

    def check_fusion(self, name: str, version: str) -> None:
        """Raise :class:`ProfileMismatchError` when the fusion model is another one."""
        if (name, version) != (self.fusion, self.fusion_version):
            raise ProfileMismatchError(
                f"calibration profile {self.name!r} was fitted on the fusion "
                f"{self.fusion} {self.fusion_version}; the installed fusion is {name} "
                f"{version}: re-run `liveness calibrate` for the installed models")

    def check_scored(self, outcomes: Mapping[str, Any], fusion_name: str,
                     fusion_version: str) -> None:
        """Everything a job's outcomes (test → ``TestOutcome``) must share with the
        profile: its tests, the model name and version of each test that scored, and
        the fusion model. :class:`ProfileMismatchError` otherwise."""
        self.check_tests(outcomes, "the job ran")
        self.check_models({t: (o.model, o.version) for t, o in outcomes.items()
                           if o.score is not None})
        self.check_fusion(fusion_name, fusion_version)

    # --- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "operating_point": self.operating_point,
                "threshold": self.threshold, "retry_band": self.retry_band,
                "calibration": self.calibration, "tests": list(self.tests),
                "models": {t: dict(m) for t, m in self.models.items()},
                "fusion": self.fusion, "fusion_version": self.fusion_version,
                "fitted_on": self.fitted_on}

    def summary(self) -> dict[str, Any]:
        """What ``/v1/profiles`` lists (no calibration internals)."""
        return {"name": self.name, "operating_point": self.operating_point,
                "threshold": self.threshold, "retry_band": self.retry_band,
                "calibration": self.calibration.get("method"), "tests": list(self.tests),
                "models": {t: dict(m) for t, m in self.models.items()},
                "fusion": self.fusion, "fusion_version": self.fusion_version,
                "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Profile:
        """Raises :class:`ModelError` naming what is wrong; a profile that does not record
        the tests and models it was fitted on (an older ``liveness calibrate``) is refused:
        it could not be kept from being applied to other ones."""
        if "tests" not in doc or "models" not in doc:
            raise ModelError(f"calibration profile {str(doc.get('name'))[:64]!r} does not "
                             "record the tests and model versions it was fitted on; re-run "
                             "`liveness calibrate` to write it again")
        try:
            models = {str(t): {"name": str(m["name"]), "version": str(m["version"])}
                      for t, m in dict(doc["models"]).items()}
            profile = cls(str(doc["name"]), str(doc["operating_point"]),
                          float(doc["threshold"]), dict(doc["calibration"]),
                          tuple(sorted(str(t) for t in doc["tests"])), models,
                          float(doc.get("retry_band", 0.0)), str(doc.get("fusion", "")),
                          str(doc.get("fusion_version", "")),
                          dict(doc.get("fitted_on") or {}))
            profile.calibrator  # noqa: B018 - builds it, so a bad map fails at load
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed calibration profile: {exc}") from exc
        if not valid_name(profile.name):
            raise ModelError(f"bad profile name {profile.name!r}")
        if not profile.tests or set(profile.models) != set(profile.tests):
            raise ModelError(f"profile {profile.name!r}: 'models' must name the model of "
                             f"each of its tests {list(profile.tests)}")
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
    """Write ``<models_dir>/profiles/<name>.json`` atomically (a temporary file renamed
    over it), so a running service never reads half a profile."""
    path = profile_path(models_dir, profile.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(profile.to_dict(), indent=1) + "\n")
    os.replace(partial, path)
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
        if not isinstance(doc, dict):
            raise ModelError(f"{path}: a profile is a JSON object")
        try:
            profile = Profile.from_dict(doc)
        except ModelError as exc:
            raise ModelError(f"{path}: {exc.message}") from exc
        if profile.name != path.stem:
            raise ModelError(f"{path}: holds profile {profile.name!r}; the file must be "
                             f"named {profile.name}.json")
        profiles[profile.name] = profile
    return profiles


def _folder_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(file name, mtime ns, size) of every profile file: changes when one is written."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return ()
    out = []
    for entry in entries:
        if entry.name.endswith(".json") and not entry.name.startswith("."):
            try:
                st = entry.stat()
            except OSError:
                continue
            out.append((entry.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


class ProfileCatalog:
    """The profiles of ``<models_dir>/profiles/``, re-read when a file there changes.

    Created, it reads the folder at once: a malformed profile raises
    :class:`ModelError` (a service must not start with a profile it cannot apply).
    Afterwards every lookup checks — at most every ``check_s`` seconds — whether a file
    was added, changed or removed (a ``stat`` per file) and re-reads the folder; a new
    set that fails to load is not used: the previous one stays in force, the error is
    logged and kept in :attr:`error`. Thread-safe.
    """

    def __init__(self, models_dir: str | Path, check_s: float = 1.0) -> None:
        self.folder = Path(models_dir) / PROFILES_SUBDIR
        self.check_s = float(check_s)
        self._lock = threading.Lock()
        self._signature = _folder_signature(self.folder)
        self._profiles = load_profiles(Path(models_dir))
        self._checked = time.monotonic()
        #: Why the folder's current content is not in force (``None`` when it is).
        self.error: str | None = None

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.check_s:
            return
        self._checked = now
        signature = _folder_signature(self.folder)
        if signature == self._signature:
            return
        self._signature = signature
        try:
            self._profiles = load_profiles(self.folder.parent)
            self.error = None
            log.info("calibration profiles reloaded: %s", ", ".join(self._profiles) or "none")
        except ModelError as exc:
            self.error = exc.message
            log.error("calibration profiles not reloaded, the previous ones stay in force: "
                      "%s", exc.message)

    def all(self) -> dict[str, Profile]:
        """Name → profile, as of the folder's last readable state."""
        with self._lock:
            self._refresh()
            return dict(self._profiles)

    def get(self, name: str) -> Profile | None:
        return self.all().get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.all()


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
