"""Runtime settings, read from ``LIVENESS_*`` environment variables (12-factor).

Every setting has a documented default so a bare checkout runs; deployments
override by environment only. The table in README.md mirrors this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LIVENESS_{name}", default)


@dataclass(frozen=True)
class Settings:
    """All tunables of the core library. Build with :meth:`from_env`."""

    #: Uploads larger than this many bytes are refused (HTTP 413).
    max_image_bytes: int = 10_000_000
    #: Decoded images with more pixels than this are refused (decompression bombs).
    max_image_pixels: int = 40_000_000
    #: Images whose shorter side is below this are refused as too small.
    min_image_side: int = 64
    #: face_recognition detector: ``hog`` (CPU, fast) or ``cnn`` (dlib MMOD, slower).
    face_detector: str = "hog"
    #: Faces whose square box side is below this many pixels get ``face_too_small``.
    min_face_side: int = 48
    #: Detection runs on a copy whose longer side is at most this (speed); boxes are
    #: mapped back to the original image.
    face_detect_max_side: int = 640
    #: Folder holding one sub-folder per test with its model file and card.
    models_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "models")

    @classmethod
    def from_env(cls) -> Settings:
        """Read every setting from ``LIVENESS_<NAME>`` (upper-case field name)."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"LIVENESS_{f.name.upper()}")
            if raw is None:
                continue
            if f.name == "models_dir":
                values[f.name] = Path(raw)
            elif f.type in ("int", int):
                values[f.name] = int(raw)
            else:
                values[f.name] = raw
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.face_detector not in ("hog", "cnn"):
            raise ValueError("LIVENESS_FACE_DETECTOR must be 'hog' or 'cnn'")
        return settings


def get_settings() -> Settings:
    """The process's settings (re-read each call so tests can monkeypatch env)."""
    return Settings.from_env()
