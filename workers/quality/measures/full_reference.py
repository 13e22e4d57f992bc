"""Full-reference image-quality measures of the W-IQA liveness test.

Galbally, Marcel & Fierrez, "Image Quality Assessment for Fake Biometric Detection",
IEEE TIP 23(2), 2014, Table I, compare an image I with a Gaussian-blurred copy Î: a
live face loses more detail to the blur than a printed or replayed one. This module
holds the pixel-difference measures (after Eskicioglu & Fisher, IEEE TCOM 1995, and
Avcibas, Sankur & Sayood, JEI 11(2) 2002) and re-exports the others, so all 21
full-reference measures import from one place:

========  ============================================  ===================
name      function                                      module
========  ============================================  ===================
MSE       :func:`mean_squared_error`                    here
PSNR      :func:`peak_signal_noise_ratio`               here
SNR       :func:`signal_noise_ratio`                    here
SC        :func:`structural_content`                    here
MD        :func:`maximum_difference`                    here
AD        :func:`average_difference`                    here
NAE       :func:`normalized_absolute_error`             here
RAMD      :func:`r_averaged_max_difference`             here
LMSE      :func:`laplacian_mean_squared_error`          here
NXC       :func:`normalized_cross_correlation`          here
MAMS      :func:`mean_angle_magnitude_similarity`       here
MAS       :func:`mean_angle_similarity`                 here
TED       :func:`total_edge_difference`                 ``gradient``
TCD       :func:`total_corner_difference`               ``gradient``
SME       :func:`spectral_magnitude_error`              ``spectral``
SPE       :func:`spectral_phase_error`                  ``spectral``
GME       :func:`gradient_magnitude_error`              ``gradient``
GPE       :func:`gradient_phase_error`                  ``gradient``
SSIM      :func:`structural_similarity`                 ``structural``
VIF       :func:`visual_information_fidelity`           ``information``
RRED      :func:`reduced_reference_entropic_difference` ``information``
========  ============================================  ===================

Every measure is a plain ``fn(reference, distorted) -> float`` on grey images
(MAS/MAMS: RGB) with values in 0..255, like ``skimage.metrics``. Each is a thin
wrapper over a lower-level helper that takes precomputed intermediates (sums,
gradients, spectra, ...); ``workers.quality.features`` computes those once per image
and calls the helpers, so the extractor and these functions share one code path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from workers.quality.measures._common import (
    DATA_RANGE,
    as_float32,
    as_float_pair,
    decibels,
    row_strips,
    safe_ratio,
)
from workers.quality.measures.gradient import (
    gradient_magnitude_error,
    gradient_phase_error,
    total_corner_difference,
    total_edge_difference,
)
from workers.quality.measures.information import (
    reduced_reference_entropic_difference,
    visual_information_fidelity,
)
from workers.quality.measures.spectral import spectral_magnitude_error, spectral_phase_error
from workers.quality.measures.structural import structural_similarity

__all__ = [
    "ColourSums",
    "PixelSums",
    "average_difference",
    "colour_sums",
    "colour_sums_of_blur",
    "gradient_magnitude_error",
    "gradient_phase_error",
    "laplacian_mean_squared_error",
    "lmse_from_images",
    "mams_from_sums",
    "mas_from_sums",
    "maximum_difference",
    "mean_angle_magnitude_similarity",
    "mean_angle_similarity",
    "mean_squared_error",
    "normalized_absolute_error",
    "normalized_cross_correlation",
    "peak_signal_noise_ratio",
    "pixel_sums",
    "r_averaged_max_difference",
    "ramd_from_abs_diff",
    "reduced_reference_entropic_difference",
    "signal_noise_ratio",
    "spectral_magnitude_error",
    "spectral_phase_error",
    "structural_content",
    "structural_similarity",
    "total_corner_difference",
    "total_edge_difference",
    "visual_information_fidelity",
]

#: R of the R-averaged maximum difference (Galbally et al. 2014 use R = 10).
RAMD_R = 10


# --------------------------------------------------------------------------- sums
@dataclass(frozen=True, slots=True)
class PixelSums:
    """Whole-image sums (float64) that the pixel-difference measures are ratios of."""

    n: int  #: number of pixels
    ref_sq: float  #: Σ I²
    dist_sq: float  #: Σ Î²
    diff_sq: float  #: Σ (I - Î)²
    abs_diff: float  #: Σ |I - Î|
    diff: float  #: Σ (I - Î)
    abs_ref: float  #: Σ |I|
    max_abs_diff: float  #: max |I - Î|

    @property
    def cross(self) -> float:
        """Σ I·Î, by the polarisation identity (the three squared norms are exact in float64)."""
        return 0.5 * (self.ref_sq + self.dist_sq - self.diff_sq)


def pixel_sums(ref: np.ndarray, dist: np.ndarray, abs_diff: np.ndarray | None = None) -> PixelSums:
    """The sums of :class:`PixelSums` for two float32 images of one shape (OpenCV, float64).

    ``abs_diff`` = |ref - dist| if already computed (RAMD needs it too).
    """
    if abs_diff is None:
        abs_diff = cv2.absdiff(ref, dist)
    ref_sum = cv2.sumElems(ref)[0]
    return PixelSums(
        n=ref.size,
        ref_sq=cv2.norm(ref, cv2.NORM_L2SQR),
        dist_sq=cv2.norm(dist, cv2.NORM_L2SQR),
        diff_sq=cv2.norm(abs_diff, cv2.NORM_L2SQR),
        abs_diff=cv2.sumElems(abs_diff)[0],
        diff=ref_sum - cv2.sumElems(dist)[0],
        abs_ref=cv2.norm(ref, cv2.NORM_L1),
        max_abs_diff=cv2.minMaxLoc(abs_diff)[1],
    )


def _sums(reference: np.ndarray, distorted: np.ndarray) -> PixelSums:
    return pixel_sums(*as_float_pair(reference, distorted))


# ----------------------------------------------------------- pixel-difference measures
def mse_from_sums(s: PixelSums) -> float:
    return s.diff_sq / s.n


def psnr_from_sums(s: PixelSums, data_range: float = DATA_RANGE) -> float:
    return decibels(data_range * data_range, s.diff_sq / s.n)


def snr_from_sums(s: PixelSums) -> float:
    return decibels(s.ref_sq, s.diff_sq)


def sc_from_sums(s: PixelSums) -> float:
    return safe_ratio(s.ref_sq, s.dist_sq, undefined=1.0)


def ad_from_sums(s: PixelSums) -> float:
    return s.diff / s.n


def nae_from_sums(s: PixelSums) -> float:
    return safe_ratio(s.abs_diff, s.abs_ref, undefined=0.0)


def nxc_from_sums(s: PixelSums) -> float:
    return safe_ratio(s.cross, s.ref_sq, undefined=1.0)


def mean_squared_error(reference: np.ndarray, distorted: np.ndarray) -> float:
    """MSE = mean (I - Î)² (Eskicioglu & Fisher 1995; Galbally et al. 2014, Table I)."""
    return mse_from_sums(_sums(reference, distorted))


def peak_signal_noise_ratio(
    reference: np.ndarray, distorted: np.ndarray, *, data_range: float = DATA_RANGE
) -> float:
    """PSNR = 10 log10(data_range² / MSE) in dB (Eskicioglu & Fisher 1995).

    As ``skimage.metrics.peak_signal_noise_ratio`` with ``data_range=255``, except that
    identical images (MSE = 0) give ``MAX_DB`` = 100 dB instead of inf.
    """
    return psnr_from_sums(_sums(reference, distorted), data_range)


def signal_noise_ratio(reference: np.ndarray, distorted: np.ndarray) -> float:
    """SNR = 10 log10(Σ I² / Σ (I - Î)²) in dB, clipped to ±100 dB (Galbally et al. 2014)."""
    return snr_from_sums(_sums(reference, distorted))


def structural_content(reference: np.ndarray, distorted: np.ndarray) -> float:
    """SC = Σ I² / Σ Î² (Eskicioglu & Fisher 1995); 1 when both images are black."""
    return sc_from_sums(_sums(reference, distorted))


def maximum_difference(reference: np.ndarray, distorted: np.ndarray) -> float:
    """MD = max |I - Î| (Eskicioglu & Fisher 1995), in grey levels."""
    return _sums(reference, distorted).max_abs_diff


def average_difference(reference: np.ndarray, distorted: np.ndarray) -> float:
    """AD = mean (I - Î), signed (Eskicioglu & Fisher 1995)."""
    return ad_from_sums(_sums(reference, distorted))


def normalized_absolute_error(reference: np.ndarray, distorted: np.ndarray) -> float:
    """NAE = Σ |I - Î| / Σ |I| (Eskicioglu & Fisher 1995); 0 for a black reference."""
    return nae_from_sums(_sums(reference, distorted))


def normalized_cross_correlation(reference: np.ndarray, distorted: np.ndarray) -> float:
    """NXC = Σ I·Î / Σ I² (Eskicioglu & Fisher 1995); 1 for a black reference."""
    return nxc_from_sums(_sums(reference, distorted))


def ramd_from_abs_diff(abs_diff: np.ndarray, r: int = RAMD_R) -> float:
    """Mean of the ``r`` largest values of ``abs_diff`` (2-D float32).

    Avoids partitioning the whole image: the r largest pixels lie in the columns whose
    maxima are among the r largest column maxima (r distinct pixels reach the r-th
    largest column maximum, so the r-th largest pixel is at least that large).
    """
    r = max(1, min(int(r), abs_diff.size))
    col_max = abs_diff.max(axis=0)
    if col_max.size > r:
        cut = np.partition(col_max, col_max.size - r)[col_max.size - r]
        candidates = abs_diff[:, col_max >= cut].ravel()
    else:
        candidates = abs_diff.ravel()
    top = np.partition(candidates, candidates.size - r)[candidates.size - r :]
    return float(top.astype(np.float64).mean())


def r_averaged_max_difference(
    reference: np.ndarray, distorted: np.ndarray, *, r: int = RAMD_R
) -> float:
    """RAMD = mean of the ``r`` largest |I - Î| (Avcibas et al. 2002; R = 10 in Galbally 2014)."""
    ref, dist = as_float_pair(reference, distorted)
    return ramd_from_abs_diff(cv2.absdiff(ref, dist), r)


def lmse_from_images(ref: np.ndarray, dist: np.ndarray) -> float:
    """LMSE from two float32 images (OpenCV sums the squares in float64)."""
    lap_ref = cv2.Laplacian(ref, cv2.CV_32F)
    lap_dist = cv2.Laplacian(dist, cv2.CV_32F)
    return safe_ratio(
        cv2.norm(lap_ref, lap_dist, cv2.NORM_L2SQR), cv2.norm(lap_ref, cv2.NORM_L2SQR), 0.0
    )


def laplacian_mean_squared_error(reference: np.ndarray, distorted: np.ndarray) -> float:
    """LMSE = Σ (h(I) - h(Î))² / Σ h(I)², h the 4-neighbour Laplacian (Avcibas et al. 2002).

    Borders are mirrored without repeating the edge pixel (OpenCV BORDER_REFLECT_101).
    0 when the reference has no curvature at all (flat or linear ramp).
    """
    return lmse_from_images(*as_float_pair(reference, distorted))


# ------------------------------------------------------------------- colour angles
def _planes(image: np.ndarray) -> np.ndarray:
    """(C, H, W) float32 planes of an HxWxC (or 2-D grey, C = 1) image."""
    a = np.asarray(image)
    if a.ndim == 2:
        return as_float32(a[None])
    if a.ndim == 3:
        return as_float32(a.transpose(2, 0, 1))
    raise ValueError(f"expected a 2-D grey or HxWxC colour image, got shape {a.shape}")


@dataclass(frozen=True, slots=True)
class ColourSums:
    """Whole-image sums over the pixels' colour vectors v (of I) and v̂ (of Î), float64."""

    n: int  #: number of pixels
    channels: int  #: 3 for RGB, 1 for grey
    angle: float  #: Σ ∠(v, v̂), radians
    distance: float  #: Σ ‖v - v̂‖, grey levels
    product: float  #: Σ ∠(v, v̂)·‖v - v̂‖


