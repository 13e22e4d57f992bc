"""Spectral full-reference measures: SME and SPE.

Galbally, Marcel & Fierrez, IEEE TIP 23(2) 2014, Table I (after Nill, IEEE TCOM 1985,
and Avcibas et al., JEI 2002): the mean squared difference of the Fourier magnitudes
(SME) and of the Fourier phases (SPE) of I and Î.

The DFT is the unitary one (scaled by 1/sqrt(NM)), so by Parseval SME is in grey
levels², is independent of the image size and never exceeds the MSE; the paper's
unnormalised DFT only multiplies it by NM. A real image's spectrum is Hermitian, so
only the half spectrum (``scipy.fft.rfft2``, half the work of a full FFT) is computed
and the sums over the full spectrum are rebuilt by counting the mirrored columns twice.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
import scipy.fft

from workers.quality.measures._common import as_float_pair


class Spectrum(NamedTuple):
    """Half spectrum of one grey image of ``width`` columns (DFT unnormalised)."""

    half: np.ndarray  #: rfft2 of the image, complex64, shape (H, W // 2 + 1)
    magnitude: np.ndarray  #: |half|, float32
    width: int


def half_spectrum(grey: np.ndarray) -> Spectrum:
    """The rfft2 of a float32 grey image and its magnitude (one thread)."""
    half = scipy.fft.rfft2(grey, workers=1)
    return Spectrum(half, np.abs(half), grey.shape[1])


def full_magnitude(spectrum: Spectrum) -> np.ndarray:
    """|DFT| over the full, unshifted (H, W) grid, mirrored from the half spectrum.

    Column v > W/2 holds |F(-u mod H, W - v)| by Hermitian symmetry. This is the
    ``magnitude`` the no-reference HLFI takes, so the FFT is computed once per image.
    """
    mag = spectrum.magnitude
    height, width = mag.shape[0], spectrum.width
    full = np.empty((height, width), dtype=mag.dtype)
    full[:, : mag.shape[1]] = mag
    mirrored = mag[::-1, width - mag.shape[1] : 0 : -1]  # rows -u (shifted below), cols W - v
    full[:, mag.shape[1] :] = np.roll(mirrored, 1, axis=0)
    return full


def _hermitian_sum(values: np.ndarray, width: int) -> float:
    """Σ over the full spectrum of a per-frequency map given on the half spectrum."""
    total = 2.0 * cv2.sumElems(values)[0] - float(values[:, 0].sum(dtype=np.float64))
    if width % 2 == 0:  # the Nyquist column has no mirror image either
        total -= float(values[:, -1].sum(dtype=np.float64))
    return total


def sme_from_spectra(ref: Spectrum, dist: Spectrum) -> float:
    n = ref.magnitude.shape[0] * ref.width
    diff = cv2.subtract(ref.magnitude, dist.magnitude)
    return _hermitian_sum(diff * diff, ref.width) / (n * n)


def spe_from_spectra(ref: Spectrum, dist: Spectrum) -> float:
    n = ref.magnitude.shape[0] * ref.width
    phase = np.angle(ref.half * dist.half.conj())  # arg F - arg F̂, wrapped to [-π, π]
    return _hermitian_sum(phase * phase, ref.width) / n


def _spectrum_pair(reference: np.ndarray, distorted: np.ndarray) -> tuple[Spectrum, Spectrum]:
    ref, dist = as_float_pair(reference, distorted)
    return half_spectrum(ref), half_spectrum(dist)


def spectral_magnitude_error(reference: np.ndarray, distorted: np.ndarray) -> float:
    """SME = mean over frequencies of (|F| - |F̂|)², unitary 2-D DFT (Nill 1985; Avcibas 2002).

    0 for identical images and at most the pixel MSE (Parseval).
    """
    return sme_from_spectra(*_spectrum_pair(reference, distorted))


def spectral_phase_error(reference: np.ndarray, distorted: np.ndarray) -> float:
    """SPE = mean over frequencies of (arg F - arg F̂)², the difference wrapped to [-π, π].

    Nill 1985 / Avcibas et al. 2002 via Galbally et al. 2014. A frequency where either
    spectrum vanishes has an undefined phase and contributes 0.
    """
    return spe_from_spectra(*_spectrum_pair(reference, distorted))
