"""No-reference W-IQA measures: JQI, HLFI, BIQI, NIQE and their NSS estimators.

References are independent of the code under test: scipy's generalised normal
samples for the estimators, PyWavelets for the 9/7 DWT, a closed form for HLFI, a
plain transcription of the authors' MATLAB code for JQI, and distortion strength
for NIQE/BIQI (on skimage's ``chelsea``, held out from the model fitting).
"""

from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pytest
import pywt
from scipy.special import gamma
from scipy.stats import gennorm

from common.errors import ModelError
from workers.quality import fit_nr_models as fit
from workers.quality.measures import biqi, niqe
from workers.quality.measures.no_reference import (
    blind_image_quality_index,
    high_low_frequency_index,
    jpeg_quality_index,
    natural_image_quality_evaluator,
)
from workers.quality.measures.nss import aggd_fit, ggd_fit

MEASURES = (
    jpeg_quality_index,
    high_low_frequency_index,
    blind_image_quality_index,
    natural_image_quality_evaluator,
)


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    """A natural photograph never used to fit the models (uint8 grey)."""
    assert "chelsea" in fit.HELD_OUT and "chelsea" not in fit.FIT_IMAGES
    return fit.load_grey("chelsea")


def f32(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32)


# --- NSS estimators ---------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.6, 1.0, 2.0, 3.0])
def test_ggd_fit_recovers_shape_and_variance(alpha: float) -> None:
    scale = 3.0
    x = gennorm.rvs(alpha, scale=scale, size=200_000, random_state=1).astype(np.float32)
    est_alpha, est_var = ggd_fit(x)
    assert est_alpha == pytest.approx(alpha, rel=0.03)
    assert est_var == pytest.approx(scale**2 * gamma(3 / alpha) / gamma(1 / alpha), rel=0.03)


@pytest.mark.parametrize(
    ("alpha", "beta_l", "beta_r"), [(0.8, 1.0, 2.0), (1.5, 2.0, 1.0), (3.0, 0.5, 1.5)]
)
def test_aggd_fit_recovers_asymmetric_parameters(
    alpha: float, beta_l: float, beta_r: float
) -> None:
    # AGGD sample: |generalised normal| scaled by the side's beta, the side drawn
    # with probability beta_side / (beta_l + beta_r) (its share of the density mass)
    rng = np.random.default_rng(2)
    mag = np.abs(gennorm.rvs(alpha, size=200_000, random_state=rng))
    left = rng.random(mag.size) < beta_l / (beta_l + beta_r)
    x = np.where(left, -beta_l * mag, beta_r * mag).astype(np.float32)
    est_alpha, est_mean, est_l, est_r = aggd_fit(x)
    assert est_alpha == pytest.approx(alpha, rel=0.03)
    assert est_l == pytest.approx(beta_l, rel=0.03)
    assert est_r == pytest.approx(beta_r, rel=0.03)
    assert est_mean == pytest.approx(float(x.mean()), abs=0.02 * (beta_l + beta_r))


def test_batched_fits_equal_single_fits() -> None:
    rng = np.random.default_rng(3)
    rows = rng.laplace(size=(4, 5000)).astype(np.float32) * np.array([[1], [2], [3], [4]])
    rows[2] = np.abs(rows[2]) - 1.0
    a, v = ggd_fit(rows)
    batched = aggd_fit(rows)
    for i, row in enumerate(rows):
        assert (a[i], v[i]) == pytest.approx(ggd_fit(row), rel=1e-6)
        assert tuple(b[i] for b in batched) == pytest.approx(aggd_fit(row), rel=1e-6, abs=1e-9)


def test_estimators_are_finite_on_zeros() -> None:
    zeros = np.zeros(1000, dtype=np.float32)
    assert np.isfinite(ggd_fit(zeros)).all()
    assert np.isfinite(aggd_fit(zeros)).all()


# --- JQI ----------------------------------------------------------------------------