def _colour_strip(
    ref: Sequence[np.ndarray], dist: Sequence[np.ndarray]
) -> tuple[float, float, float]:
    """(Σ angle, Σ distance, Σ angle·distance) over one strip of R, G, B float32 planes."""
    r, g, b = ref
    rd, gd, bd = dist
    dot = cv2.multiply(r, rd)
    cv2.accumulateProduct(g, gd, dot)
    cv2.accumulateProduct(b, bd, dot)
    cx = cv2.multiply(b, gd, scale=-1.0)  # v × v̂, one fused multiply-add per term
    cv2.accumulateProduct(g, bd, cx)
    cy = cv2.multiply(r, bd, scale=-1.0)
    cv2.accumulateProduct(b, rd, cy)
    cz = cv2.multiply(g, rd, scale=-1.0)
    cv2.accumulateProduct(r, gd, cz)
    cv2.magnitude(cx, cy, cx)
    cv2.magnitude(cx, cz, cx)
    angle = np.arctan2(cx, dot, out=dot)
    distance = cv2.magnitude(cv2.subtract(r, rd), cv2.subtract(g, gd))
    cv2.magnitude(distance, cv2.subtract(b, bd, dst=cx), distance)
    return (
        cv2.sumElems(angle)[0],
        cv2.sumElems(distance)[0],
        cv2.sumElems(cv2.multiply(angle, distance, dst=cx))[0],
    )


