"""High-Low Frequency Index (HLFI).

Galbally, Marcel & Fierrez, IEEE TIP 23(2) 2014, Table I (after the iris focus
literature, e.g. Zhang & Blum): the sharpness of an image seen as the balance of
its Fourier magnitude between the low and the high frequencies,

    HLFI = (sum_low |F| - sum_high |F|) / sum_all |F|,

with the band limits at 0.15 of the sampling frequency on each axis
(i_l = i_h = 0.15 N, j_l = j_h = 0.15 M in the paper). The paper indexes an
unshifted DFT from the DC corner; we read its bands as frequency magnitudes, so both
signs of a frequency fall in the same band (|F| of a real image is symmetric):

* low band: |k_row| <= 0.15 N and |k_col| <= 0.15 M (DC included),
* high band: |k_row| > 0.15 N and |k_col| > 0.15 M,

where k is the signed DFT index (|k| <= N/2). The result lies in [-1, 1]; a blurred
image (energy concentrated at low frequencies) scores higher than a sharp one.
"""

from __future__ import annotations

import cv2
import numpy as np

BAND_FRACTION = 0.15


def _band_weights(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indicator vectors (float32) of the low and the high band along one axis of length n."""
    k = np.abs(np.fft.fftfreq(n, d=1.0 / n))  # |signed DFT index|
    low = k <= BAND_FRACTION * n
    return low.astype(np.float32), (~low).astype(np.float32)


def dft_magnitude(grey: np.ndarray) -> np.ndarray:
    """|unshifted 2-D DFT| of a grey image (float32), via OpenCV's FFT."""
    f = cv2.dft(np.asarray(grey, dtype=np.float32), flags=cv2.DFT_COMPLEX_OUTPUT)
    return cv2.magnitude(f[..., 0], f[..., 1])


def high_low_frequency_index(grey: np.ndarray, magnitude: np.ndarray | None = None) -> float:
    """HLFI of a grey image; ``magnitude`` = |unshifted DFT| of ``grey`` if already known."""
    if magnitude is None:
        magnitude = dft_magnitude(grey)
    mag = np.asarray(magnitude, dtype=np.float32)
    rows_low, rows_high = _band_weights(mag.shape[0])
    cols_low, cols_high = _band_weights(mag.shape[1])
    total = float(mag.sum(dtype=np.float64))
    if total <= 0.0:
        return 0.0
    low = float(np.dot(rows_low, mag @ cols_low))
    high = float(np.dot(rows_high, mag @ cols_high))
    return (low - high) / total


def high_low_frequency_index_from_half(half_magnitude: np.ndarray, width: int) -> float:
    """HLFI from |rfft2| (shape (H, W // 2 + 1)) of a grey image ``width`` columns wide.

    The same sums as :func:`high_low_frequency_index` on the full magnitude without
    building it: both bands are symmetric in the signed column index, so every column
    that has a mirror image in the other half counts twice (Hermitian symmetry
    |F(u, W - v)| = |F(-u, v)|, and the row bands are symmetric in u as well).
    """
    mag = np.asarray(half_magnitude, dtype=np.float32)
    rows_low, rows_high = _band_weights(mag.shape[0])
    cols_low, cols_high = _band_weights(width)
    twice = np.full(mag.shape[1], 2.0, dtype=np.float32)
    twice[0] = 1.0
    if width % 2 == 0:  # the Nyquist column has no mirror image either
        twice[-1] = 1.0
    cols_low, cols_high = cols_low[: mag.shape[1]] * twice, cols_high[: mag.shape[1]] * twice
    row_sums = mag @ twice
    total = float(row_sums.sum(dtype=np.float64))
    if total <= 0.0:
        return 0.0
    low = float(np.dot(rows_low, mag @ cols_low))
    high = float(np.dot(rows_high, mag @ cols_high))
    return (low - high) / total
