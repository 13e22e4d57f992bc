"""How the colour of the light reflected by a surface followed a screen's colours.

A matte surface lit by the room and by the screen returns, per channel c, light
proportional to its albedo times the sum of the two illuminants; the camera scales the
whole frame by its exposure. In frame k (screen colour s_k, linear, 0-1)::

    O[k, c] = g[k] · A[c] · (L[c] + β · s[k, c])

where g is the exposure, A the albedo, L the ambient light and β the screen's light
relative to it. Taking logarithms and removing the mean over channels of each frame
(exposure) and the mean over frames of each channel (albedo and ambient light) leaves
``≈ β · double_centre(s)`` for moderate β: the *response* measured here is the
least-squares slope of the observed double-centred log colours on the expected ones,
and the *correlation* their cosine. The same reading of the Lambertian model underlies
the colour-flash checks of the literature (Tang et al., "Face Flashing: a Secure
Liveness Detection Protocol based on Light Reflections", NDSS 2018).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: sRGB 0-255 → linear light 0-1 (IEC 61966-2-1).
_V = np.arange(256, dtype=np.float64) / 255.0
SRGB_TO_LINEAR = np.where(_V <= 0.04045, _V / 12.92, ((_V + 0.055) / 1.055) ** 2.4
                          ).astype(np.float32)
#: Pixels with a channel at or above this (sRGB) are clipped, at or below the dark
#: level too dark to carry colour: neither counts in a region's mean.
CLIPPED, DARK = 250, 8
_EPS = 1e-6


@dataclass(frozen=True)
class ResponseFit:
    """How observed region colours (K frames × 3 channels) followed a sequence."""

    correlation: float  #: cosine of observed and expected double-centred log colours, -1-1
    response: float  #: slope of observed on expected: the screen's light / ambient, ≈ β
    observed_rms: float  #: RMS of the observed double-centred log colours
    expected_rms: float  #: RMS of the expected ones


def double_centre(values: np.ndarray) -> np.ndarray:
    """``values`` (K, 3) minus each row's and each column's mean (plus the grand mean)."""
    values = np.asarray(values, np.float64)
    return (values - values.mean(axis=1, keepdims=True) - values.mean(axis=0, keepdims=True)
            + values.mean())


def expected_pattern(colours: np.ndarray) -> np.ndarray:
    """The double-centred linear screen colours (K, 3) of a sequence of sRGB colours."""
    return double_centre(SRGB_TO_LINEAR[np.asarray(colours, np.uint8)])


def region_mean(frame: np.ndarray, mask: np.ndarray | tuple[slice, slice]
                ) -> tuple[np.ndarray, float]:
    """Mean linear RGB (3,) float64 of the usable pixels of ``frame`` (H, W, 3) uint8 in
    ``mask`` (a boolean (H, W) array or a pair of slices), and the usable fraction 0-1.

    A pixel is usable when no channel is clipped (>= 250) and one exceeds the dark level
    (> 8). The mean is ``nan`` when no pixel is usable.
    """
    pixels = frame[mask].reshape(-1, 3)
    if pixels.size == 0:
        return np.full(3, np.nan), 0.0
    usable = (pixels.max(axis=1) < CLIPPED) & (pixels.max(axis=1) > DARK)
    if not usable.any():
        return np.full(3, np.nan), 0.0
    linear = SRGB_TO_LINEAR[pixels[usable]]
    return linear.mean(axis=0).astype(np.float64), float(usable.mean())


def fit_response(means: np.ndarray, colours: np.ndarray) -> ResponseFit:
    """Fit the model above: ``means`` (K, 3) linear region colours, ``colours`` (K, 3)
    the sRGB screen colours of the same frames. Raises :class:`ValueError` on a shape
    mismatch or a non-positive mean."""
    means = np.asarray(means, np.float64)
    if means.shape != np.shape(colours) or means.ndim != 2 or means.shape[1] != 3:
        raise ValueError(f"means {means.shape} and colours {np.shape(colours)} must both "
                         "be (K, 3)")
    if not np.all(np.isfinite(means)) or np.any(means <= 0):
        raise ValueError("every region mean must be a positive number")
    observed = double_centre(np.log(means + _EPS))
    expected = expected_pattern(colours)
    e_norm, o_norm = float(np.sqrt((expected ** 2).sum())), float(np.sqrt((observed ** 2).sum()))
    inner = float((observed * expected).sum())
    correlation = inner / (e_norm * o_norm) if o_norm > 0 and e_norm > 0 else 0.0
    response = inner / (e_norm ** 2) if e_norm > 0 else 0.0
    size = observed.size
    return ResponseFit(correlation, response, o_norm / np.sqrt(size), e_norm / np.sqrt(size))


def face_region(box: tuple[float, float, float, float], shape: tuple[int, ...]
                ) -> tuple[slice, slice]:
    """The skin-dominated middle of a face box ``(x0, y0, x1, y1)``: 20-80 % of its width,
    25-85 % of its height (cheeks, nose, mouth), clipped to an image of ``shape``."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    rows = slice(max(0, int(y0 + 0.25 * h)), min(shape[0], int(y0 + 0.85 * h)))
    cols = slice(max(0, int(x0 + 0.2 * w)), min(shape[1], int(x0 + 0.8 * w)))
    return rows, cols


def background_mask(box: tuple[float, float, float, float], shape: tuple[int, ...]
                    ) -> np.ndarray:
    """Where the room behind the person is likely to be: above the head (higher than 35 %
    of the box height over its top) and beside it down to the box's middle row (more
    than half a box width from its sides). Boolean (H, W); may be empty."""
    height, width = shape[:2]
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    mask = np.zeros((height, width), bool)
    top = int(np.clip(y0 - 0.35 * h, 0, height))
    mask[:top, :] = True
    middle = int(np.clip((y0 + y1) / 2, 0, height))
    left, right = int(np.clip(x0 - 0.5 * w, 0, width)), int(np.clip(x1 + 0.5 * w, 0, width))
    mask[:middle, :left] = True
    mask[:middle, right:] = True
    return mask
