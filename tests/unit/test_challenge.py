"""The colour-flash challenge: sequences, the reflectance fit, the check on frames
simulated from scikit-image's astronaut, and how a check changes a decision."""

from __future__ import annotations

import dataclasses
import itertools
import random

import numpy as np
import pytest
import skimage.data

from common.challenge import PALETTE, new_colours, parse_hex, to_hex
from common.challenge import check as check_module
from common.challenge.check import check_challenge
from common.challenge.reflectance import (
    SRGB_TO_LINEAR,
    double_centre,
    expected_pattern,
    fit_response,
)
from common.challenge.simulate import Conditions, simulate_capture
from common.config import Settings
from common.faces import locate_face
from common.faces.detectors import get_detector
from common.fusion import NormalisedLogOddsFusion
from common.pipeline import combine
from common.result import ChallengeCheck, LivenessResult, TestOutcome

SETTINGS = Settings()


@pytest.fixture(scope="module")
def astronaut():
    image = skimage.data.astronaut()
    detector = get_detector(SETTINGS.face_detector)
    return image, detector.detect(image)[0].box, locate_face(image, SETTINGS).box


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def unlike_sequences(length: int = 8) -> tuple[list, list]:
    """Two sequences whose expected patterns correlate below 0.2 (a replay's)."""
    rng = random.Random(3)
    while True:
        a, b = new_colours(length, rng), new_colours(length, rng)
        if abs(correlation(expected_pattern(a), expected_pattern(b))) < 0.2:
            return a, b


def capture(astronaut, colours, seed=0, **conditions):
    image, box, _ = astronaut
    uniform = conditions.pop("uniform_light", False)
    return simulate_capture(image, box, colours, Conditions(**conditions),
                            np.random.default_rng(seed), uniform_light=uniform)


def check(astronaut, frames, colours, settings=SETTINGS):
    image, _, face_box = astronaut
    return check_challenge(image, face_box, frames, colours,
                           get_detector(settings.face_detector), settings, "c1")


# --- sequences ------------------------------------------------------------------------
def test_sequences_are_random_palette_colours_that_move_every_channel() -> None:
    seen = set()
    for seed in range(200):
        colours = new_colours(8, random.Random(seed))
        assert len(colours) == 8 and all(c in PALETTE.values() for c in colours)
        assert all(a != b for a, b in itertools.pairwise(colours))
        for channel in range(3):
            assert {c[channel] for c in colours} == {0, 255}
        seen.add(tuple(colours))
    assert len(seen) == 200
    assert new_colours(4) != new_colours(4) or new_colours(4) != new_colours(4)


@pytest.mark.parametrize("length", [0, 3, 17])
def test_a_sequence_length_outside_4_to_16_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="4-16"):
        new_colours(length)


def test_hex_colours_round_trip_and_bad_ones_are_refused() -> None:
    for colour in PALETTE.values():
        assert parse_hex(to_hex(colour)) == colour
    assert to_hex((255, 0, 128)) == "#ff0080"
    for bad in ("ff0000", "#ff00", "#gg0000", 12, None):
        with pytest.raises(ValueError):
            parse_hex(bad)  # type: ignore[arg-type]


# --- the reflectance fit --------------------------------------------------------------
def test_the_fit_recovers_the_screen_to_room_ratio_whatever_the_exposure() -> None:
    colours = np.array(new_colours(8, random.Random(1)))
    screen = SRGB_TO_LINEAR[colours.astype(np.uint8)]
    albedo, room, beta = np.array([0.5, 0.35, 0.3]), np.ones(3), 0.05
    exposure = np.linspace(0.7, 1.4, 8)[:, None]  # the camera re-exposes every frame
    means = exposure * albedo * (room + beta * screen)
    fit = fit_response(means, colours)
    assert fit.correlation > 0.999
    assert fit.response == pytest.approx(beta, rel=0.05)
    flat = fit_response(exposure * albedo * room * np.ones((8, 3)), colours)
    assert abs(flat.response) < 1e-6 and flat.observed_rms < 1e-6


def test_double_centring_removes_row_and_column_means() -> None:
    values = np.random.default_rng(0).normal(size=(6, 3))
    centred = double_centre(values)
    assert np.allclose(centred.mean(axis=0), 0) and np.allclose(centred.mean(axis=1), 0)


def test_the_fit_refuses_mismatched_or_non_positive_means() -> None:
    colours = np.array(new_colours(4, random.Random(0)))
    with pytest.raises(ValueError, match="must both be"):
        fit_response(np.ones((5, 3)), colours)
    with pytest.raises(ValueError, match="positive"):
        fit_response(np.zeros((4, 3)), colours)


# --- the check on simulated frames ----------------------------------------------------
def test_a_live_face_lit_by_the_sequence_passes(astronaut) -> None:
    colours = new_colours(8, random.Random(5))
    result = check(astronaut, capture(astronaut, colours, screen_ratio=0.05), colours)
    assert result.outcome == "passed" and result.why is None and result.reason is None
    assert result.correlation > 0.9 and result.response == pytest.approx(0.05, rel=0.3)
    assert result.background_response < result.response / 1.5
    assert result.identity_distance < 0.6
    assert result.frames == 8 and result.challenge_id == "c1"


