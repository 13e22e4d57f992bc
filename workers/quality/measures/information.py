"""Information-theoretic full-reference measures: VIF and RRED.

* VIF - Sheikh & Bovik, "Image information and visual quality", IEEE TIP 15(2), 2006:
  the multi-scale pixel-domain variant (VIFp): at each of 4 scales, Gaussian-window
  local variances and covariance give a gain g and a residual variance σv² of the
  "distortion channel" Î = g I + V, and VIF is the ratio of the information the
  distorted and the reference image carry about the source,
  Σ log(1 + g² σ_I² / (σv² + σn²)) / Σ log(1 + σ_I² / σn²), with σn² = 2.
* RRED - Soundararajan & Bovik, "RRED indices: reduced reference entropic
  differencing for image quality assessment", IEEE TIP 21(2), 2012: wavelet
  coefficients in 3x3 blocks follow a Gaussian scale mixture C = S·U; each block's
  scale s² is estimated by maximum likelihood, s² = cᵀ K_U⁻¹ c / 9, and its entropy
  under neural noise of variance σw² = 0.1 is h = ½ Σ_j log2(2πe (s² λ_j + σw²)) over
  the eigenvalues λ_j of K_U. RRED is the mean |γ h - γ̂ ĥ| of the entropies scaled
  by γ = log2(1 + s²): the full-reference level of the index (one entropy per block).

Simplifications, documented in the function docstrings: RRED uses one sub-band, as
the authors' released code does, but the level-1 orthonormal Haar horizontal-detail
band instead of a steerable-pyramid band, and K_U is each image's own zero-mean
covariance of its non-overlapping blocks. VIF runs in float32 on images centred by
the reference mean; its "flat window" threshold is raised from the reference code's
1e-10 (below float32 resolution) to a variance of 0.05 grey levels².
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from workers.quality.measures._common import as_float_pair, row_strips
from workers.quality.measures.structural import CentredProducts, centred_products

#: VIF: variance of the HVS noise, and the local variance below which a window is flat.
VIF_NOISE_VAR = 2.0
VIF_VAR_EPS = 0.05
VIF_SCALES = 4
#: RRED: block side, neural-noise variance (the authors' values).
RRED_BLOCK = 3
RRED_NOISE_VAR = 0.1
_LOG2_2PIE = math.log2(2.0 * math.pi * math.e)


# ---------------------------------------------------------------------------- VIF
def _vif_window(scale: int) -> tuple[int, float]:
    """Window side N = 2^(5-scale) + 1 (17, 9, 5, 3) and sigma N / 5, as Sheikh's vifp."""
    n = 2 ** (VIF_SCALES - scale + 1) + 1
    return n, n / 5.0


def _valid(image: np.ndarray, n: int) -> np.ndarray:
    """The 'valid' part of an N x N filter output (MATLAB ``filter2(.., 'valid')``)."""
    r = (n - 1) // 2
    return image[r : image.shape[0] - r, r : image.shape[1] - r]


