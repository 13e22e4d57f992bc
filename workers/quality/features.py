"""The 25 image-quality features of the W-IQA liveness test (Galbally et al. 2014).

Galbally, Marcel & Fierrez, "Image Quality Assessment for Fake Biometric Detection:
Application to Iris, Fingerprint, and 2D Face Recognition", IEEE TIP 23(2), 2014:
a grey image I is compared with its blurred copy Î = GaussianBlur(I, 5x5) by 21
full-reference measures, and 4 no-reference measures describe I alone.

Resolution: every image is first brought to about ``WORKING_PIXELS`` (640 x 480)
pixels with its aspect ratio kept (:func:`to_working_size`). The measures are
per-pixel statistics of a fixed 5x5 blur, so they depend on how many pixels the
scene spans; without this step a 1280 x 720 webcam frame looks "sharper" than any
640 x 480 training image. It also bounds the cost per image. A fixed pixel count
does mean a 16:9 frame is seen about 15% larger than a 4:3 frame of the same width.

Design (as ``skimage.metrics``): the measures are plain functions in
``workers.quality.measures``; :func:`extract_features` computes the shared
intermediates once (blurred copies, gradients, spectra, local moments, wavelet
band) and calls the measures' lower-level helpers. :func:`extract_features_timed`
is the same code path with a stopwatch, for ``bench/quality.py``. The first call
also tunes glibc's allocator for the process (:func:`retain_freed_memory`).
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
import time

import cv2
import numpy as np

from workers.quality.measures import full_reference as fr
from workers.quality.measures import gradient, hlfi, information, spectral, structural
from workers.quality.measures import no_reference as nr

FEATURE_NAMES: tuple[str, ...] = (
    "MSE", "PSNR", "SNR", "SC", "MD", "AD", "NAE", "RAMD", "LMSE", "NXC",
    "MAMS", "MAS", "TED", "TCD", "SME", "SPE", "GME", "GPE", "SSIM", "VIF",
    "RRED", "JQI", "HLFI", "BIQI", "NIQE",
)  # fmt: skip

#: Pixel count every image is resized to before measuring (aspect ratio kept; each side
#: then rounded to an FFT-friendly length, see :func:`working_shape`).
WORKING_PIXELS: int = 640 * 480
#: The distortion Galbally et al. apply: Gaussian blur, 5x5 kernel, sigma from the size.
BLUR_KSIZE = (5, 5)


def _is_fast_length(n: int) -> bool:
    """Even and with no prime factor above 7: quick for the FFT and halves for the DWT."""
    if n % 2:
        return False
    for p in (2, 3, 5, 7):
        while n % p == 0:
            n //= p
    return n == 1


def _nearest_fast_length(x: float) -> int:
    start = max(2, round(x))
    for step in range(start):  # nearest first; ties go to the smaller length
        for n in (start - step, start + step):
            if n >= 2 and _is_fast_length(n):
                return n
    return start  # not reached: every power of 2 is a fast length


def working_shape(height: int, width: int) -> tuple[int, int]:
    """(height, width) with about ``WORKING_PIXELS`` pixels and the same aspect ratio.

    Each side is rounded to the nearest even length without prime factors above 7
    (640 x 480 stays as it is): a 16:9 frame at exactly 307,200 pixels would be
    739 x 416, and 739 is prime, which makes the two FFTs 5x slower. The rounding moves
    the pixel count and the aspect ratio by about 2% at most.
    """
    scale = math.sqrt(WORKING_PIXELS / (height * width))
    return _nearest_fast_length(height * scale), _nearest_fast_length(width * scale)


def to_working_size(image: np.ndarray) -> np.ndarray:
    """``image`` resized to :func:`working_shape` (returned as is when already that size).

    Shrinking uses ``INTER_AREA`` (a box average, like a sensor with bigger pixels: it
    does not alias). Enlarging uses ``INTER_CUBIC``: unlike bilinear interpolation it
    has a continuous first derivative, so it adds no piecewise-linear creases for the
    Laplacian, gradient and corner measures to pick up, and it rings less than
    Lanczos. An enlarged image still lacks the detail of a true high-resolution one
    (it looks blurred to these measures), so inputs below the working size are
    comparable only among themselves; the intake's 64-pixel minimum bounds how far.
    """
    height, width = image.shape[:2]
    new_h, new_w = working_shape(height, width)
    if (new_h, new_w) == (height, width):
        return image
    enlarge = new_h * new_w > height * width
    interpolation = cv2.INTER_CUBIC if enlarge else cv2.INTER_AREA
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


@functools.cache
def retain_freed_memory() -> bool:
    """Stop glibc from handing freed image-sized buffers back to the OS (once per process).

    One extraction allocates a few dozen 1.2 MB float32 temporaries. With glibc's
    defaults each comes from fresh pages (mmap, or a heap that is trimmed again when
    they are freed), and faulting those pages in costs a quarter of the run time on
    the VM we measured (39 ms instead of 30 ms per 640x480 image). Serving blocks
    below 32 MB from a heap that is never trimmed below 256 MB makes later extractions
    reuse the same pages; the cost is that the process keeps its peak heap (tens of
    MB). Returns whether it applied (glibc only; a no-op elsewhere).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(
            libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
            and libc.mallopt(m_trim_threshold, 256 * 1024 * 1024)
        )
    except (OSError, AttributeError):
        return False


