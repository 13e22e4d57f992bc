"""The 21 full-reference measures of the W-IQA test, each against an independent reference.

scikit-image where it has the measure (MSE, PSNR, SSIM, NRMSE), NumPy/SciPy
re-implementations of the textbook formulas in float64 elsewhere, and closed-form
values on synthetic images. Images are small so the file runs in a few seconds.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import pywt
from scipy import ndimage
from skimage import data, metrics

from workers.quality.measures import full_reference as fr
from workers.quality.measures import gradient, information, spectral
from workers.quality.measures._common import MAX_DB

GREY_MEASURES = [
    fr.mean_squared_error,
    fr.peak_signal_noise_ratio,
    fr.signal_noise_ratio,
    fr.structural_content,
    fr.maximum_difference,
    fr.average_difference,
    fr.normalized_absolute_error,
    fr.r_averaged_max_difference,
    fr.laplacian_mean_squared_error,
    fr.normalized_cross_correlation,
    fr.total_edge_difference,
    fr.total_corner_difference,
    fr.spectral_magnitude_error,
    fr.spectral_phase_error,
    fr.gradient_magnitude_error,
    fr.gradient_phase_error,
    fr.structural_similarity,
    fr.visual_information_fidelity,
    fr.reduced_reference_entropic_difference,
]
COLOUR_MEASURES = [fr.mean_angle_magnitude_similarity, fr.mean_angle_similarity]
#: The value each measure takes for two identical images.
IDENTICAL = {
    "mean_squared_error": 0.0,
    "peak_signal_noise_ratio": MAX_DB,
    "signal_noise_ratio": MAX_DB,
    "structural_content": 1.0,
    "maximum_difference": 0.0,
    "average_difference": 0.0,
    "normalized_absolute_error": 0.0,
    "r_averaged_max_difference": 0.0,
    "laplacian_mean_squared_error": 0.0,
    "normalized_cross_correlation": 1.0,
    "total_edge_difference": 0.0,
    "total_corner_difference": 0.0,
    "spectral_magnitude_error": 0.0,
    "spectral_phase_error": 0.0,
    "gradient_magnitude_error": 0.0,
    "gradient_phase_error": 0.0,
    "structural_similarity": 1.0,
    "visual_information_fidelity": 1.0,
    "reduced_reference_entropic_difference": 0.0,
    "mean_angle_magnitude_similarity": 0.0,
    "mean_angle_similarity": 1.0,
}


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return cv2.resize(data.astronaut(), (200, 160), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def ref(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


@pytest.fixture(scope="module")
def blurred(ref: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(ref, (5, 5), 0)


@pytest.fixture(scope="module")
def noisy(ref: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.clip(ref + rng.normal(0.0, 12.0, ref.shape), 0, 255).astype(np.float32)


def f64(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64)


# ------------------------------------------------------------------ identities and edge cases
@pytest.mark.parametrize("measure", GREY_MEASURES + COLOUR_MEASURES, ids=lambda f: f.__name__)
def test_identical_images_give_the_identity_value(measure, ref, rgb):
    image = rgb if measure in COLOUR_MEASURES else ref
    assert measure(image, image) == pytest.approx(IDENTICAL[measure.__name__], abs=1e-5)


@pytest.mark.parametrize("measure", GREY_MEASURES + COLOUR_MEASURES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(48, 64), (7, 5), (2, 3), (1, 1)])
@pytest.mark.parametrize("level", [0.0, 128.0, 255.0])
def test_constant_and_tiny_images_give_finite_identity_values(measure, shape, level):
    full = (*shape, 3) if measure in COLOUR_MEASURES else shape
    image = np.full(full, level, dtype=np.float32)
    value = measure(image, image.copy())
    assert math.isfinite(value)
    assert value == pytest.approx(IDENTICAL[measure.__name__], abs=1e-6)


@pytest.mark.parametrize("measure", GREY_MEASURES + COLOUR_MEASURES, ids=lambda f: f.__name__)
def test_distinct_constant_and_tiny_pairs_are_finite(measure):
    for shape in [(1, 1), (3, 4), (16, 16)]:
        full = (*shape, 3) if measure in COLOUR_MEASURES else shape
        rng = np.random.default_rng(0)
        pairs = [
            (np.zeros(full), np.full(full, 255.0)),
            (np.full(full, 255.0), np.zeros(full)),
            (rng.uniform(0, 255, full), rng.uniform(0, 255, full)),
        ]
        for a, b in pairs:
            assert math.isfinite(measure(a, b))


@pytest.mark.parametrize("measure", GREY_MEASURES, ids=lambda f: f.__name__)
def test_mismatched_shapes_are_refused(measure):
    with pytest.raises(ValueError):
        measure(np.zeros((8, 8)), np.zeros((8, 9)))


# ------------------------------------------------------------------ scikit-image references
@pytest.mark.parametrize("other", ["blurred", "noisy"])
def test_mse_psnr_ssim_match_skimage(other, ref, request):
    dist = request.getfixturevalue(other)
    r, d = f64(ref), f64(dist)
    assert fr.mean_squared_error(ref, dist) == pytest.approx(
        metrics.mean_squared_error(r, d), rel=1e-9
    )
    assert fr.peak_signal_noise_ratio(ref, dist) == pytest.approx(
        metrics.peak_signal_noise_ratio(r, d, data_range=255), rel=1e-9
    )
    expected = metrics.structural_similarity(
        r, d, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert fr.structural_similarity(ref, dist) == pytest.approx(expected, abs=2e-5)


def test_psnr_of_identical_images_is_capped_not_infinite(ref):
    assert fr.peak_signal_noise_ratio(ref, ref) == MAX_DB
    expected = 10 * math.log10(255**2 / 0.01)  # MSE 0.01, up to float32 rounding
    assert fr.peak_signal_noise_ratio(ref, ref + 0.1) == pytest.approx(expected, rel=1e-4)


def test_snr_is_minus_20_log_of_the_euclidean_nrmse(ref, noisy):
    nrmse = metrics.normalized_root_mse(f64(ref), f64(noisy), normalization="euclidean")
    assert fr.signal_noise_ratio(ref, noisy) == pytest.approx(-20 * math.log10(nrmse), rel=1e-9)


def test_ssim_orders_distortions(ref, blurred):
    strong = cv2.GaussianBlur(ref, (9, 9), 3)
    assert 1.0 > fr.structural_similarity(ref, blurred) > fr.structural_similarity(ref, strong)


# ------------------------------------------------------------------ closed forms
def test_pixel_measures_of_two_constant_images():
    a, b = np.full((20, 30), 100.0), np.full((20, 30), 93.0)
    assert fr.maximum_difference(a, b) == 7.0
    assert fr.average_difference(a, b) == pytest.approx(7.0)
    assert fr.average_difference(b, a) == pytest.approx(-7.0)
    assert fr.normalized_absolute_error(a, b) == pytest.approx(0.07)
    assert fr.mean_squared_error(a, b) == pytest.approx(49.0)
    assert fr.structural_content(a, b) == pytest.approx(100**2 / 93**2)
    assert fr.normalized_cross_correlation(a, b) == pytest.approx(0.93)
    assert fr.r_averaged_max_difference(a, b) == pytest.approx(7.0)


def test_md_does_not_wrap_like_uint8_arithmetic():
    a = np.zeros((4, 4), np.uint8)
    b = np.full((4, 4), 3, np.uint8)  # uint8 a - b would be 253
    assert fr.maximum_difference(a, b) == 3.0
    assert fr.average_difference(a, b) == -3.0


def test_scaling_closed_forms(ref):
    assert fr.structural_content(ref, 2 * ref) == pytest.approx(0.25, rel=1e-6)
    assert fr.normalized_cross_correlation(ref, 2 * ref) == pytest.approx(2.0, rel=1e-6)
    # h(I) - h(2I) = -h(I); and a constant offset has no Laplacian
    assert fr.laplacian_mean_squared_error(ref, 2 * ref) == pytest.approx(1.0, rel=1e-6)
    assert fr.laplacian_mean_squared_error(ref, ref + 10) == pytest.approx(0.0, abs=1e-9)


def test_ramd_averages_the_r_largest_differences():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 50, (60, 80))
    b = a.copy()
    bumps = [90.0, 80.0, 70.0, 60.0, 55.0, 52.0, 51.0, 50.5, 50.2, 50.1, 50.05, 49.9]
    spots = rng.choice(a.size, len(bumps), replace=False)
    b.flat[spots] += bumps  # every other difference is 0
    assert fr.r_averaged_max_difference(a, b) == pytest.approx(np.mean(bumps[:10]), rel=1e-5)
    assert fr.r_averaged_max_difference(a, b, r=1) == pytest.approx(90.0, rel=1e-5)
    assert fr.r_averaged_max_difference(np.zeros((2, 2)), np.ones((2, 2))) == 1.0  # r > size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ramd_matches_a_full_sort(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 255, (2, 37, 53))
    expected = np.sort(np.abs(a - b).ravel())[-10:].mean()
    assert fr.r_averaged_max_difference(a, b) == pytest.approx(expected, rel=1e-5)


def test_lmse_matches_scipy_laplacian(ref, blurred):
    lap_r = ndimage.laplace(f64(ref), mode="mirror")  # mirror = OpenCV's BORDER_REFLECT_101
    lap_d = ndimage.laplace(f64(blurred), mode="mirror")
    expected = np.sum((lap_r - lap_d) ** 2) / np.sum(lap_r**2)
    assert fr.laplacian_mean_squared_error(ref, blurred) == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------ colour angles
def test_mas_mams_of_known_angles():
    red = np.zeros((4, 5, 3))
    red[..., 0] = 255
    green = np.zeros((4, 5, 3))
    green[..., 1] = 255
    assert fr.mean_angle_similarity(red, green) == pytest.approx(0.0, abs=1e-6)  # 90 degrees
    assert fr.mean_angle_magnitude_similarity(red, green) == pytest.approx(1.0, abs=1e-6)
    # same direction, half the length: angle 0, distance |v|/2
    grey_ish = np.full((4, 5, 3), 200.0)
    half = grey_ish / 2
    assert fr.mean_angle_similarity(grey_ish, half) == pytest.approx(1.0, abs=1e-6)
    expected = math.sqrt(3) * 100 / (255 * math.sqrt(3))
    assert fr.mean_angle_magnitude_similarity(grey_ish, half) == pytest.approx(expected, rel=1e-6)


def test_mas_mams_match_float64_arccos(rgb):
    ref = rgb.astype(np.float64)
    dist = cv2.GaussianBlur(rgb.astype(np.float32), (5, 5), 0).astype(np.float64)
    norms = np.linalg.norm(ref, axis=2) * np.linalg.norm(dist, axis=2)
    cos = np.divide((ref * dist).sum(axis=2), norms, out=np.ones_like(norms), where=norms > 0)
    alpha = 2 / np.pi * np.arccos(np.clip(cos, -1, 1))
    delta = np.linalg.norm(ref - dist, axis=2) / (255 * math.sqrt(3))
    assert fr.mean_angle_similarity(rgb, dist) == pytest.approx(1 - alpha.mean(), abs=1e-7)
    assert fr.mean_angle_magnitude_similarity(rgb, dist) == pytest.approx(
        np.mean(1 - (1 - alpha) * (1 - delta)), rel=1e-5
    )


def test_mas_mams_fall_back_on_grey(ref, blurred):
    assert fr.mean_angle_similarity(ref, blurred) == 1.0
    expected = np.abs(f64(ref) - f64(blurred)).mean() / 255
    assert fr.mean_angle_magnitude_similarity(ref, blurred) == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------ spectra
def _fft_reference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    fa, fb = np.fft.fft2(f64(a)), np.fft.fft2(f64(b))
    sme = np.mean((np.abs(fa) - np.abs(fb)) ** 2) / a.size  # unitary DFT
    spe = np.mean(np.angle(fa * np.conj(fb)) ** 2)
    return sme, spe


@pytest.mark.parametrize("shape", [(48, 64), (49, 63), (7, 5), (6, 1), (1, 6)])
def test_sme_spe_match_a_full_numpy_fft(shape):
    rng = np.random.default_rng(sum(shape))
    a, b = rng.uniform(0, 255, (2, *shape)).astype(np.float32)
    sme, spe = _fft_reference(a, b)
    assert fr.spectral_magnitude_error(a, b) == pytest.approx(sme, rel=1e-5)
    assert fr.spectral_phase_error(a, b) == pytest.approx(spe, rel=1e-5)


def test_sme_spe_of_a_blurred_image(ref, blurred):
    sme, spe = _fft_reference(ref, blurred)
    assert fr.spectral_magnitude_error(ref, blurred) == pytest.approx(sme, rel=1e-5)
    assert fr.spectral_phase_error(ref, blurred) == pytest.approx(spe, rel=1e-4)
    # Parseval: the magnitude error never exceeds the pixel MSE
    assert 0 < fr.spectral_magnitude_error(ref, blurred) <= fr.mean_squared_error(ref, blurred)


def test_phase_of_a_negated_image_is_pi_off():
    rng = np.random.default_rng(5)
    a = rng.normal(0, 1, (16, 20)).astype(np.float32)
    assert fr.spectral_phase_error(a, -a) == pytest.approx(math.pi**2, rel=1e-5)
    assert fr.spectral_magnitude_error(a, -a) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("shape", [(48, 64), (49, 63), (7, 5), (5, 1), (1, 5)])
def test_full_magnitude_mirrors_the_half_spectrum(shape):
    x = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    full = spectral.full_magnitude(spectral.half_spectrum(x))
    assert full.shape == shape
    np.testing.assert_allclose(full, np.abs(np.fft.fft2(f64(x))), rtol=1e-4, atol=1e-2)


# ------------------------------------------------------------------ gradients
def _sobel(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = f64(image)
    return ndimage.sobel(x, axis=1, mode="mirror") / 8, ndimage.sobel(x, axis=0, mode="mirror") / 8


def test_gme_gpe_match_scipy_sobel():
    rng = np.random.default_rng(7)  # noise: no zero gradients, so no undefined phases
    a = rng.uniform(0, 255, (40, 50)).astype(np.float32)
    b = cv2.GaussianBlur(a, (5, 5), 0)
    (ax, ay), (bx, by) = _sobel(a), _sobel(b)
    gme = np.mean((np.hypot(ax, ay) - np.hypot(bx, by)) ** 2)
    wrapped = np.angle(np.exp(1j * (np.arctan2(ay, ax) - np.arctan2(by, bx))))
    assert fr.gradient_magnitude_error(a, b) == pytest.approx(gme, rel=1e-5)
    assert fr.gradient_phase_error(a, b) == pytest.approx(np.mean(wrapped**2), rel=1e-4)


def test_gpe_of_an_inverted_image_is_pi_squared():
    rng = np.random.default_rng(8)
    a = rng.uniform(0, 255, (30, 40)).astype(np.float32)
    # π everywhere but at the 4 corners, where the mirrored border zeroes both derivatives
    expected = math.pi**2 * (a.size - 4) / a.size
    assert fr.gradient_phase_error(a, 255 - a) == pytest.approx(expected, rel=1e-6)
    assert fr.gradient_magnitude_error(a, 255 - a) == pytest.approx(0.0, abs=1e-6)


def _edges_reference(image: np.ndarray) -> np.ndarray:
    gx, gy = _sobel(image)
    m2 = gx**2 + gy**2
    return m2 > 4 * m2.mean()


def test_ted_matches_matlab_style_sobel_edges():
    step = np.zeros((32, 40), np.float32)
    step[:, 20:] = 255
    smooth = cv2.GaussianBlur(step, (5, 5), 0)
    assert _edges_reference(step).sum() == 2 * 32  # the two columns beside the step
    expected = np.mean(_edges_reference(step) != _edges_reference(smooth))
    assert fr.total_edge_difference(step, smooth) == pytest.approx(expected)
    assert fr.total_edge_difference(step, np.zeros_like(step)) == pytest.approx(64 / step.size)


def _squares(*corners: tuple[int, int]) -> np.ndarray:
    image = np.zeros((80, 80), np.float32)
    for y, x in corners:
        image[y : y + 20, x : x + 20] = 255
    return image


def test_harris_counts_the_corners_of_squares():
    assert gradient.harris_corner_count(gradient.sobel_gradients(_squares((30, 30)))) == 4
    two = _squares((10, 10), (45, 45))
    assert gradient.harris_corner_count(gradient.sobel_gradients(two)) == 8
    edge = np.zeros((40, 40), np.float32)
    edge[:, 20:] = 255  # a straight edge has no corner
    assert gradient.harris_corner_count(gradient.sobel_gradients(edge)) == 0


def test_tcd_closed_forms():
    one, two = _squares((30, 30)), _squares((10, 10), (45, 45))
    flat = np.zeros_like(one)
    assert fr.total_corner_difference(one, flat) == 1.0  # |4 - 0| / 4
    assert fr.total_corner_difference(two, one) == 0.5  # |8 - 4| / 8
    assert fr.total_corner_difference(flat, flat) == 0.0


# ------------------------------------------------------------------ VIF
def _vifp_reference(ref: np.ndarray, dist: np.ndarray) -> float:
    """Sheikh's vifp_mscale, transcribed literally in float64 with SciPy."""
    ref, dist = f64(ref), f64(dist)
    sigma_nsq, eps, num, den = 2.0, 1e-10, 0.0, 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        x = np.arange(n) - (n - 1) / 2
        g = np.exp(-(x**2) / (2 * (n / 5.0) ** 2))
        win = np.outer(g, g) / np.outer(g, g).sum()
        r = (n - 1) // 2

        def valid(a, win=win, r=r):
            return ndimage.correlate(a, win, mode="mirror")[r : a.shape[0] - r, r : a.shape[1] - r]

        if scale > 1:
            ref, dist = valid(ref)[::2, ::2], valid(dist)[::2, ::2]
        mu1, mu2 = valid(ref), valid(dist)
        s1 = valid(ref * ref) - mu1**2
        s2 = valid(dist * dist) - mu2**2
        s12 = valid(ref * dist) - mu1 * mu2
        s1[s1 < 0] = 0
        s2[s2 < 0] = 0
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        g[s1 < eps] = 0
        sv[s1 < eps] = s2[s1 < eps]
        s1[s1 < eps] = 0
        g[s2 < eps] = 0
        sv[s2 < eps] = 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= eps] = eps
        num += np.sum(np.log10(1 + g * g * s1 / (sv + sigma_nsq)))
        den += np.sum(np.log10(1 + s1 / sigma_nsq))
    return num / den