def _vif_strip(
    mu1: np.ndarray, mu2: np.ndarray, s1: np.ndarray, s2: np.ndarray, s12: np.ndarray
) -> tuple[float, float]:
    """(numerator, denominator) sums of one strip of local moments (which it overwrites).

    The numerator is summed as Σ ln(σ2² + σn²) - Σ ln(σv² + σn²): since
    g² σ1² = σ2² - σv², that is Σ ln(1 + g² σ1² / (σv² + σn²)) with two logs and no
    division. σv² is not clamped at 0 as in the reference code: the clamp only guards
    rounding, far below σn² = 2 here.
    """
    cv2.subtract(s12, cv2.multiply(mu1, mu2), dst=s12)  # σ12
    cv2.subtract(s1, cv2.multiply(mu1, mu1, dst=mu1), dst=s1)  # σ1²
    cv2.subtract(s2, cv2.multiply(mu2, mu2, dst=mu2), dst=s2)  # σ2²
    # A flat reference window (σ1² below the threshold) carries no information, and the
    # gain g = σ12/σ1² counts only where it is positive and the distorted window varies.
    cv2.threshold(s1, VIF_VAR_EPS, 0.0, cv2.THRESH_TOZERO, dst=s1)
    np.maximum(s12, np.float32(0.0), out=s12)
    np.copyto(s12, np.float32(0.0), where=(s1 <= 0.0) | (s2 < VIF_VAR_EPS))
    cv2.multiply(s12, s12, dst=s12)
    gain = cv2.divide(s12, np.maximum(s1, np.float32(1e-10)), dst=s12)  # g² σ1² = σ12²/σ1²
    s2 += np.float32(VIF_NOISE_VAR)  # σ2² + σn²
    num = cv2.sumElems(cv2.log(s2, dst=mu1))[0]
    residual = cv2.subtract(s2, gain, dst=gain)  # σv² + σn² = σ2² - g² σ1² + σn²
    num -= cv2.sumElems(cv2.log(residual, dst=residual))[0]
    s1 *= np.float32(1.0 / VIF_NOISE_VAR)
    s1 += np.float32(1.0)  # exactly 1, so exactly 0 after the log, in flat windows
    den = cv2.sumElems(cv2.log(s1, dst=s1))[0]  # Σ ln(1 + σ1²/σn²)
    return num, den


def _vif_scale_sums(p: CentredProducts, n: int, sigma: float) -> tuple[float, float]:
    """(numerator, denominator) sums (natural log) of one VIF scale.

    The window statistics come from OpenCV Gaussian filters over the whole image; the
    element-wise rest runs in-place on row strips (see ``row_strips``).
    """
    moments = [
        _valid(cv2.GaussianBlur(image, (n, n), sigma), n) for image in (p.x, p.y, p.xx, p.yy, p.xy)
    ]
    num = den = 0.0
    for rows in row_strips(*moments[0].shape):
        strip_num, strip_den = _vif_strip(*(m[rows] for m in moments))
        num += strip_num
        den += strip_den
    return num, den


def _downsample(image: np.ndarray, n: int, sigma: float) -> np.ndarray:
    """Low-pass with the N x N window, keep the valid part, take every other pixel."""
    return np.ascontiguousarray(_valid(cv2.GaussianBlur(image, (n, n), sigma), n)[::2, ::2])


def vif_from_products(p: CentredProducts) -> float:
    num = den = 0.0
    for scale in range(1, VIF_SCALES + 1):
        n, sigma = _vif_window(scale)
        if scale > 1:
            x, y = _downsample(p.x, n, sigma), _downsample(p.y, n, sigma)
            p = CentredProducts(p.centre, x, y, x * x, y * y, x * y)
        if min(p.x.shape) < n:  # too small for this window: coarser scales neither
            break
        scale_num, scale_den = _vif_scale_sums(p, n, sigma)
        num += scale_num
        den += scale_den
    if den <= 0.0:  # flat image: nothing to lose, the value of identical images
        return 1.0
    return num / den


def visual_information_fidelity(reference: np.ndarray, distorted: np.ndarray) -> float:
    """Multi-scale pixel-domain VIF (Sheikh & Bovik 2006), 4 scales, σn² = 2.

    1 for identical images (also for a flat image, where it is 0/0); lower when the
    distorted image loses information. Windows and sub-sampling follow the authors'
    ``vifvec``/``vifp_mscale`` reference code ('valid' filtering); computed in float32
    with a flat-window threshold of 0.05 grey levels². Images smaller than a scale's
    window skip that scale and the coarser ones.
    """
    ref, dist = as_float_pair(reference, distorted)
    return vif_from_products(centred_products(ref, dist))


