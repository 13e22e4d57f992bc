"""Image intake: untrusted bytes in, a validated RGB uint8 array out.

Every entry point (CLI, gateway, workers) decodes through :func:`decode_image`, so
limits and error codes are the same everywhere. Checks run cheapest-first: size in
bytes, then the format's magic number, then the header's pixel count (before any
pixel is allocated, which stops decompression bombs), then the full decode.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from common.config import Settings, get_settings
from common.errors import (
    CorruptImageError,
    EmptyImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TooManyPixelsError,
    UnsupportedFormatError,
    without_object_reprs,
)

#: Formats we decode, keyed by Pillow's format name.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")

# Pillow's own bomb guard would raise its own exception type; ours runs first on the
# header and the limit is configurable, so disable Pillow's to avoid a second, untyped check.
Image.MAX_IMAGE_PIXELS = None

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"WEBP", 8, "WEBP"),
    (b"BM", 0, "BMP"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"ftypheic", 4, "HEIC"),
    (b"ftypheix", 4, "HEIC"),
    (b"ftypmif1", 4, "HEIF"),
    (b"ftypavif", 4, "AVIF"),
    (b"\x00\x00\x00\x0cjP  ", 0, "JPEG2000"),
    (b"\xff\x4f\xff\x51", 0, "JPEG2000"),
    (b"%PDF", 0, "PDF"),
)


def sniff_format(data: bytes) -> str | None:
    """Name the image format from its magic number, or ``None`` if unknown."""
    for magic, offset, name in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            if name == "WEBP" and data[:4] != b"RIFF":
                continue
            return name
    return None


#: JPEG start-of-frame markers we decode: baseline, extended sequential and progressive
#: Huffman-coded (what cameras and phones write). The others are refused by name.
_JPEG_SOF_SUPPORTED = {0xC0: "baseline", 0xC1: "extended sequential", 0xC2: "progressive"}
_JPEG_SOF_REFUSED = {
    0xC3: "lossless", 0xC5: "hierarchical", 0xC6: "hierarchical progressive",
    0xC7: "hierarchical lossless", 0xC9: "arithmetic-coded",
    0xCA: "arithmetic-coded progressive", 0xCB: "arithmetic-coded lossless",
    0xCD: "hierarchical arithmetic-coded", 0xCE: "hierarchical arithmetic-coded progressive",
    0xCF: "hierarchical arithmetic-coded lossless",
}


def check_jpeg_coding(data: bytes) -> None:
    """Refuse JPEG codings the decoder does not handle, before decoding, by name.

    Walks the marker segments up to the first start-of-scan (ITU-T T.81, B.1.1) and reads
    the start-of-frame: baseline, extended and progressive Huffman coding with 8-bit
    samples are accepted, whatever the colour space (grey, YCbCr, RGB, Adobe CMYK/YCCK),
    restart intervals, EXIF/ICC/MPF segments and embedded thumbnails (those live inside
    APPn segments and are skipped). 12- and 16-bit samples, arithmetic coding, lossless
    and hierarchical JPEG raise :class:`UnsupportedFormatError`. A header too short or
    malformed to walk is left to the decoder (which raises ``CorruptImageError``).
    """
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # TEM, RSTn: no length
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: the frame header came before it
            return
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in _JPEG_SOF_REFUSED:
            raise UnsupportedFormatError(
                f"{_JPEG_SOF_REFUSED[marker]} JPEG (marker SOF{marker - 0xC0}) is not "
                "supported; send a baseline or progressive JPEG, or a PNG")
        if marker in _JPEG_SOF_SUPPORTED and pos + 4 < n:
            precision = data[pos + 4]
            if precision != 8:
                raise UnsupportedFormatError(
                    f"{precision}-bit JPEG is not supported; send an 8-bit JPEG or a PNG")
            return
        pos += 2 + length


def decoder_reason(exc: BaseException) -> str:
    """Pillow's explanation of a failed decode, fit for an error message.

    Pillow names the file object it was given when no plugin accepts the data
    (``cannot identify image file <_io.BytesIO object at 0x…>``): that case becomes a
    plain sentence, and any other object repr in a message is replaced by ``the data``.
    """
    if isinstance(exc, UnidentifiedImageError):
        return "it is malformed"
    text = without_object_reprs(str(exc)).strip()
    return text or type(exc).__name__


def decode_image(data: bytes, settings: Settings | None = None) -> np.ndarray:
    """Decode untrusted image bytes to an RGB ``uint8`` array of shape (H, W, 3).

    EXIF orientation is applied; grey, palette, alpha, CMYK and 16-bit images are
    converted (alpha is dropped, 16-bit is scaled to 8-bit), not rejected. Every JPEG a
    camera writes is read: baseline and progressive, restart markers, Adobe CMYK/YCCK,
    EXIF with thumbnails, MPO (the first image); codings the decoder cannot read (12-bit,
    arithmetic, lossless, hierarchical) are refused by name (:func:`check_jpeg_coding`).

    Raises one of the :class:`common.errors.ImageError` subclasses on bad input.
    """
    settings = settings or get_settings()
    if not data:
        raise EmptyImageError("the image is empty (0 bytes)")
    if len(data) > settings.max_image_bytes:
        raise ImageTooLargeError(
            f"the image is larger than the limit of {settings.max_image_bytes} bytes"
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise NotAnImageError("the data is not a recognised image (expected JPEG, PNG, WebP, BMP)")
    if fmt not in SUPPORTED_FORMATS:
        raise UnsupportedFormatError(
            f"{fmt} images are not supported; send JPEG, PNG, WebP or BMP"
        )
    if fmt == "JPEG":
        check_jpeg_coding(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data), formats=[fmt])
    except Exception as exc:  # Pillow raises many types for a bad header
        raise CorruptImageError(f"the {fmt} header cannot be read: "
                                f"{decoder_reason(exc)}") from exc
    width, height = img.size
    if width * height > settings.max_image_pixels:
        raise TooManyPixelsError(
            f"the image is {width}x{height} = {width * height} pixels; "
            f"the limit is {settings.max_image_pixels}"
        )
    if getattr(img, "n_frames", 1) > 1:
        if img.format != "MPO":
            raise UnsupportedFormatError("animated images are not supported; send a single frame")
        # MPO (CIPA DC-007): a JPEG whose APP2 "MPF" index lists further images (a
        # camera's second view, a large preview). The first image is the photo.
        img.seek(0)
    # Some libraries (face_recognition on import) flip this process-wide switch, which
    # would silently accept truncated uploads; it must be off for our checks to hold.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
            img = ImageOps.exif_transpose(img)
    except Exception as exc:  # truncated data, bad Huffman tables, zlib errors, ...
        raise CorruptImageError(f"the {fmt} image is truncated or corrupt: "
                                f"{decoder_reason(exc)}") from exc
    rgb = _to_rgb_array(img)
    if min(rgb.shape[:2]) < settings.min_image_side:
        raise ImageTooSmallError(
            f"the image is {rgb.shape[1]}x{rgb.shape[0]}; its shorter side must be at least "
            f"{settings.min_image_side} px"
        )
    return rgb


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to RGB uint8, scaling high bit depths instead of clipping."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if (mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
        grey = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        # Keep the colour values as captured; alpha says nothing about liveness.
        return np.ascontiguousarray(np.asarray(img.convert("RGBA"), dtype=np.uint8)[:, :, :3])
    if mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def load_image(path: str | Path, settings: Settings | None = None) -> np.ndarray:
    """Read and decode an image file with the same checks as an upload."""
    settings = settings or get_settings()
    path = Path(path)
    size = path.stat().st_size
    if size > settings.max_image_bytes:
        raise ImageTooLargeError(
            f"{path.name} has {size} bytes; the limit is {settings.max_image_bytes}"
        )
    return decode_image(path.read_bytes(), settings)