def colour_sums(ref_planes: np.ndarray, dist_planes: np.ndarray) -> ColourSums:
    """The sums of :class:`ColourSums` for two images given as (C, H, W) float32 planes.

    The angle is ``atan2(‖v × v̂‖, v·v̂)``, accurate for the tiny angles a blur produces
    where the textbook ``acos`` of a float32 cosine is not; a black pixel (zero vector)
    has angle 0. With C = 1 (grey) the vectors are non-negative scalars: angle 0.
    """
    channels, height, width = ref_planes.shape
    if channels == 1:
        distance = cv2.norm(ref_planes[0], dist_planes[0], cv2.NORM_L1)
        return ColourSums(height * width, 1, 0.0, distance, 0.0)
    if channels != 3:
        raise ValueError(f"expected 1 or 3 channels, got {channels}")
    totals = np.zeros(3)
    for rows in row_strips(height, width):
        totals += _colour_strip(ref_planes[:, rows], dist_planes[:, rows])
    return ColourSums(height * width, 3, *totals.tolist())


def colour_sums_of_blur(rgb: np.ndarray, ksize: int = 5) -> ColourSums:
    """:func:`colour_sums` of an RGB uint8 image and its ``GaussianBlur(ksize, sigma 0)``.

    The extractor's path: each strip of rows is converted to float and blurred (with
    the 2 rows around it it needs) just before the strip's colour sums, so the six
    float32 planes are never written out whole (about 0.5 ms less per 640x480 image).
    """
    height, width = rgb.shape[:2]
    halo = ksize // 2
    kernel = cv2.getGaussianKernel(ksize, 0, cv2.CV_32F)  # GaussianBlur's kernel
    totals = np.zeros(3)
    for rows in row_strips(height, width):
        top, bottom = max(0, rows.start - halo), min(height, rows.stop + halo)
        inner = slice(rows.start - top, rows.stop - top)
        channels = cv2.split(rgb[top:bottom])
        ref = [c[inner].astype(np.float32) for c in channels]
        dist = [cv2.sepFilter2D(c, cv2.CV_32F, kernel, kernel)[inner] for c in channels]
        totals += _colour_strip(ref, dist)
    return ColourSums(height * width, 3, *totals.tolist())