@pytest.mark.parametrize("other", ["blurred", "noisy"])
def test_vif_matches_the_reference_code(other, ref, request):
    dist = request.getfixturevalue(other)
    expected = _vifp_reference(ref, dist)
    assert fr.visual_information_fidelity(ref, dist) == pytest.approx(expected, rel=1e-4)


def test_vif_falls_with_stronger_blur(ref, blurred):
    strong = cv2.GaussianBlur(ref, (9, 9), 3)
    assert 1.0 > fr.visual_information_fidelity(ref, blurred) > fr.visual_information_fidelity(
        ref, strong
    )


# ------------------------------------------------------------------ RRED
def test_haar_detail_matches_pywavelets(ref):
    band = information.haar_horizontal_detail(ref)[0]
    _, (horizontal, _, _) = pywt.dwt2(f64(ref), "haar")
    error = min(np.abs(band - horizontal).max(), np.abs(band + horizontal).max())  # sign
    assert error < 1e-3
    odd = ref[:-1, :-1]  # odd sizes: the even top-left part
    assert information.haar_horizontal_detail(odd).shape == (1, 79, 99)


def test_rred_grows_with_the_information_lost(ref, blurred):
    strong = cv2.GaussianBlur(ref, (9, 9), 3)
    weak = fr.reduced_reference_entropic_difference(ref, blurred)
    assert 0.0 < weak < fr.reduced_reference_entropic_difference(ref, strong)


def test_rred_entropies_follow_the_gsm_formula():
    """One 3x3 block: with K the block covariance itself, s² = cᵀK⁺c/9 and h by the formula."""
    rng = np.random.default_rng(4)
    band = rng.normal(0, 5, (1, 30, 30)).astype(np.float32)
    entropies = information.scaled_entropies(band)
    blocks = band[0].reshape(10, 3, 10, 3).transpose(1, 3, 0, 2).reshape(9, -1).astype(np.float64)
    cov = blocks @ blocks.T / blocks.shape[1]
    lam = np.linalg.eigvalsh(cov)
    s2 = np.einsum("ib,ij,jb->b", blocks, np.linalg.inv(cov), blocks) / 9
    h = 0.5 * np.log2(2 * np.pi * np.e * (s2[:, None] * lam[None, :] + 0.1)).sum(axis=1)
    np.testing.assert_allclose(entropies[0], h * np.log2(1 + s2), rtol=1e-4)
