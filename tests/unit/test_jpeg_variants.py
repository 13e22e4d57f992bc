"""Every JPEG a camera writes is decoded; the codings the decoder cannot read are refused
by name. Each file is generated here (Pillow's encoder, then a byte-level patch where
Pillow cannot write the variant)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image
from skimage import data

from common import errors
from common.imageio import check_jpeg_coding, decode_image


def jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def close_to(out: np.ndarray, ref: np.ndarray, tol: float = 6.0) -> bool:
    return out.shape == ref.shape and float(np.abs(out.astype(int) - ref).mean()) < tol


def test_baseline(astronaut):
    assert close_to(decode_image(jpeg(Image.fromarray(astronaut), quality=95)), astronaut)


def test_progressive(astronaut):
    data_ = jpeg(Image.fromarray(astronaut), quality=95, progressive=True)
    assert b"\xff\xc2" in data_  # SOF2: progressive Huffman
    assert close_to(decode_image(data_), astronaut)


def test_restart_markers(astronaut):
    data_ = jpeg(Image.fromarray(astronaut), quality=95, restart_marker_blocks=4)
    assert b"\xff\xdd" in data_ and b"\xff\xd0" in data_  # DRI segment and RST0 markers
    assert close_to(decode_image(data_), astronaut)


def test_mpo_first_image_is_used(astronaut):
    """MPO (CIPA DC-007): many Samsung, Fujifilm and Nikon cameras append a second image."""
    buf = io.BytesIO()
    other = Image.fromarray(data.coffee()[:512, :512])
    Image.fromarray(astronaut).save(buf, "MPO", save_all=True, append_images=[other])
    assert b"MPF\x00" in buf.getvalue()[:200]
    assert close_to(decode_image(buf.getvalue()), astronaut)


def _cmyk_reference(cmyk: tuple[int, int, int, int]) -> np.ndarray:
    c, m, y, k = (v / 255.0 for v in cmyk)
    return np.array([255 * (1 - c) * (1 - k), 255 * (1 - m) * (1 - k), 255 * (1 - y) * (1 - k)])


CMYK = (20, 180, 60, 30)


def test_adobe_cmyk():
    img = Image.fromarray(np.full((64, 64, 4), CMYK, np.uint8), "CMYK")
    data_ = jpeg(img, quality=95)
    i = data_.find(b"Adobe")
    assert i > 0 and data_[i + 11] == 0  # APP14 transform 0: CMYK stored as is
    out = decode_image(data_)
    assert np.abs(out[32, 32] - _cmyk_reference(CMYK)).max() < 4


def _ycbcr(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return np.clip(np.rint(np.stack([y, cb, cr], -1)), 0, 255).astype(np.uint8)


def test_adobe_ycck():
    """YCCK (APP14 transform 2), what Photoshop writes for CMYK: Y, Cb, Cr of the inverted
    CMY and K, stored inverted (Adobe). Pillow cannot write it: we store those samples as
    CMYK and set the transform byte."""
    stored = 255 - np.full((64, 64, 4), CMYK, np.uint8)   # Adobe files store 255 - value
    ycck = np.concatenate([_ycbcr(255 - stored[..., :3]), stored[..., 3:]], axis=-1)
    data_ = bytearray(jpeg(Image.fromarray(255 - ycck, "CMYK"), quality=95))
    i = data_.find(b"Adobe")
    data_[i + 11] = 2
    out = decode_image(bytes(data_))
    assert np.abs(out[32, 32] - _cmyk_reference(CMYK)).max() < 5


def _exif_with_thumbnail(thumb: bytes, orientation: int) -> bytes:
    """A little-endian TIFF/EXIF block: IFD0 (Orientation) → IFD1 (the JPEG thumbnail)."""
    ifd0_at = 8
    ifd1_at = ifd0_at + 2 + 12 + 4
    thumb_at = ifd1_at + 2 + 2 * 12 + 4
    out = b"II*\x00" + struct.pack("<I", ifd0_at)
    out += struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    out += struct.pack("<I", ifd1_at)
    out += struct.pack("<H", 2)
    out += struct.pack("<HHII", 0x0201, 4, 1, thumb_at)      # JPEGInterchangeFormat
    out += struct.pack("<HHII", 0x0202, 4, 1, len(thumb))    # ...Length
    out += struct.pack("<I", 0)
    return out + thumb


def test_exif_thumbnail_is_skipped_and_orientation_applied(astronaut):
    thumb_src = np.zeros((40, 40, 3), np.uint8)  # a black thumbnail that must not be used
    thumb = jpeg(Image.fromarray(thumb_src), quality=70)
    main = np.ascontiguousarray(astronaut[:, :384])  # 512 rows x 384 columns
    data_ = jpeg(Image.fromarray(main), quality=95,
                 exif=b"Exif\x00\x00" + _exif_with_thumbnail(thumb, orientation=6))
    assert data_.count(b"\xff\xd8") == 2  # the thumbnail's own SOI inside APP1
    out = decode_image(data_)
    assert out.shape == (384, 512, 3)  # the main image, turned 90° clockwise
    assert close_to(out, np.rot90(main, k=-1))


def _patched_sof(data_: bytes, marker: int | None = None, precision: int | None = None
                 ) -> bytes:
    buf = bytearray(data_)
    i = buf.find(b"\xff\xc0")
    assert i > 0
    if marker is not None:
        buf[i + 1] = marker
    if precision is not None:
        buf[i + 4] = precision
    return bytes(buf)


@pytest.mark.parametrize(("marker", "precision", "words"), [
    (None, 12, "12-bit JPEG"),
    (None, 16, "16-bit JPEG"),
    (0xC9, None, "arithmetic-coded JPEG"),
    (0xCA, None, "arithmetic-coded progressive JPEG"),
    (0xC3, None, "lossless JPEG"),
    (0xC5, None, "hierarchical JPEG"),
])
def test_unreadable_codings_are_refused_by_name(astronaut, marker, precision, words):
    data_ = _patched_sof(jpeg(Image.fromarray(astronaut)), marker, precision)
    with pytest.raises(errors.UnsupportedFormatError) as exc:
        decode_image(data_)
    assert words in exc.value.message
    assert exc.value.http_status == 415


def test_header_walk_tolerates_fill_bytes_and_short_data(astronaut):
    data_ = jpeg(Image.fromarray(astronaut))
    check_jpeg_coding(data_[:2] + b"\xff" + data_[2:])  # a fill byte before the first marker
    check_jpeg_coding(data_[:5])  # too short to walk: left to the decoder
    with pytest.raises(errors.CorruptImageError):
        decode_image(data_[:40])
