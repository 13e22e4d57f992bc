"""Typed errors of the core library.

Each carries a stable machine-readable ``code`` and the HTTP status the gateway
answers with, so every layer reports bad input the same way and never as a 500.
"""

from __future__ import annotations

import re

#: A Python object's default repr (``<_io.BytesIO object at 0x7f…>``): it means nothing to
#: a client and leaks memory addresses, so no error message may contain one.
OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def without_object_reprs(text: str, replacement: str = "the data") -> str:
    """``text`` with every :data:`OBJECT_REPR` replaced by ``replacement``."""
    return OBJECT_REPR.sub(replacement, text)


class LivenessError(Exception):
    """Base of every error this project raises on purpose."""

    code = "liveness_error"
    http_status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        """The JSON error body: ``{"error": {"code", "message"}}``."""
        return {"error": {"code": self.code, "message": self.message}}


class ImageError(LivenessError):
    """The uploaded bytes cannot be used as an image."""

    code = "invalid_image"


class EmptyImageError(ImageError):
    code = "empty_image"
    http_status = 422


class NotAnImageError(ImageError):
    code = "not_an_image"
    http_status = 415


class UnsupportedFormatError(ImageError):
    code = "unsupported_format"
    http_status = 415


class CorruptImageError(ImageError):
    code = "corrupt_image"
    http_status = 422


class ImageTooLargeError(ImageError):
    """Too many bytes."""

    code = "image_too_large"
    http_status = 413


class TooManyPixelsError(ImageError):
    """Decoded size above the pixel limit (decompression-bomb guard)."""

    code = "too_many_pixels"
    http_status = 413


class ImageTooSmallError(ImageError):
    code = "image_too_small"
    http_status = 422


class ModelError(LivenessError):
    """A model file is missing, malformed or of an unknown version."""

    code = "model_error"
    http_status = 503


class DatasetError(LivenessError):
    """A dataset folder does not have the expected layout."""

    code = "dataset_error"
