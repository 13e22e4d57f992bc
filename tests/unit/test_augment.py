"""Training augmentations: valid images, deterministic per seed, and they do degrade."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from common.augment import capture_chain, simulated_recapture
from workers.quality.features import FEATURE_NAMES, extract_features


def test_outputs_are_rgb_uint8_and_deterministic():
    rgb = data.astronaut()
    for fn in (capture_chain, simulated_recapture):
        a = fn(rgb, np.random.default_rng(3))
        b = fn(rgb, np.random.default_rng(3))
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 and min(a.shape[:2]) >= 64
        np.testing.assert_array_equal(a, b)


def test_recapture_loses_sharpness_and_range():
    rgb = cv2.resize(data.astronaut(), (640, 480))
    fake = cv2.resize(simulated_recapture(rgb, np.random.default_rng(0)), (640, 480))
    sharp = cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    blurred = cv2.Laplacian(cv2.cvtColor(fake, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    assert blurred < sharp
    assert np.ptp(fake) < np.ptp(rgb)
    features = extract_features(fake)
    assert features.shape == (len(FEATURE_NAMES),) and np.isfinite(features).all()


def test_camera_chain_changes_colour_and_is_deterministic():
    from common.augment import camera_chain, photometric

    rgb = data.astronaut()
    a = photometric(rgb, np.random.default_rng(5))
    assert a.shape == rgb.shape and a.dtype == np.uint8
    assert np.abs(a.astype(int) - rgb).mean() > 1  # gamma / cast moved the pixels
    b = camera_chain(rgb, np.random.default_rng(5))
    np.testing.assert_array_equal(b, camera_chain(rgb, np.random.default_rng(5)))
    assert b.ndim == 3 and b.dtype == np.uint8


def test_lower_resolution_shrinks_to_the_range_and_keeps_colour_order():
    import pytest

    from common.augment import lower_resolution

    rgb = data.astronaut()  # 512 × 512
    sides = []
    for seed in range(40):
        out = lower_resolution(rgb, np.random.default_rng(seed), shortest=(48, 200))
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        sides.append(min(out.shape[:2]))
    assert min(sides) >= 48 and max(sides) <= 200 and len(set(sides)) > 20
    np.testing.assert_array_equal(lower_resolution(rgb, np.random.default_rng(7)),
                                  lower_resolution(rgb, np.random.default_rng(7)))
    small = rgb[:40, :60]  # already smaller than the range: not enlarged, only re-encoded
    assert lower_resolution(small, np.random.default_rng(0)).shape == small.shape
    red = np.zeros((300, 400, 3), np.uint8)
    red[..., 0] = 220  # RGB red stays red through OpenCV's BGR JPEG codec
    out = lower_resolution(red, np.random.default_rng(1)).reshape(-1, 3).mean(0)
    assert out[0] > 180 and out[2] < 40
    with pytest.raises(ValueError, match="shortest"):
        lower_resolution(rgb, np.random.default_rng(0), shortest=(200, 48))
    with pytest.raises(ValueError, match="empty image"):
        lower_resolution(rgb[:0], np.random.default_rng(0))
