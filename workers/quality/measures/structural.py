"""SSIM, and the centred second-order products it shares with VIF.

Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to
structural similarity", IEEE TIP 13(4), 2004, as used by Galbally et al. 2014. The
local statistics use an 11x11 Gaussian window of sigma 1.5, population covariances
and K1 = 0.01, K2 = 0.03, and the mean skips the 5-pixel border the window overhangs:
the same numbers as ``skimage.metrics.structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255)``, computed with OpenCV
filters (about 5x faster).

Both images are shifted by the reference's mean before squaring: local variances are
differences E[x²] - E[x]², and centring keeps that cancellation small in float32.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from workers.quality.measures._common import DATA_RANGE, as_float_pair, row_strips

SSIM_SIGMA = 1.5
_SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # truncate=3.5 as in skimage / scipy.ndimage
_SSIM_WINDOW = (2 * _SSIM_RADIUS + 1,) * 2
K1, K2 = 0.01, 0.03


class CentredProducts(NamedTuple):
    """x = I - c, y = Î - c (c = mean of I) and their products, all float32 maps."""

    centre: float
    x: np.ndarray
    y: np.ndarray
    xx: np.ndarray
    yy: np.ndarray
    xy: np.ndarray


def centred_products(ref: np.ndarray, dist: np.ndarray) -> CentredProducts:
    """The shared inputs of SSIM and VIF for two float32 grey images."""
    centre = float(cv2.mean(ref)[0])
    x = ref - np.float32(centre)
    y = dist - np.float32(centre)
    return CentredProducts(centre, x, y, cv2.multiply(x, x), cv2.multiply(y, y), cv2.multiply(x, y))


def _blur(image: np.ndarray) -> np.ndarray:
    # BORDER_REFLECT is scipy.ndimage's mode='reflect', the mode skimage uses
    return cv2.GaussianBlur(image, _SSIM_WINDOW, SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)


def _ssim_strip(
    mu_x: np.ndarray, mu_y: np.ndarray, second: np.ndarray, cross: np.ndarray,
    centre: float, c1: float, c2: float,
) -> np.ndarray:
    """The SSIM map of one strip of the local moments (which it overwrites)."""
    mxy = cv2.multiply(mu_x, mu_y)
    dmu = cv2.subtract(mu_x, mu_y)
    cv2.multiply(dmu, dmu, dst=dmu)  # (μx - μy)²
    # contrast-structure: (2 σxy + C2) / (σx² + σy² + C2), where
    # σx² + σy² = E[x²] + E[y²] - (μx - μy)² - 2 μx μy
    cs_num = cv2.addWeighted(cross, 2.0, mxy, -2.0, c2, dst=cross)
    cs_den = cv2.addWeighted(second, 1.0, mxy, -2.0, c2, dst=second)
    cv2.subtract(cs_den, dmu, dst=cs_den)
    # luminance: (2 μx μy + C1) / (μx² + μy² + C1) for the true means μ + c, where
    # μx² + μy² = (μx - μy)² + 2 μx μy
    mu_x += np.float32(centre)
    mu_y += np.float32(centre)
    lum_num = cv2.multiply(mu_x, mu_y, dst=mu_x, scale=2.0)
    lum_num += np.float32(c1)
    lum_den = cv2.add(dmu, lum_num, dst=dmu)
    cv2.multiply(lum_num, cs_num, dst=lum_num)
    cv2.multiply(lum_den, cs_den, dst=lum_den)
    return cv2.divide(lum_num, lum_den, dst=lum_num)


def ssim_from_products(p: CentredProducts, data_range: float = DATA_RANGE) -> float:
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    mu_x, mu_y = _blur(p.x), _blur(p.y)  # local means of the centred images
    second = _blur(cv2.add(p.xx, p.yy))  # E[x²] + E[y²]: SSIM needs only the sum
    cross = _blur(p.xy)  # E[xy]
    height, width = mu_x.shape
    pad = _SSIM_RADIUS if min(height, width) > 2 * _SSIM_RADIUS else 0
    inner = slice(pad, width - pad)
    total = 0.0
    for rows in row_strips(height - 2 * pad, width):
        rows = slice(rows.start + pad, rows.stop + pad)
        ssim_map = _ssim_strip(
            mu_x[rows], mu_y[rows], second[rows], cross[rows], p.centre, c1, c2
        )
        total += cv2.sumElems(ssim_map[:, inner])[0]
    return total / ((height - 2 * pad) * (width - 2 * pad))


def structural_similarity(
    reference: np.ndarray, distorted: np.ndarray, *, data_range: float = DATA_RANGE
) -> float:
    """Mean SSIM of two grey images (Wang et al. 2004), Gaussian window sigma 1.5.

    Matches ``skimage.metrics.structural_similarity`` with ``gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255`` (images smaller than the
    11x11 window are averaged without the border crop instead of raising).
    """
    ref, dist = as_float_pair(reference, distorted)
    return ssim_from_products(centred_products(ref, dist), data_range)
