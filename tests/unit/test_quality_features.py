"""The 25-feature W-IQA extractor: API, edge cases, shared code path, resolution invariance."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from workers.quality import features
from workers.quality.features import (
    FEATURE_NAMES,
    WORKING_PIXELS,
    extract_features,
    extract_features_timed,
    to_working_size,
    working_shape,
)
from workers.quality.measures import full_reference as fr
from workers.quality.measures import no_reference as nr


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return cv2.resize(data.astronaut(), (640, 480), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def rgb_features(rgb: np.ndarray) -> np.ndarray:
    return extract_features(rgb)


def test_feature_names_and_working_size():
    assert FEATURE_NAMES == (
        "MSE", "PSNR", "SNR", "SC", "MD", "AD", "NAE", "RAMD", "LMSE", "NXC",
        "MAMS", "MAS", "TED", "TCD", "SME", "SPE", "GME", "GPE", "SSIM", "VIF",
        "RRED", "JQI", "HLFI", "BIQI", "NIQE",
    )  # fmt: skip
    assert WORKING_PIXELS == 640 * 480


@pytest.mark.parametrize(
    ("size", "expected"),
    [((480, 640), (480, 640)), ((960, 1280), (480, 640)), ((720, 1280), (420, 750)),
     ((64, 64), (560, 560)), ((3000, 4000), (480, 640)), ((1920, 1080), (750, 420)),
     ((64, 2000), (98, 3072))],
)  # fmt: skip
def test_working_shape_keeps_the_aspect_ratio_and_the_pixel_count(size, expected):
    h, w = working_shape(*size)
    assert (h, w) == expected
    assert abs(h * w / WORKING_PIXELS - 1) < 0.03
    assert abs((w / h) / (size[1] / size[0]) - 1) < 0.01
    for side in (h, w):  # FFT- and DWT-friendly: even, no prime factor above 7
        assert side % 2 == 0
        rest = side
        for p in (2, 3, 5, 7):
            while rest % p == 0:
                rest //= p
        assert rest == 1


def test_to_working_size_shrinks_by_area_and_enlarges_by_cubic(rgb):
    assert to_working_size(rgb) is rgb  # already the working size: untouched
    big = cv2.resize(rgb, (1280, 960), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(
        to_working_size(big), cv2.resize(big, (640, 480), interpolation=cv2.INTER_AREA)
    )
    small = rgb[:64, :64]
    np.testing.assert_array_equal(
        to_working_size(small), cv2.resize(small, (560, 560), interpolation=cv2.INTER_CUBIC)
    )


# ------------------------------------------------------------------ edge cases
def _constant(value: int, shape=(480, 640, 3)) -> np.ndarray:
    return np.full(shape, value, dtype=np.uint8)


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(_constant(0), id="black"),
        pytest.param(_constant(128), id="grey-constant"),
        pytest.param(_constant(255), id="white"),
        pytest.param(cv2.resize(data.astronaut(), (64, 64)), id="64px"),
        pytest.param(cv2.resize(data.astronaut(), (4000, 3000)), id="4000px"),
        pytest.param(cv2.resize(data.astronaut(), (2000, 64)), id="64x2000"),
        pytest.param(data.camera(), id="2-D-grey"),
        pytest.param(_constant(7, (100, 120)), id="2-D-constant"),
    ],
)
def test_extract_features_is_finite_on_edge_cases(image):
    vector = extract_features(image)
    assert vector.shape == (25,)
    assert vector.dtype == np.float64
    assert np.all(np.isfinite(vector))


def test_constant_image_gives_the_identity_values():
    vector = dict(zip(FEATURE_NAMES, extract_features(_constant(128)), strict=True))
    assert vector["MSE"] == 0.0
    assert vector["PSNR"] == 100.0
    assert vector["SSIM"] == pytest.approx(1.0)
    assert vector["VIF"] == 1.0
    assert vector["RRED"] == 0.0
    assert vector["MAS"] == pytest.approx(1.0)
    assert vector["TED"] == vector["TCD"] == 0.0


def test_wrong_inputs_are_refused(rgb):
    with pytest.raises(TypeError):
        extract_features(rgb.astype(np.float32))
    with pytest.raises(ValueError):
        extract_features(np.zeros((48, 64, 4), np.uint8))


# ------------------------------------------------------------------ one code path
def test_timed_extraction_is_the_same_computation(rgb, rgb_features):
    vector, seconds = extract_features_timed(rgb)
    # Same computation, but not always the same last bits: OpenCV's and NumPy's SIMD
    # float32 kernels (colour angles of MAS/MAMS) take alignment-dependent paths, so two
    # calls in one process can differ by ~1e-10 relative (MAMS: a difference of sums).
    np.testing.assert_allclose(vector, rgb_features, rtol=1e-9, atol=0)
    assert set(FEATURE_NAMES) <= set(seconds)
    assert all(s >= 0.0 for s in seconds.values())


def test_features_equal_the_plain_measure_functions(rgb, rgb_features):
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    blurred = cv2.GaussianBlur(grey, (5, 5), 0)
    rgb_blurred = cv2.GaussianBlur(rgb.astype(np.float32), (5, 5), 0)
    got = dict(zip(FEATURE_NAMES, rgb_features, strict=True))
    expected = {
        "MSE": fr.mean_squared_error(grey, blurred),
        "PSNR": fr.peak_signal_noise_ratio(grey, blurred),
        "MD": fr.maximum_difference(grey, blurred),
        "RAMD": fr.r_averaged_max_difference(grey, blurred),
        "LMSE": fr.laplacian_mean_squared_error(grey, blurred),
        "MAS": fr.mean_angle_similarity(rgb, rgb_blurred),
        "MAMS": fr.mean_angle_magnitude_similarity(rgb, rgb_blurred),
        "TED": fr.total_edge_difference(grey, blurred),
        "TCD": fr.total_corner_difference(grey, blurred),
        "SME": fr.spectral_magnitude_error(grey, blurred),
        "SPE": fr.spectral_phase_error(grey, blurred),
        "GPE": fr.gradient_phase_error(grey, blurred),
        "SSIM": fr.structural_similarity(grey, blurred),
        "VIF": fr.visual_information_fidelity(grey, blurred),
        "RRED": fr.reduced_reference_entropic_difference(grey, blurred),
        "JQI": nr.jpeg_quality_index(grey),
        "HLFI": nr.high_low_frequency_index(grey),  # its own FFT, not the shared one
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-5, abs=1e-9), name


def test_non_contiguous_and_grey_inputs(rgb, rgb_features):
    mirrored = extract_features(rgb[:, ::-1])  # a flipped view, not a copy
    assert np.all(np.isfinite(mirrored))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey_features = dict(zip(FEATURE_NAMES, extract_features(grey), strict=True))
    colour_features = dict(zip(FEATURE_NAMES, rgb_features, strict=True))
    assert grey_features["MAS"] == 1.0  # no colour vectors: the angle is 0
    for name in ("MSE", "SSIM", "VIF", "RRED", "TCD"):  # grey measures do not change
        assert grey_features[name] == colour_features[name]


def test_strip_wise_colour_sums_equal_the_whole_image_ones(rgb):
    planes = rgb.transpose(2, 0, 1).astype(np.float32)
    blurred = np.stack([cv2.GaussianBlur(p, (5, 5), 0) for p in planes])
    whole = fr.colour_sums(planes, blurred)
    fused = fr.colour_sums_of_blur(rgb)
    assert fused.n == whole.n
    for field in ("angle", "distance", "product"):
        assert getattr(fused, field) == pytest.approx(getattr(whole, field), rel=1e-9)


def test_allocator_tuning_is_idempotent():
    first = features.retain_freed_memory()
    assert features.retain_freed_memory() is first


# ------------------------------------------------------------------ resolution invariance
def _scene(width: int = 1920, height: int = 1440, seed: int = 0) -> np.ndarray:
    """A statistically uniform synthetic scene: shading, fine texture, anti-aliased shapes.

    Rendered once at 1920x1440; the "cameras" below sample it by area averaging.
    """
    rng = np.random.default_rng(seed)
    shading = cv2.resize(rng.uniform(60, 190, (4, 5, 3)).astype(np.float32), (width, height),
                         interpolation=cv2.INTER_CUBIC)  # fmt: skip
    texture = cv2.resize(rng.normal(0, 20, (height // 5, width // 5, 3)).astype(np.float32),
                         (width, height), interpolation=cv2.INTER_CUBIC)  # fmt: skip
    image = np.clip(shading + texture, 0, 255).astype(np.uint8)
    for _ in range(250):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        size = float(rng.uniform(15, 90))
        if rng.random() < 0.5:
            cv2.circle(image, centre, int(size), colour, -1, cv2.LINE_AA)
        else:
            corners = (rng.normal(0, size, (4, 2)) + centre).astype(np.int32)
            cv2.fillPoly(image, [corners], colour, cv2.LINE_AA)
    return image


def _relative_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # floor 0.01: AD (the mean of I - Î) is ~0 for any image and only its noise differs
    return np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 0.01)


def test_same_scene_at_three_resolutions_gives_close_features():
    scene = _scene()
    vga = cv2.resize(scene, (640, 480), interpolation=cv2.INTER_AREA)
    sxga = cv2.resize(scene, (1280, 960), interpolation=cv2.INTER_AREA)
    hd = sxga[120:840]  # a 1280x720 frame: same width of the scene, top and bottom cut
    reference = extract_features(vga)

    same_view = _relative_differences(reference, extract_features(sxga))
    # measured: median 0.01%, max 0.2% (seed 0)
    assert np.median(same_view) < 0.002
    assert same_view.max() < 0.02
    # The 16:9 frame holds the same pixel count, so the scene is seen 15% larger (and
    # less of it): measured median 12%, mean 14%, max 34% (SME, MSE: the energy near
    # the pixel scale changes with magnification).
    cropped = _relative_differences(reference, extract_features(hd))
    assert np.median(cropped) < 0.2
    assert cropped.mean() < 0.2

    # measured without resizing: median 15%, mean 28%, max 96% (TCD)
    raw = _relative_differences(reference, extract_features(sxga, resize=False))
    assert np.median(raw) > 50 * np.median(same_view)
    assert raw.mean() > 1.5 * cropped.mean()
