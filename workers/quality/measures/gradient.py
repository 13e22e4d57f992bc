"""Gradient-based full-reference measures: GME, GPE, TED and TCD.

Galbally, Marcel & Fierrez, IEEE TIP 23(2) 2014, Table I. All four derive from one
Sobel gradient per image (:func:`sobel_gradients`), which the feature extractor
computes once and shares:

* GME/GPE - gradient magnitude / phase error (Zhang et al., as cited by Galbally et
  al.): mean squared difference of the gradient magnitudes and of the gradient
  orientations.
* TED - total edge difference: fraction of pixels whose binary Sobel edge label
  differs between I and Î.
* TCD - total corner difference: |N - N̂| / max(N, N̂) of the Harris corner counts.

Edges and corners follow the MATLAB defaults Galbally et al. worked with
(``edge(I, 'sobel')``, ``corner(I)``), minus the edge thinning and the 200-corner cap.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from workers.quality.measures._common import as_float_pair, row_strips

#: Sobel 3x3 scaled by 1/8, so the gradient is in grey levels per pixel.
_SOBEL_SCALE = 0.125
#: MATLAB ``edge(I, 'sobel')``: an edge where |∇I|² > 4 mean |∇I|².
EDGE_FACTOR = 4.0
#: Harris corner defaults of MATLAB ``corner``: sensitivity k, a 5-tap Gaussian window of
#: sigma 1.5, and the quality level (minimum response as a fraction of the maximum).
HARRIS_K = 0.04
HARRIS_SIGMA = 1.5
HARRIS_QUALITY = 0.01


class Gradients(NamedTuple):
    """Sobel gradient of one grey image (float32 maps)."""

    gx: np.ndarray
    gy: np.ndarray
    magnitude: np.ndarray


def sobel_gradients(grey: np.ndarray) -> Gradients:
    """3x3 Sobel derivatives (scaled to grey levels per pixel) and their magnitude."""
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, scale=_SOBEL_SCALE)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3, scale=_SOBEL_SCALE)
    return Gradients(gx, gy, cv2.magnitude(gx, gy))


def _gradient_pair(reference: np.ndarray, distorted: np.ndarray) -> tuple[Gradients, Gradients]:
    ref, dist = as_float_pair(reference, distorted)
    return sobel_gradients(ref), sobel_gradients(dist)


# ------------------------------------------------------------------- GME / GPE
def gme_from_gradients(ref: Gradients, dist: Gradients) -> float:
    return cv2.norm(ref.magnitude, dist.magnitude, cv2.NORM_L2SQR) / ref.magnitude.size


def gpe_from_gradients(ref: Gradients, dist: Gradients) -> float:
    # The angle between the two gradient vectors, atan2(cross, dot), is the phase
    # difference already wrapped to [-π, π]; it is 0 where either gradient vanishes.
    total = 0.0
    for rows in row_strips(*ref.gx.shape):
        gx, gy, hx, hy = ref.gx[rows], ref.gy[rows], dist.gx[rows], dist.gy[rows]
        cross = cv2.multiply(gy, hx, scale=-1.0)
        cv2.accumulateProduct(gx, hy, cross)
        dot = cv2.multiply(gx, hx)
        cv2.accumulateProduct(gy, hy, dot)
        total += cv2.norm(np.arctan2(cross, dot, out=dot), cv2.NORM_L2SQR)
    return total / ref.gx.size


def gradient_magnitude_error(reference: np.ndarray, distorted: np.ndarray) -> float:
    """GME = mean (|∇I| - |∇Î|)², 3x3 Sobel gradients in grey levels/pixel (Galbally 2014)."""
    return gme_from_gradients(*_gradient_pair(reference, distorted))


def gradient_phase_error(reference: np.ndarray, distorted: np.ndarray) -> float:
    """GPE = mean (∠∇I - ∠∇Î)², orientation difference wrapped to [-π, π] (Galbally 2014).

    Where either gradient is zero the orientation is undefined and the term is 0.
    """
    return gpe_from_gradients(*_gradient_pair(reference, distorted))


# ---------------------------------------------------------------------------- TED
def edge_map(grad: Gradients) -> np.ndarray:
    """Binary Sobel edges (bool): |∇I|² above 4 × its image mean (MATLAB's rule)."""
    m = grad.magnitude
    return m > np.float32(np.sqrt(EDGE_FACTOR * cv2.norm(m, cv2.NORM_L2SQR) / m.size))


def ted_from_gradients(ref: Gradients, dist: Gradients) -> float:
    differ = edge_map(ref)
    differ ^= edge_map(dist)
    return np.count_nonzero(differ) / differ.size


def total_edge_difference(reference: np.ndarray, distorted: np.ndarray) -> float:
    """TED = mean |E(I) - E(Î)| of binary Sobel edge maps (Galbally et al. 2014, Table I).

    Each image gets its own threshold, |∇|² > 4 mean |∇|², as MATLAB ``edge(I,'sobel')``
    (without its thinning step). A flat image has no edges.
    """
    return ted_from_gradients(*_gradient_pair(reference, distorted))


# ---------------------------------------------------------------------------- TCD
#: Harris structure-tensor window: 5 taps of sigma HARRIS_SIGMA.
_HARRIS_WINDOW = (5, 5)


def _harris_response(grad: Gradients) -> np.ndarray:
    """R = det M - k tr² M of the smoothed structure tensor M (float32 map).

    Built strip by strip (see ``row_strips``): the gradient products of a strip and
    the 2 rows either side that the 5-tap window reaches are multiplied, smoothed and
    combined while they are in cache. Each output row sees the same input rows as a
    whole-image filter (the image's own borders are reflected as before), so R is the
    same.
    """
    height, width = grad.gx.shape
    halo = _HARRIS_WINDOW[0] // 2
    response = np.empty((height, width), dtype=np.float32)
    for rows in row_strips(height, width):
        top, bottom = max(0, rows.start - halo), min(height, rows.stop + halo)
        inner = slice(rows.start - top, rows.stop - top)
        gx, gy = grad.gx[top:bottom], grad.gy[top:bottom]
        a = cv2.GaussianBlur(cv2.multiply(gx, gx), _HARRIS_WINDOW, HARRIS_SIGMA)[inner]
        c = cv2.GaussianBlur(cv2.multiply(gy, gy), _HARRIS_WINDOW, HARRIS_SIGMA)[inner]
        b = cv2.GaussianBlur(cv2.multiply(gx, gy), _HARRIS_WINDOW, HARRIS_SIGMA)[inner]
        cv2.multiply(b, b, dst=b, scale=-1.0)
        cv2.accumulateProduct(a, c, b)  # det M = ac - b²
        cv2.add(a, c, dst=a)
        cv2.multiply(a, a, dst=a, scale=HARRIS_K)
        cv2.subtract(b, a, dst=response[rows])
    return response


def harris_corner_count(grad: Gradients) -> int:
    """Number of Harris corners: 3x3 local maxima of R = det M - k tr² M above 1% of max R.

    M is the structure tensor of the given gradient, smoothed by a 5-tap Gaussian of
    sigma 1.5, with k = 0.04 (the defaults of MATLAB ``corner``; no cap on the count).
    """
    response = _harris_response(grad)
    peak = cv2.minMaxLoc(response)[1]
    if peak <= 0.0:
        return 0
    corners = response >= cv2.dilate(response, None)  # 3x3 local maxima
    corners &= response > np.float32(HARRIS_QUALITY * peak)
    return int(np.count_nonzero(corners))


def tcd_from_gradients(ref: Gradients, dist: Gradients) -> float:
    n_ref, n_dist = harris_corner_count(ref), harris_corner_count(dist)
    largest = max(n_ref, n_dist)
    return abs(n_ref - n_dist) / largest if largest else 0.0


def total_corner_difference(reference: np.ndarray, distorted: np.ndarray) -> float:
    """TCD = |N_I - N_Î| / max(N_I, N_Î), N the Harris corner count (Galbally et al. 2014).

    Corners as :func:`harris_corner_count`; 0 when neither image has a corner.
    """
    return tcd_from_gradients(*_gradient_pair(reference, distorted))
