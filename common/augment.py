"""Training-time augmentations that target the collection shift.

A liveness model reads the capture chain (optics, exposure, white balance, sensor noise,
scaling, JPEG) as much as the attack, so it learns "which collection" unless every
training image is pushed through random capture chains. Simulated print/screen
recaptures of live images add attacks with the artefacts real ones share (blur,
compressed gamut, moiré or print noise) in every collection. Used for training only,
never to test. Every function maps an RGB uint8 (H, W, 3) image and a NumPy
``Generator`` to a new RGB uint8 image; the same seed gives the same output.

Used by the quality test (``capture_chain``, ``simulated_recapture``) and the CNN test
(``camera_chain``, which adds :func:`photometric` before the capture chain, when
fine-tuning; :func:`lower_resolution` for the shipped probe's training copies).
"""

from __future__ import annotations

import cv2
import numpy as np


def capture_chain(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random rescale (0.5–1.3×), sensor noise (σ ≤ 4) and JPEG (quality 40–95)."""
    h, w = rgb.shape[:2]
    factor = rng.uniform(0.5, 1.3)
    size = (max(64, round(w * factor)), max(64, round(h * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    out = cv2.resize(rgb, size, interpolation=interpolation).astype(np.float32)
    out += rng.normal(0.0, rng.uniform(0.0, 4.0), out.shape).astype(np.float32)
    out8 = np.clip(out, 0, 255).astype(np.uint8)
    quality = int(rng.integers(40, 96))
    ok, buf = cv2.imencode(".jpg", out8, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes 8-bit 3-channel arrays
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def simulated_recapture(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A live image as if printed or shown on a screen and photographed again."""
    h, w = rgb.shape[:2]
    out = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.6, 1.8)).astype(np.float32)
    low, high = rng.uniform(10, 40), rng.uniform(200, 245)  # a print/screen's narrower range
    out = low + out * ((high - low) / 255.0)
    if rng.random() < 0.5:  # screen: moiré between the pixel grid and the sensor
        yy, xx = np.mgrid[:h, :w].astype(np.float32)
        angle, freq = rng.uniform(0, np.pi), rng.uniform(0.5, 2.5)
        stripes = np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
        out += rng.uniform(2, 8) * stripes[..., None]
    else:  # print: halftone and paper grain
        out += rng.normal(0.0, rng.uniform(2, 6), out.shape).astype(np.float32)
    return capture_chain(np.clip(out, 0, 255).astype(np.uint8), rng)


def photometric(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random optics and exposure: defocus (Gaussian σ ≤ 1.2 px, half the time), gamma
    (0.7–1.4) and a colour cast (per-channel gain 0.85–1.15, i.e. a white-balance error)."""
    out = rgb
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.2))
    gain = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    lut = np.arange(256, dtype=np.float32) / 255.0
    curve = lut ** np.float32(rng.uniform(0.7, 1.4))
    out = curve[out] * gain * 255.0
    return np.clip(out, 0, 255).astype(np.uint8)


def camera_chain(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another camera: :func:`photometric`, then :func:`capture_chain`."""
    return capture_chain(photometric(rgb, rng), rng)


#: Shorter side, pixels, of the images :func:`lower_resolution` makes (log-uniform).
LOW_RESOLUTION_SHORTEST = (48.0, 200.0)
#: JPEG quality range of :func:`lower_resolution`'s re-encoding.
LOW_RESOLUTION_QUALITY = (60, 95)


def lower_resolution(rgb: np.ndarray, rng: np.random.Generator,
                     shortest: tuple[float, float] = LOW_RESOLUTION_SHORTEST,
                     quality: tuple[int, int] = LOW_RESOLUTION_QUALITY) -> np.ndarray:
    """The image as a lower-resolution camera or a smaller face crop would give it.

    Downscaled (``cv2.INTER_AREA``, aspect kept) so that its shorter side is
    ``s ~ log-uniform(shortest)`` pixels — an image already smaller is not enlarged —
    then JPEG-encoded at a quality drawn from ``quality`` (inclusive). Returns RGB uint8
    (h', w', 3), h' ≤ h and w' ≤ w.

    Why: in the training collections image size follows the label within a collection
    (one's attacks are 90-px crops beside 400-px bona fide ones, another's the reverse),
    so a model learns "small and blurred = attack", refuses live people whose camera or
    crop is small and accepts large replays. Applied to bona fide and attack
    presentations alike, it leaves resolution no signal to learn.
    Raises ``ValueError`` for an empty image or an empty or non-positive ``shortest``.
    """
    low, high = shortest
    if not 0 < low <= high:
        raise ValueError(f"shortest must be 0 < low <= high, got {shortest}")
    h, w = rgb.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("empty image")
    side = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    factor = side / min(h, w)
    out = rgb
    if factor < 1:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        out = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    jpeg_quality = int(rng.integers(quality[0], quality[1] + 1))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR),  # OpenCV's order
                           [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:  # pragma: no cover - OpenCV always encodes 8-bit 3-channel arrays
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
