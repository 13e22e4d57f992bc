"""Helpers of the end-to-end tests (no fixtures, no tests)."""

from __future__ import annotations

import io
import uuid

import numpy as np
from PIL import Image

#: The webhook secret of the session's stack.
WEBHOOK_SECRET = "e2e-" + uuid.uuid4().hex


def jpeg(array: np.ndarray, quality: int = 92) -> bytes:
    """An RGB array as JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
