"""Natural-scene-statistics building blocks shared by BIQI and NIQE.

Moment-matching estimators for the generalised Gaussian (GGD) and the asymmetric
generalised Gaussian (AGGD), as in Sharifi & Leon-Garcia (IEEE TCSVT 1995) and
Lasmar, Stitou & Berthoumieu (ICIP 2009), the estimators used by the reference
BRISQUE/NIQE/BIQI code. The reference code searches the shape on a grid
``0.2:0.001:10``; we precompute the same moment-ratio table once and invert it with
``np.interp`` (monotone), so no gamma function is evaluated per call, and every
estimator works on a batch of samples (one row each) at once.

All estimators return finite numbers for degenerate input (all zeros): the shape
saturates at the table's end and the scales are zero.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.special import gammaln

# Shape grid of the reference implementations.
_ALPHA = np.arange(0.2, 10.0 + 5e-4, 0.001)
# GGD moment ratio E[x^2] / E[|x|]^2 = G(1/a) G(3/a) / G(2/a)^2, decreasing in a.
_RHO = np.exp(gammaln(1 / _ALPHA) + gammaln(3 / _ALPHA) - 2 * gammaln(2 / _ALPHA))
_RHO_INC, _ALPHA_BY_RHO = _RHO[::-1].copy(), _ALPHA[::-1].copy()  # np.interp wants increasing x
# AGGD uses the reciprocal ratio E[|x|]^2 / E[x^2], increasing in a.
_R_AGGD = 1.0 / _RHO
# sqrt(G(1/a) / G(3/a)) turns a standard deviation into the AGGD scale beta.
_STD_TO_BETA = np.exp(0.5 * (gammaln(1 / _ALPHA) - gammaln(3 / _ALPHA)))
# G(2/a) / G(1/a) gives the AGGD mean from (beta_r - beta_l).
_MEAN_FACTOR = np.exp(gammaln(2 / _ALPHA) - gammaln(1 / _ALPHA))

_TINY = 1e-12

# NIQE/BRISQUE local normalisation: 7x7 Gaussian, sigma 7/6, C = 1 on a 0..255 scale.
MSCN_KSIZE = 7
MSCN_SIGMA = 7.0 / 6.0
MSCN_C = 1.0


def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two (n, m) arrays (BLAS; float64 result)."""
    return (a[:, None, :] @ b[:, :, None])[:, 0, 0].astype(np.float64)