# --------------------------------------------------------------------------- RRED
def haar_horizontal_detail(grey: np.ndarray) -> np.ndarray:
    """The level-1 orthonormal Haar horizontal-detail sub-band, shape (1, H // 2, W // 2).

    ``(a + b - c - d) / 2`` over each 2x2 block [[a, b], [c, d]]: the ``cH`` of
    ``pywt.dwt2(grey, 'haar')`` (up to sign) on the even-sized top-left part of the
    image, by plain array arithmetic (several times faster than PyWavelets here).
    """
    h, w = grey.shape[0] // 2 * 2, grey.shape[1] // 2 * 2
    pairs = grey[:h, :w].reshape(h, w // 2, 2)  # horizontal neighbours
    row_sum = (pairs[..., 0] + pairs[..., 1]).reshape(h // 2, 2, w // 2)
    band = np.subtract(row_sum[:, 0], row_sum[:, 1])[None]  # (a + b) - (c + d)
    band *= np.float32(0.5)
    return band


def _blocks(bands: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping size x size blocks of each sub-band, as columns: (bands, size², blocks)."""
    count, h, w = bands.shape
    h, w = h // size * size, w // size * size
    blocks = bands[:, :h, :w].reshape(count, h // size, size, w // size, size)
    return blocks.transpose(0, 2, 4, 1, 3).reshape(count, size * size, -1)


def scaled_entropies(bands: np.ndarray, *, block: int = RRED_BLOCK) -> np.ndarray:
    """γ·h of every block of each sub-band under its GSM model (Soundararajan & Bovik 2012).

    ``bands`` is a (B, h, w) stack; returns (B, blocks). K_U is the zero-mean
    covariance of a band's blocks (wavelet details have zero mean); only its positive
    eigen-directions count, so a flat band gives zeros.
    """
    y = _blocks(np.asarray(bands, dtype=np.float32), block)
    if y.shape[2] == 0:
        return np.zeros((y.shape[0], 0))
    cov = (y @ y.transpose(0, 2, 1)).astype(np.float64) / y.shape[2]
    lam, vec = np.linalg.eigh(cov)  # ascending eigenvalues per band
    keep = lam > 1e-8 * np.maximum(lam[:, -1:], 0.0)
    lam = np.where(keep, lam, 0.0)
    inverse = np.divide(1.0, lam, out=np.zeros_like(lam), where=keep)
    z = vec.transpose(0, 2, 1).astype(np.float32) @ y  # block coordinates in the eigenbasis
    z *= z
    s2 = (inverse[:, None, :].astype(np.float32) @ z)[:, 0, :]
    s2 *= np.float32(1.0 / (block * block))  # ML scale per block: cᵀ K⁻¹ c / N
    # h = ½ Σ_j log2(2πe (s² λ_j + σw²)) over the kept λ_j (a dropped one adds log2(1) = 0),
    # as logs of products of three factors (each below ~1e12, so float32 cannot overflow)
    lam32 = lam.astype(np.float32)
    noise = np.where(keep, RRED_NOISE_VAR, 1.0).astype(np.float32)
    log_sum = np.zeros_like(s2)
    for group in range(0, lam.shape[1], 3):
        product = np.ones_like(s2)
        for j in range(group, min(group + 3, lam.shape[1])):
            product *= s2 * lam32[:, j : j + 1] + noise[:, j : j + 1]
        log_sum += np.log2(product)
    entropy = 0.5 * (log_sum + keep.sum(axis=1, keepdims=True) * np.float32(_LOG2_2PIE))
    return (entropy * np.log2(np.float32(1.0) + s2)).astype(np.float64)


def rred_from_subbands(ref_bands: np.ndarray, dist_bands: np.ndarray) -> float:
    diff = np.abs(scaled_entropies(ref_bands) - scaled_entropies(dist_bands))
    return float(diff.mean()) if diff.size else 0.0


def reduced_reference_entropic_difference(reference: np.ndarray, distorted: np.ndarray) -> float:
    """RRED (Soundararajan & Bovik 2012) at its full-reference level, on a Haar sub-band.

    Mean over 3x3 blocks of |γ_I h_I - γ_Î h_Î| (see the module docstring for the GSM
    entropies). 0 for identical images, larger for more information loss. Like the
    authors' released code it uses one finest-scale oriented sub-band; here the level-1
    Haar horizontal-detail band instead of a steerable-pyramid band, and each image's
    own block covariance.
    """
    ref, dist = as_float_pair(reference, distorted)
    return rred_from_subbands(haar_horizontal_detail(ref), haar_horizontal_detail(dist))