class _Laps:
    """Seconds since the previous lap, under a name (cheap enough to run always)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.ascontiguousarray(image)  # OpenCV wants rows in order (no flipped views)
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got dtype {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"expected an HxWx3 RGB or 2-D grey image, got shape {image.shape}")
    if min(image.shape[:2]) < 1:
        raise ValueError("empty image")
    return image


def _extract(image: np.ndarray, resize: bool) -> tuple[np.ndarray, dict[str, float]]:
    retain_freed_memory()
    lap = _Laps()
    image = _check_image(image)
    if resize:
        image = to_working_size(image)
    lap("resize")

    # I and Î: the grey image and its blurred copy
    colour = image.ndim == 3
    grey_u8 = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if colour else image
    ref = grey_u8.astype(np.float32)
    dist = cv2.GaussianBlur(ref, BLUR_KSIZE, 0)
    lap("preprocess")

    v: dict[str, float] = {}
    abs_diff = cv2.absdiff(ref, dist)
    sums = fr.pixel_sums(ref, dist, abs_diff)
    lap("pixel sums")
    v["MSE"] = fr.mse_from_sums(sums)
    lap("MSE")
    v["PSNR"] = fr.psnr_from_sums(sums)
    lap("PSNR")
    v["SNR"] = fr.snr_from_sums(sums)
    lap("SNR")
    v["SC"] = fr.sc_from_sums(sums)
    lap("SC")
    v["MD"] = sums.max_abs_diff
    lap("MD")
    v["AD"] = fr.ad_from_sums(sums)
    lap("AD")
    v["NAE"] = fr.nae_from_sums(sums)
    lap("NAE")
    v["RAMD"] = fr.ramd_from_abs_diff(abs_diff)
    lap("RAMD")
    v["LMSE"] = fr.lmse_from_images(ref, dist)
    lap("LMSE")
    v["NXC"] = fr.nxc_from_sums(sums)
    lap("NXC")

    if colour:  # MAS/MAMS compare the pixels' RGB vectors (see their docstrings)
        colour_stats = fr.colour_sums_of_blur(image, BLUR_KSIZE[0])
    else:
        colour_stats = fr.colour_sums(ref[None], dist[None])
    lap("colour angles")
    v["MAMS"] = fr.mams_from_sums(colour_stats)
    lap("MAMS")
    v["MAS"] = fr.mas_from_sums(colour_stats)
    lap("MAS")

    grad_ref, grad_dist = gradient.sobel_gradients(ref), gradient.sobel_gradients(dist)
    lap("gradients")
    v["TED"] = gradient.ted_from_gradients(grad_ref, grad_dist)
    lap("TED")
    v["TCD"] = gradient.tcd_from_gradients(grad_ref, grad_dist)
    lap("TCD")

    spec_ref, spec_dist = spectral.half_spectrum(ref), spectral.half_spectrum(dist)
    lap("spectra")
    v["SME"] = spectral.sme_from_spectra(spec_ref, spec_dist)
    lap("SME")
    v["SPE"] = spectral.spe_from_spectra(spec_ref, spec_dist)
    lap("SPE")

    v["GME"] = gradient.gme_from_gradients(grad_ref, grad_dist)
    lap("GME")
    v["GPE"] = gradient.gpe_from_gradients(grad_ref, grad_dist)
    lap("GPE")

    products = structural.centred_products(ref, dist)
    lap("moments")
    v["SSIM"] = structural.ssim_from_products(products)
    lap("SSIM")
    v["VIF"] = information.vif_from_products(products)
    lap("VIF")
    v["RRED"] = information.rred_from_subbands(
        information.haar_horizontal_detail(ref), information.haar_horizontal_detail(dist)
    )
    lap("RRED")

    v["JQI"] = nr.jpeg_quality_index(ref)
    lap("JQI")
    v["HLFI"] = hlfi.high_low_frequency_index_from_half(spec_ref.magnitude, spec_ref.width)
    lap("HLFI")
    v["BIQI"] = nr.blind_image_quality_index(ref)
    lap("BIQI")
    v["NIQE"] = nr.natural_image_quality_evaluator(ref)
    lap("NIQE")

    features = np.array([v[name] for name in FEATURE_NAMES], dtype=np.float64)
    if not np.all(np.isfinite(features)):  # a bug, never an input property: fail loudly
        bad = [n for n, x in zip(FEATURE_NAMES, features, strict=True) if not np.isfinite(x)]
        raise FloatingPointError(f"non-finite quality features: {bad}")
    return features, lap.seconds


def extract_features(image: np.ndarray, *, resize: bool = True) -> np.ndarray:
    """The 25 features (order of ``FEATURE_NAMES``) of an RGB uint8 HxWx3 or grey image.

    Any size: the image is first brought to the working size. ``resize=False`` skips
    that, for experiments only (features then depend on the input resolution).
    """
    return _extract(image, resize)[0]


def extract_features_timed(
    image: np.ndarray, *, resize: bool = True
) -> tuple[np.ndarray, dict[str, float]]:
    """:func:`extract_features` plus the seconds spent per step.

    The steps are the 25 measures (keys of ``FEATURE_NAMES``) and the shared
    intermediates they use: ``resize``, ``preprocess``, ``pixel sums``, ``colour
    angles``, ``gradients``, ``spectra``, ``moments``. HLFI reads the half spectrum
    that SME/SPE use (no full-size mirror).
    """
    return _extract(image, resize)
