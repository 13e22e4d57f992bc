"""The face stage's work per image is bounded beyond ``face_search_max_side`` (issue 15,
item 7): a 6300×6300 faceless image held a face worker for 6-28 s because the tiles pass
ran over the full-resolution pyramid (about 430 detector runs here). Timings are in
``bench/faces.py``; these tests check the bound itself: what the detector is given.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from skimage import data

from common.config import Settings, SettingsError
from common.faces import get_detector, locate_face
from common.faces import locate as locate_module
from common.faces.locate import tile_count

SETTINGS = Settings()


class CountingDetector:
    """Wraps the configured detector and records the side of every image it is given."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.has_eyes = inner, inner.name, inner.has_eyes
        self.tile_input_side = inner.tile_input_side
        self.sides: list[int] = []

    def _run(self, method: str, image: np.ndarray):
        self.sides.append(max(image.shape[:2]))
        return getattr(self.inner, method)(image)

    def detect(self, image):
        return self._run("detect", image)

    def detect_large(self, image):
        return self._run("detect_large", image)

    def detect_small(self, image):
        return self._run("detect_small", image)


@pytest.fixture
def counting(monkeypatch) -> CountingDetector:
    detector = CountingDetector(get_detector(SETTINGS.face_detector))
    monkeypatch.setattr(locate_module, "get_detector", lambda name: detector)
    return detector


def smooth_image(side: int) -> np.ndarray:
    """A faceless, smooth (well-compressible) image of side × side pixels."""
    noise = np.random.default_rng(7).integers(40, 220, (24, 24, 3), dtype=np.uint8)
    return cv2.resize(noise, (side, side), interpolation=cv2.INTER_CUBIC)


def test_tile_count_stops_growing_at_the_search_size() -> None:
    limit = SETTINGS.face_search_max_side
    assert tile_count((limit, limit), SETTINGS.face_detect_max_side) == 166
    assert tile_count((6300, 6300), SETTINGS.face_detect_max_side) > 400  # unbounded before
    assert tile_count((640, 480), SETTINGS.face_detect_max_side) == 0


def test_a_huge_faceless_image_runs_a_bounded_search(counting: CountingDetector) -> None:
    face = locate_face(smooth_image(6300), SETTINGS)
    assert not face.found
    limit = tile_count((SETTINGS.face_search_max_side,) * 2, SETTINGS.face_detect_max_side)
    passes = 8 + 1  # plain (both models in one call), rotations, padded; tiles extra
    assert len(counting.sides) <= limit + passes, len(counting.sides)
    assert max(counting.sides) <= 1.6 * SETTINGS.face_detect_max_side  # padded view


def test_the_bound_is_the_setting(counting: CountingDetector) -> None:
    small = dataclasses.replace(SETTINGS, face_search_max_side=1500)
    locate_face(smooth_image(6300), small)
    assert len(counting.sides) <= tile_count((1500, 1500), small.face_detect_max_side) + 9


def test_a_face_in_a_huge_photo_is_reported_in_original_pixels() -> None:
    """The astronaut ×4 in an 8000×6000 photo: found on the downscaled copy, reported in
    the photo's pixels."""
    astronaut = data.astronaut()
    upright = locate_face(astronaut, SETTINGS)
    photo = np.full((6000, 8000, 3), 110, np.uint8)
    photo[1000:3048, 3000:5048] = cv2.resize(astronaut, (2048, 2048),
                                             interpolation=cv2.INTER_CUBIC)
    face = locate_face(photo, SETTINGS)
    assert face.found and face.capture_ok, face.reasons
    expected = np.asarray(upright.landmarks) * 4 + [3000, 1000]
    iod = 4 * float(np.hypot(*np.subtract(upright.landmarks[1], upright.landmarks[0])))
    assert float(np.abs(np.asarray(face.landmarks) - expected).max()) < 0.1 * iod
    assert face.quality["face_side"] == pytest.approx(4 * upright.quality["face_side"],
                                                      rel=0.1)
    assert face.box.left >= 3000 and face.box.bottom <= 3048


def test_search_size_setting(monkeypatch) -> None:
    monkeypatch.setenv("LIVENESS_FACE_SEARCH_MAX_SIDE", "2000")
    assert Settings.from_env().face_search_max_side == 2000
    monkeypatch.setenv("LIVENESS_FACE_SEARCH_MAX_SIDE", "320")
    with pytest.raises(SettingsError, match="LIVENESS_FACE_SEARCH_MAX_SIDE"):
        Settings.from_env()
