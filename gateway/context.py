"""What the routes share: settings, the job service, the key ring, readiness, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from common.config import Settings
from gateway.auth import KeyRing
from gateway.metrics import RedisCollector
from gateway.readiness import ReadinessCheck


@dataclass
class Gateway:
    settings: Settings
    jobs: Any  # workers.jobs.JobService (duck-typed so tests may wire their own)
    keyring: KeyRing
    readiness: ReadinessCheck
    metrics: RedisCollector


def gateway() -> Gateway:
    """The current app's :class:`Gateway`."""
    return current_app.extensions["liveness"]
