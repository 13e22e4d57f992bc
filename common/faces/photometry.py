"""Exposure, backlight and skin tone of a located face (on :class:`FaceRegions`).

**Exposure whatever the skin tone.** A face's mean brightness is its skin's reflectance
times the light the camera caught: a well-exposed dark-skinned face and an under-exposed
light-skinned one can have the same mean. No statistic of the skin's own pixels can
tell them apart (a darker skin and a shorter exposure both scale the linear light of
every skin pixel), so :func:`exposure` ignores the skin: it is the 95th percentile of
the luma of every other pixel of the context-2 crop that lies in the image — the eyes,
eyebrows, lips, hair, clothes and background, whose brightest parts (eye whites, a wall,
a shirt, a lamp) stand in for the scene's exposure. A capture is dark when nothing
around the face is bright. Limits: when the face fills the crop (very tight crops) the
few non-skin pixels decide; a face lit in a dark room with nothing bright around it
counts as dark whatever its skin (the same verdict for every skin tone, which is the
point).

**Backlight.** :func:`backlight` is the ratio, in linear light, of the surround's
brighter luminance (its 75th percentile: the background rather than the hair and
clothes around the face) to the skin's median (luma decoded with the sRGB transfer
function, an approximation of luminance). The live faces of ``../shared/data`` read 2.3
(median; 31 at most); made five stops darker than a clipped background (as in front of
a window or the sky), about 55. Unlike exposure it depends on the skin's reflectance —
a darker face against the same bright background reads higher — which is why its limit
sits above every live image of ``../shared/data`` (``bench/face_coverage.py`` prints
the ratio per skin-tone group).

**Skin tone** for reporting only: the Individual Typology Angle (Chardin et al.,
"Individual typology angle", Int J Cosmet Sci 1991; bands of Del Bino & Bernerd, Br J
Dermatol 2013), ``ITA = atan((L* − 50) / b*) · 180/π`` from the median CIELAB L* and b*
(D65, ``skimage.color.rgb2lab``) of the skin pixels. Uncalibrated cameras, white balance
and exposure shift it, so it groups captures, not people.

:func:`simulate_exposure` darkens an image as a shorter exposure would (linear light
scaled, sensor noise, 8-bit quantisation) and :func:`simulate_backlight` makes a backlit
capture of it: the bench and the tests use them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.color import rgb2lab

from common.faces.regions import FaceRegions

#: Percentile of the non-skin luma that :func:`exposure` reports.
EXPOSURE_PERCENTILE = 95.0
#: Percentile of the surround's luma that :func:`backlight` compares with the skin's median.
BACKLIGHT_PERCENTILE = 75.0
#: Fewer pixels than this in a region: it cannot be measured (see each function).
MIN_REGION_PIXELS = 64
#: Del Bino & Bernerd's ITA bands, degrees: (name, lower bound), lightest first.
ITA_GROUPS: tuple[tuple[str, float], ...] = (
    ("very light", 55.0), ("light", 41.0), ("intermediate", 28.0), ("tan", 10.0),
    ("brown", -30.0), ("dark", -math.inf))
#: Sensor model of :func:`simulate_exposure`: electrons at full scale (linear 1.0) and
#: read noise (electrons, RMS): a small phone or webcam sensor at moderate gain.
FULL_WELL_ELECTRONS = 2000.0
READ_NOISE_ELECTRONS = 3.0


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer function undone (IEC 61966-2-1): codes in 0-1 → linear 0-1."""
    v = np.asarray(values, dtype=np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1): linear 0-1 → codes in 0-1."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def exposure(regions: FaceRegions) -> float:
    """95th percentile of the luma (0-255) of the crop's in-image pixels that are not
    skin (module docstring); of every in-image pixel when fewer than
    :data:`MIN_REGION_PIXELS` are not skin; 0.0 when none is in the image."""
    other = regions.inside & ~regions.skin
    values = regions.luma[other] if other.sum() >= MIN_REGION_PIXELS else \
        regions.luma[regions.inside]
    return float(np.percentile(values, EXPOSURE_PERCENTILE)) if values.size else 0.0