def test_a_replay_lit_by_another_sequence_fails(astronaut) -> None:
    asked, shown = unlike_sequences()
    result = check(astronaut, capture(astronaut, shown, screen_ratio=0.1), asked)
    assert (result.outcome, result.why) == ("failed", "wrong_sequence")
    assert result.reason == "challenge_failed:wrong_sequence"
    assert result.correlation < 0.5


def test_a_stream_not_lit_by_the_screen_gives_no_response(astronaut) -> None:
    colours = new_colours(8, random.Random(6))
    result = check(astronaut, capture(astronaut, colours, screen_ratio=0.0), colours)
    assert result.outcome == "no_response" and result.reason == "challenge_no_response"
    assert abs(result.response) < SETTINGS.challenge_min_response


def test_a_software_tint_that_follows_the_sequence_fails(astronaut) -> None:
    colours = new_colours(8, random.Random(7))
    frames = capture(astronaut, colours, screen_ratio=0.1, uniform_light=True)
    result = check(astronaut, frames, colours)
    assert (result.outcome, result.why) == ("failed", "background_follows")
    assert result.correlation > 0.9  # it does follow: the room gives it away


def test_frames_of_another_person_fail(astronaut, monkeypatch) -> None:
    colours = new_colours(8, random.Random(8))
    frames = capture(astronaut, colours, screen_ratio=0.1)
    monkeypatch.setattr(check_module, "identity_distance", lambda *a: 0.82)
    result = check(astronaut, frames, colours)
    assert (result.outcome, result.why, result.identity_distance) == (
        "failed", "other_person", 0.82)


def test_unreadable_frames_are_named(astronaut) -> None:
    colours = new_colours(8, random.Random(9))
    frames = capture(astronaut, colours)
    blank = [np.full_like(frames[0], 128), *frames[1:]]
    assert check(astronaut, blank, colours).why == "face_missing"
    smaller = [*frames[:-1], frames[-1][:400]]
    assert check(astronaut, smaller, colours).why == "frame_sizes_differ"
    moved = [*frames[:-1], np.roll(frames[-1], 200, axis=1)]
    assert check(astronaut, moved, colours).why == "face_moved"
    clipped = [np.clip(f.astype(float) * 1.6, 0, 255).astype(np.uint8) for f in frames]
    assert check(astronaut, clipped, colours).why == "exposure"
    _image, box, _ = astronaut
    x0, y0, x1, y1 = (int(v) for v in box)
    close = [f[max(0, y0 - 5):y1 + 40, max(0, x0 - 30):x1 + 30] for f in frames]
    assert check(astronaut, close, colours).why == "face_too_close"
    assert all(check(astronaut, f, colours).outcome == "unreadable"
               for f in (blank, smaller, moved, clipped, close))
    with pytest.raises(ValueError, match="7 frames for 8 colours"):
        check(astronaut, frames[:7], colours)


def test_the_check_thresholds_come_from_the_settings(astronaut) -> None:
    colours = new_colours(8, random.Random(10))
    frames = capture(astronaut, colours, screen_ratio=0.05)
    strict = dataclasses.replace(SETTINGS, challenge_min_response=0.5)
    assert check(astronaut, frames, colours).outcome == "passed"
    assert check(astronaut, frames, colours, strict).outcome != "passed"


# --- the result and the decision ------------------------------------------------------
def test_a_challenge_check_round_trips_and_names_its_reason() -> None:
    failed = ChallengeCheck("failed", "wrong_sequence", "c1", 0.1, 0.02, 0.001, 0.2, 8, 0.2)
    assert ChallengeCheck.from_dict(failed.to_dict()) == failed
    assert failed.reason == "challenge_failed:wrong_sequence" and not failed.passed
    assert ChallengeCheck("no_response").reason == "challenge_no_response"
    assert ChallengeCheck("passed").reason is None


@pytest.mark.parametrize(("outcome", "tests_say", "decision"), [
    ("passed", "live", "live"), ("passed", "spoof", "spoof"),
    ("failed", "live", "spoof"), ("no_response", "live", "retry"),
    ("unreadable", "live", "retry"), ("no_response", "spoof", "spoof"),
])
def test_only_a_passed_challenge_leaves_the_decision_to_the_tests(
        astronaut, outcome: str, tests_say: str, decision: str) -> None:
    image, _, _ = astronaut
    face = locate_face(image, SETTINGS)
    fusion = NormalisedLogOddsFusion()
    score = 0.95 if tests_say == "live" else 0.05
    outcomes = {"quality": TestOutcome(score=score, threshold=0.5)}
    plain = combine(face, outcomes, 0.1, fusion)
    assert plain.decision == tests_say
    challenge = ChallengeCheck(outcome, None if outcome == "passed" else "x", "c1")
    result = combine(face, outcomes, 0.1, fusion, challenge=challenge)
    assert result.decision == decision and result.challenge == challenge
    assert (challenge.reason in result.reasons) == (outcome != "passed")
    assert LivenessResult.from_dict(result.to_dict()) == result
