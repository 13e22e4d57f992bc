"""Malformed image files for the error-message tests (generated; no files on disk).

:func:`malformed_images` gives, for each supported format, the bare magic number, the
file cut at many points and the file with bytes overwritten at random past its magic
number, plus the signatures of refused formats and a few odd byte strings. Nearly all
are refused (a byte overwritten in metadata can leave a valid image); every refusal must
be a typed error whose message contains no Python object repr (:data:`OBJECT_REPR`).
"""

from __future__ import annotations

import io
import random
import re

from PIL import Image
from skimage import data

#: A Python object's default repr in a message: ``<_io.BytesIO object at 0x7f…>``.
OBJECT_REPR = re.compile(r"<[^>]+ at 0x[0-9a-f]+>")

_SIGNATURES = {
    "jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n", "webp": b"RIFF\0\0\0\0WEBP",
    "bmp": b"BM", "gif": b"GIF89a", "tiff": b"II*\x00", "heic": b"\0\0\0\x18ftypheic",
    "avif": b"\0\0\0\x1cftypavif", "pdf": b"%PDF-1.7", "jp2": b"\xff\x4f\xff\x51",
}


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()[::4, ::4]).save(buffer, format=fmt)
    return buffer.getvalue()


def malformed_images(variants: int = 12, seed: int = 0) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` pairs of broken or refused image files, the same for a seed."""
    rng = random.Random(seed)
    cases: list[tuple[str, bytes]] = [(f"{n}-signature.{n}", s) for n, s in _SIGNATURES.items()]
    cases += [(f"{n}-signature-zeros.{n}", s + bytes(64)) for n, s in _SIGNATURES.items()]
    cases += [("empty.jpg", b""), ("text.jpg", b"hello, not an image"),
              ("random.bin", rng.randbytes(512))]
    for fmt in ("JPEG", "PNG", "WEBP", "BMP"):
        good = _encoded(fmt)
        ext = fmt.lower()
        for cut in (12, 16, 24, 40, 80, 200, len(good) // 3, len(good) // 2, len(good) * 3 // 4):
            cases.append((f"{ext}-cut-{cut}.{ext}", good[:cut]))
        for i in range(variants):
            broken = bytearray(good)
            for _ in range(8):
                broken[rng.randrange(12, min(len(broken), 400))] = rng.randrange(256)
            cases.append((f"{ext}-header-{i}.{ext}", bytes(broken)))
    return cases