def backlight(regions: FaceRegions) -> float:
    """The surround's 75th-percentile luminance over the skin's median, in linear light
    (module docstring), ≥ 0; 1.0 when either region has fewer than
    :data:`MIN_REGION_PIXELS` pixels in the image (a tight crop has no surround to be
    backlit by). The skin's luminance is floored at that of luma 1 so a black face gives
    a large finite ratio."""
    if regions.surround.sum() < MIN_REGION_PIXELS or regions.skin.sum() < MIN_REGION_PIXELS:
        return 1.0
    surround = float(srgb_to_linear(
        np.percentile(regions.luma[regions.surround], BACKLIGHT_PERCENTILE) / 255.0))
    skin = float(srgb_to_linear(max(float(np.median(regions.luma[regions.skin])), 1.0)
                                / 255.0))
    return surround / skin


def individual_typology_angle(regions: FaceRegions) -> float:
    """ITA in degrees (module docstring) of the skin pixels; ``nan`` when fewer than
    :data:`MIN_REGION_PIXELS` of them lie in the image."""
    if regions.skin.sum() < MIN_REGION_PIXELS:
        return math.nan
    lab = rgb2lab(regions.rgb[regions.skin][None].astype(np.float64) / 255.0)[0]
    lightness, yellow = float(np.median(lab[:, 0])), float(np.median(lab[:, 2]))
    return math.degrees(math.atan2(lightness - 50.0, yellow))


def ita_group(angle: float) -> str:
    """Del Bino & Bernerd's group of an ITA (degrees): ``very light`` (> 55), ``light``
    (41-55), ``intermediate`` (28-41), ``tan`` (10-28), ``brown`` (−30-10), ``dark``
    (< −30); ``unknown`` for ``nan``."""
    if math.isnan(angle):
        return "unknown"
    return next(name for name, low in ITA_GROUPS if angle > low)


def simulate_exposure(image: np.ndarray, factor: float, rng: np.random.Generator
                      ) -> np.ndarray:
    """``image`` (RGB uint8) as a capture with ``factor`` × the light (0.5: one stop
    less): sRGB decoded, linear light scaled, photon shot noise and read noise added
    (:data:`FULL_WELL_ELECTRONS`, :data:`READ_NOISE_ELECTRONS`, Gaussian
    approximation), re-encoded and quantised to uint8. Raises ``ValueError`` for a
    factor outside (0, 1]."""
    if not 0.0 < factor <= 1.0:
        raise ValueError(f"the exposure factor must be in (0, 1]; got {factor}")
    electrons = srgb_to_linear(np.asarray(image) / 255.0) * factor * FULL_WELL_ELECTRONS
    noisy = electrons + rng.standard_normal(electrons.shape) * np.sqrt(
        electrons + READ_NOISE_ELECTRONS ** 2)
    codes = linear_to_srgb(noisy / FULL_WELL_ELECTRONS) * 255.0
    return np.clip(np.round(codes), 0, 255).astype(np.uint8)


def simulate_backlight(image: np.ndarray, box: tuple[float, float, float, float],
                       background: float = 8.0, head: float = 0.03, glare: float = 0.005
                       ) -> np.ndarray:
    """``image`` (RGB uint8) as a backlit capture of the face in ``box`` (x0, y0, x1, y1
    pixels): in linear light the frame outside an ellipse around the head is multiplied
    by ``background`` (8: three stops brighter, the background clips), the head by
    ``head`` (0.03: five stops darker, lit by ambient light only), and a veiling glare of
    ``glare`` × full scale is added everywhere (flare from the light behind); the
    ellipse (semi-axes 0.62 × the box's width and 0.8 × its height) is feathered over a
    tenth of the box's width."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    mask = np.zeros((h, w), np.float32)
    centre = (round((x0 + x1) / 2), round((y0 + y1) / 2))
    cv2.ellipse(mask, centre, (round(0.62 * (x1 - x0)), round(0.8 * (y1 - y0))), 0, 0, 360,
                1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.1 * (x1 - x0)))[..., None]
    lit = srgb_to_linear(np.asarray(image) / 255.0) * (background * (1.0 - mask)
                                                       + head * mask) + glare
    return np.round(linear_to_srgb(lit) * 255.0).astype(np.uint8)
