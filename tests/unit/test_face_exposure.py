"""Exposure judged whatever the skin tone, and backlight named (issue 15, items 13, 14).

Subjects: the astronaut and Grace Hopper (``face_subjects``), each given a dark and a
light skin tone by moving the skin's CIELAB lightness and yellowness (eyes, eyebrows,
lips, hair and background untouched), then re-exposed with
``common.faces.photometry.simulate_exposure``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data

from common.config import Settings
from common.faces import face_crop, locate_face
from common.faces.photometry import (
    individual_typology_angle,
    ita_group,
    linear_to_srgb,
    simulate_backlight,
    simulate_exposure,
    srgb_to_linear,
)
from common.faces.regions import face_regions
from tests.unit.face_subjects import hopper, landmarks_of, retone_skin

SETTINGS = Settings()
#: 0 to −5 stops.
FACTORS = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125)
SUBJECTS = {"astronaut": data.astronaut, "hopper": hopper}


@pytest.fixture(scope="module", params=list(SUBJECTS))
def tones(request) -> dict[str, np.ndarray]:
    image = SUBJECTS[request.param]()
    return {"dark": retone_skin(image, 32.0, 16.0), "light": retone_skin(image, 72.0, 14.0)}


def old_rule_dark(image: np.ndarray) -> bool:
    """The check before issue 15: mean luma of the aligned 112 crop below 32."""
    face = locate_face(image, SETTINGS)
    grey = cv2.cvtColor(face_crop(image, face, 112), cv2.COLOR_RGB2GRAY)
    return float(grey.mean()) < 32.0


def test_the_synthetic_tones_are_dark_and_light(tones) -> None:
    dark = individual_typology_angle(face_regions(tones["dark"], landmarks_of(tones["dark"])))
    light = individual_typology_angle(
        face_regions(tones["light"], landmarks_of(tones["light"])))
    assert ita_group(dark) == "dark" and dark < -30
    assert ita_group(light) in ("light", "very light") and light > 41


def test_too_dark_does_not_depend_on_skin_tone(tones) -> None:
    """At every simulated exposure both tones get the same verdict, from the same
    exposure measure; well exposed both pass, five stops under both are too dark. The
    old rule (mean face luma) refused the dark tone at an exposure where it passed the
    light one."""
    verdicts, old = [], []
    for i, factor in enumerate(FACTORS):
        shots = {tone: simulate_exposure(image, factor, np.random.default_rng(i))
                 for tone, image in tones.items()}
        faces = {tone: locate_face(shot, SETTINGS) for tone, shot in shots.items()}
        assert all(f.found for f in faces.values()), factor
        dark, light = ("too_dark" in faces[t].reasons for t in ("dark", "light"))
        assert dark == light, (factor, faces["dark"].quality, faces["light"].quality)
        assert abs(faces["dark"].quality["exposure"] - faces["light"].quality["exposure"]) \
            <= 4, factor
        verdicts.append(dark)
        old.append((old_rule_dark(shots["dark"]), old_rule_dark(shots["light"])))
    assert verdicts[0] is False and verdicts[-1] is True
    assert any(dark and not light for dark, light in old), old


def test_backlit_capture_is_named(tones) -> None:
    """A backlit version (background 3 stops up and clipped, the head 5 stops down,
    glare) is refused as ``backlit`` — not as ``too_dark``, and not as ``too_blurry``
    alone — for either skin tone; the front-lit originals are not backlit."""
    for tone, image in tones.items():
        face = locate_face(image, SETTINGS)
        assert "backlit" not in face.reasons, (tone, face.quality)
        x0, y0 = face.box.left, face.box.top
        backlit = simulate_backlight(image, (x0, y0, face.box.right, face.box.bottom))
        got = locate_face(backlit, SETTINGS)
        assert got.found and "backlit" in got.reasons and not got.capture_ok, \
            (tone, got.reasons, got.quality)
        assert got.quality["backlight"] > SETTINGS.max_backlight
        assert "too_dark" not in got.reasons


def test_srgb_transfer_round_trips() -> None:
    codes = np.linspace(0.0, 1.0, 256)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(codes)), codes, atol=1e-9)
    assert float(srgb_to_linear(np.array(0.5))) == pytest.approx(0.2140, abs=1e-4)


def test_simulate_exposure_scales_linear_light() -> None:
    image = data.astronaut()
    same = simulate_exposure(image, 1.0, np.random.default_rng(0))
    assert np.abs(same.astype(int) - image).mean() < 3  # only sensor noise added
    quarter = simulate_exposure(image, 0.25, np.random.default_rng(0))
    ratio = srgb_to_linear(quarter / 255.0).mean() / srgb_to_linear(image / 255.0).mean()
    assert ratio == pytest.approx(0.25, rel=0.05)
    for bad in (0.0, 1.5, -1.0):
        with pytest.raises(ValueError, match="exposure factor"):
            simulate_exposure(image, bad, np.random.default_rng(0))


@pytest.mark.parametrize(("angle", "group"), [
    (60.0, "very light"), (55.0, "light"), (41.0, "intermediate"), (30.0, "intermediate"),
    (28.0, "tan"), (10.0, "brown"), (-29.9, "brown"), (-30.0, "dark"), (-80.0, "dark"),
    (math.nan, "unknown")])
def test_ita_groups_follow_del_bino_and_bernerd(angle: float, group: str) -> None:
    assert ita_group(angle) == group