def _jqi_reference(x: np.ndarray) -> float:
    """Straight transcription of Wang's jpeg_quality_score.m."""
    x = x.astype(np.float64)
    m, n = x.shape
    d_h = x[:, 1:] - x[:, :-1]
    b_h = np.abs(d_h[:, 7 : 8 * (n // 8 - 1) : 8]).mean()
    a_h = (8 * np.abs(d_h).mean() - b_h) / 7
    z_h = ((np.sign(d_h[:, :-1]) * np.sign(d_h[:, 1:])) < 0).mean()
    d_v = x[1:, :] - x[:-1, :]
    b_v = np.abs(d_v[7 : 8 * (m // 8 - 1) : 8, :]).mean()
    a_v = (8 * np.abs(d_v).mean() - b_v) / 7
    z_v = ((np.sign(d_v[:-1, :]) * np.sign(d_v[1:, :])) < 0).mean()
    b, a, z = (b_h + b_v) / 2, (a_h + a_v) / 2, (z_h + z_v) / 2
    return -245.8909 + 261.9373 * b ** (-239.8886 / 1e4) * a ** (160.1664 / 1e4) * z ** (
        64.2859 / 1e4
    )


def test_jqi_matches_reference_transcription(held_out: np.ndarray) -> None:
    img = fit.jpeg(held_out, 30)
    assert jpeg_quality_index(f32(img)) == pytest.approx(_jqi_reference(img), rel=1e-6)


def test_jqi_lower_for_heavy_jpeg(held_out: np.ndarray) -> None:
    scores = [jpeg_quality_index(f32(fit.jpeg(held_out, q))) for q in (90, 50, 20, 8)]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] - scores[-1] > 3.0


# --- HLFI ---------------------------------------------------------------------------


@pytest.mark.parametrize("mean", [0.5, 1.0, 4.0])
def test_hlfi_closed_form(mean: float) -> None:
    # DC plus a separable cosine at 24/64 cycles/px on both axes (high band):
    # |F| = 64*64*mean at DC and 64*64/4 at each of the four peaks
    t = np.arange(64)
    c = np.cos(2 * np.pi * 24 * t / 64)
    img = (mean + np.outer(c, c)).astype(np.float32)
    assert high_low_frequency_index(img) == pytest.approx((mean - 1) / (mean + 1), abs=1e-5)


def test_hlfi_sharp_lower_than_blurred_and_magnitude_reused(held_out: np.ndarray) -> None:
    sharp = f32(held_out)
    blurred = f32(fit.gaussian_blur(held_out, 2.0))
    # (low - high) / total: a blurred image keeps its low frequencies only
    assert high_low_frequency_index(sharp) < high_low_frequency_index(blurred) - 0.05
    for img in (sharp, blurred):
        magnitude = np.abs(np.fft.fft2(img.astype(np.float64)))
        assert high_low_frequency_index(img, magnitude) == pytest.approx(
            high_low_frequency_index(img), rel=1e-5
        )


# --- BIQI ---------------------------------------------------------------------------


def test_dwt97_matches_pywavelets_interior() -> None:
    img = np.random.default_rng(4).random((96, 128)).astype(np.float32) * 255
    ours = biqi.dwt97(img)
    ref = pywt.wavedec2(img.astype(np.float64), "bior4.4", level=3, mode="periodization")
    for level, bands in enumerate(ours, start=1):
        for a, b in zip(bands, ref[-level], strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a[6:-6, 6:-6], b[6:-6, 6:-6], atol=2e-3)


def _increasing(values: list[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(
    ("name", "distort"),
    [
        ("blur", lambda g: [fit.gaussian_blur(g, s) for s in (0.9, 2.5, 6.0)]),
        ("noise", lambda g: [fit.white_noise(g, s, np.random.default_rng(5)) for s in (7, 16, 40)]),
        ("jpeg", lambda g: [fit.jpeg(g, q) for q in (70, 25, 8)]),
        ("jpeg2000", lambda g: [fit.jpeg2000(g, r) for r in (15, 60, 220)]),
    ],
)
def test_biqi_grows_with_distortion_on_held_out_image(held_out, name, distort) -> None:
    scores = [blind_image_quality_index(f32(img)) for img in [held_out, *distort(held_out)]]
    assert _increasing(scores), (name, scores)


# --- NIQE ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "distort"),
    [
        ("blur", lambda g: [fit.gaussian_blur(g, s) for s in (0.6, 2.5, 8.0)]),
        ("noise", lambda g: [fit.white_noise(g, s, np.random.default_rng(6)) for s in (7, 16, 30)]),
        ("jpeg", lambda g: [fit.jpeg(g, q) for q in (50, 12, 5)]),
    ],
)
def test_niqe_pristine_best_and_grows_with_distortion(held_out, name, distort) -> None:
    scores = [natural_image_quality_evaluator(f32(img)) for img in [held_out, *distort(held_out)]]
    assert _increasing(scores), (name, scores)


def test_niqe_patch_features_shape_and_sharpness(held_out: np.ndarray) -> None:
    feats, sharpness = niqe.patch_features(f32(held_out))
    n = (held_out.shape[0] // 96) * (held_out.shape[1] // 96)
    assert feats.shape == (n, 36) and sharpness.shape == (n,)
    assert len(niqe.feature_names()) == 36
    # sharpness = mean local std of the patch, in row-major patch order
    h, w = (s // 96 * 96 for s in held_out.shape)
    _, sigma = niqe.mscn(f32(held_out)[:h, :w])
    assert sharpness[1] == pytest.approx(float(sigma[:96, 96:192].mean()), rel=1e-4)


# --- robustness and model files -------------------------------------------------------


@pytest.mark.parametrize(
    "img",
    [
        np.full((480, 640), 128.0, dtype=np.float32),
        np.zeros((64, 64), dtype=np.float32),
        (np.random.default_rng(7).random((64, 64)) * 255).astype(np.float32),
        np.full((9, 13), 7.0, dtype=np.float32),
    ],
    ids=["constant", "black-64", "noise-64", "tiny"],
)
def test_all_measures_finite_on_awkward_inputs(img: np.ndarray) -> None:
    for measure in MEASURES:
        assert np.isfinite(measure(img)), measure.__name__


def test_all_measures_finite_on_large_image(held_out: np.ndarray) -> None:
    big = f32(cv2.resize(held_out, (4000, 3000), interpolation=cv2.INTER_LINEAR))
    for measure in MEASURES:
        assert np.isfinite(measure(big)), measure.__name__


def test_model_files_record_their_provenance() -> None:
    _, _, meta = niqe.load_model()
    for data in (meta, biqi.load_model().metadata):
        images = data["fitted_on"]["images"]
        assert images == [f"skimage.data.{n}" for n in fit.FIT_IMAGES]
        assert not set(data["fitted_on"]["held_out"]) & set(images)


def test_malformed_model_file_raises_model_error(tmp_path) -> None:
    bad = tmp_path / "niqe.json"
    bad.write_text(json.dumps({"model": "niqe", "version": niqe.MODEL_VERSION, "mu": [0.0]}))
    with pytest.raises(ModelError):
        niqe.load_model(bad)
    missing = tmp_path / "absent.json"
    with pytest.raises(ModelError):
        biqi.load_model(missing)


@pytest.mark.parametrize("shape", [(480, 640), (97, 131), (64, 65), (9, 13), (1, 9)])
def test_hlfi_from_half_spectrum_equals_full_spectrum(shape):
    from workers.quality.measures.hlfi import high_low_frequency_index_from_half

    grey = np.random.default_rng(sum(shape)).uniform(0, 255, shape).astype(np.float32)
    full = high_low_frequency_index(grey, np.abs(np.fft.fft2(grey)))
    half = high_low_frequency_index_from_half(np.abs(np.fft.rfft2(grey)), shape[1])
    assert half == pytest.approx(full, rel=1e-5, abs=1e-6)