def mas_from_sums(s: ColourSums) -> float:
    # α = (2/π) ∠
    return 1.0 - (2.0 / math.pi) * s.angle / s.n


def mams_from_sums(s: ColourSums) -> float:
    # mean(1 - (1 - α)(1 - δ)) = mean α + mean δ - mean αδ, with α = (2/π) ∠ and
    # δ = ‖v - v̂‖ / (255 √C), 255 √C being the largest possible distance
    a = 2.0 / math.pi
    d = 1.0 / (DATA_RANGE * math.sqrt(s.channels))
    return (a * s.angle + d * s.distance - a * d * s.product) / s.n


def _colour_pair(reference: np.ndarray, distorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, dist = _planes(reference), _planes(distorted)
    if ref.shape != dist.shape:
        raise ValueError(f"input images must have the same shape, got {ref.shape} and {dist.shape}")
    return ref, dist


def mean_angle_similarity(reference: np.ndarray, distorted: np.ndarray) -> float:
    """MAS = 1 - mean (2/π) ∠(v, v̂) over the pixels' colour vectors (Avcibas et al. 2002).

    Defined on pixel *vectors*: on grey scalars the angle is always 0 and MAS is the
    constant 1, so the W-IQA extractor feeds the RGB image and its blurred copy. A 2-D
    grey input is accepted and gives exactly 1.
    """
    return mas_from_sums(colour_sums(*_colour_pair(reference, distorted)))


def mean_angle_magnitude_similarity(reference: np.ndarray, distorted: np.ndarray) -> float:
    """MAMS = mean (1 - [1 - α][1 - ‖v - v̂‖ / (255√3)]) over RGB pixel vectors.

    Avcibas et al. 2002 as written in Galbally et al. 2014 (0 for identical images,
    despite the name), with α = (2/π) ∠(v, v̂) and the distance scaled to [0, 1] by the
    RGB cube diagonal as in Avcibas. Computed on the RGB image and its blurred copy;
    for a 2-D grey input α = 0 and it reduces to mean |I - Î| / 255.
    """
    return mams_from_sums(colour_sums(*_colour_pair(reference, distorted)))