def ggd_fit(x: np.ndarray, *, abs_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean GGD fit of each row of ``x`` (1-D input: one sample set).

    Returns ``(alpha, sigma_sq)``: the shape and the variance E[x^2].
    ``abs_out`` is an optional float32 scratch buffer shaped like the 2-D view of x.
    """
    x = np.asarray(x, dtype=np.float32)
    x2 = x.reshape(-1, x.shape[-1])
    n = x2.shape[1]
    mean_sq = _row_dot(x2, x2) / n
    mean_abs = (np.abs(x2, out=abs_out) @ np.ones(n, dtype=np.float32)).astype(np.float64) / n
    alpha, sigma_sq = ggd_from_moments(mean_sq, mean_abs)
    if x.ndim == 1:
        return alpha[0], sigma_sq[0]
    return alpha, sigma_sq


def ggd_from_moments(mean_sq: np.ndarray, mean_abs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GGD shape and variance from E[x^2] and E[|x|] (arrays of equal shape)."""
    mean_sq = np.asarray(mean_sq, dtype=np.float64)
    mean_abs = np.asarray(mean_abs, dtype=np.float64)
    rho = mean_sq / np.maximum(mean_abs * mean_abs, _TINY)
    alpha = np.interp(rho, _RHO_INC, _ALPHA_BY_RHO)
    return alpha, mean_sq


def aggd_fit(
    x: np.ndarray, *, abs_out: np.ndarray | None = None, mask_out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AGGD fit of each row of ``x`` (1-D input: one sample set).

    Returns ``(alpha, mean, beta_left, beta_right)`` with the parametrisation of
    Lasmar et al. / BRISQUE: mean = (beta_r - beta_l) G(2/a)/G(1/a).
    ``abs_out`` (float32) and ``mask_out`` (bool), shaped like the 2-D view of ``x``,
    are optional scratch buffers: fresh multi-megabyte allocations cost more than the
    maths. Per-side sums come from BLAS dot products with |x|, not masked copies.
    """
    x = np.asarray(x, dtype=np.float32)
    x2 = x.reshape(-1, x.shape[-1])
    n = x2.shape[1]
    absx = np.abs(x2, out=abs_out)
    sum_sq = _row_dot(x2, x2)
    signed_sq = _row_dot(x2, absx)  # sum x|x| = sum_pos x^2 - sum_neg x^2
    sum_abs = (absx @ np.ones(n, dtype=np.float32)).astype(np.float64)
    count_dtype = np.uint16 if n < 2**16 else np.uint64
    n_neg = np.add.reduce(np.less(x2, 0, out=mask_out).view(np.uint8), axis=1, dtype=count_dtype)
    n_pos = np.add.reduce(np.greater(x2, 0, out=mask_out).view(np.uint8), axis=1, dtype=count_dtype)
    out = aggd_from_moments(
        neg_sq=np.maximum(0.5 * (sum_sq - signed_sq), 0.0),
        pos_sq=np.maximum(0.5 * (sum_sq + signed_sq), 0.0),
        n_neg=n_neg,
        n_pos=n_pos,
        sum_abs=sum_abs,
        n=n,
    )
    if x.ndim == 1:
        return tuple(v[0] for v in out)  # type: ignore[return-value]
    return out


def aggd_from_moments(
    neg_sq: np.ndarray,
    pos_sq: np.ndarray,
    n_neg: np.ndarray,
    n_pos: np.ndarray,
    sum_abs: np.ndarray,
    n: int | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AGGD parameters from per-side sums of squares/counts and the sum of |x|."""
    left_std = np.sqrt(neg_sq / np.maximum(n_neg, 1.0))
    right_std = np.sqrt(pos_sq / np.maximum(n_pos, 1.0))
    gamma_hat = (left_std + _TINY) / (right_std + _TINY)
    mean_sq = (neg_sq + pos_sq) / n
    mean_abs = sum_abs / n
    r_hat = mean_abs * mean_abs / np.maximum(mean_sq, _TINY)
    g2 = gamma_hat * gamma_hat
    r_norm = r_hat * (g2 * gamma_hat + 1) * (gamma_hat + 1) / ((g2 + 1) ** 2)
    alpha = np.interp(r_norm, _R_AGGD, _ALPHA)
    to_beta = np.interp(alpha, _ALPHA, _STD_TO_BETA)
    beta_l = left_std * to_beta
    beta_r = right_std * to_beta
    mean = (beta_r - beta_l) * np.interp(alpha, _ALPHA, _MEAN_FACTOR)
    return alpha, mean, beta_l, beta_r


def mscn(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients and the local std map.

    Ruderman's divisive normalisation as used by BRISQUE/NIQE:
    (I - mu) / (sigma + C), mu and sigma Gaussian-weighted (7x7, sigma 7/6),
    C = 1 for a 0..255 image. Written with in-place OpenCV calls: three image
    buffers in all.
    """
    x = np.ascontiguousarray(grey, dtype=np.float32)
    k = (MSCN_KSIZE, MSCN_KSIZE)
    border = cv2.BORDER_REPLICATE
    mu = cv2.GaussianBlur(x, k, MSCN_SIGMA, borderType=border)
    var = cv2.multiply(x, x)
    cv2.GaussianBlur(var, k, MSCN_SIGMA, dst=var, borderType=border)
    tmp = cv2.multiply(mu, mu)
    cv2.subtract(var, tmp, dst=var)
    np.abs(var, out=var)  # rounding can make a flat region slightly negative
    sigma = cv2.sqrt(var, dst=var)
    cv2.add(sigma, MSCN_C, dst=tmp)
    coeffs = cv2.subtract(x, mu, dst=mu)
    cv2.divide(coeffs, tmp, dst=coeffs)
    return coeffs, sigma


def pad_to_min_size(grey: np.ndarray, min_size: int) -> np.ndarray:
    """Replicate borders so both sides are at least ``min_size`` (tiny inputs only)."""
    h, w = grey.shape
    if h >= min_size and w >= min_size:
        return grey
    dh, dw = max(0, min_size - h), max(0, min_size - w)
    return cv2.copyMakeBorder(
        grey, dh // 2, dh - dh // 2, dw // 2, dw - dw // 2, cv2.BORDER_REPLICATE
    )
