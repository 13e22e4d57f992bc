"""What the routes share: settings, the job service, the key ring, readiness, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from common.config import Settings
from common.jobs import JobService
from gateway.auth import KeyRing
from gateway.metrics import RedisCollector
from gateway.readiness import ReadinessCheck


@dataclass
class Gateway:
    settings: Settings
    jobs: JobService
    keyring: KeyRing
    readiness: ReadinessCheck
    metrics: RedisCollector


def gateway() -> Gateway:
    """The current app's :class:`Gateway`."""
    return current_app.extensions["liveness"]
