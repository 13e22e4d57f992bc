"""Calibration profiles: fitting on an operator's scores (before/after, hand-checked
decisions), loading, and applying one in the pipeline's combine."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from common.calibration import Calibrator
from common.errors import ModelError
from common.evaluation.calibration import (
    bootstrap_ci,
    expected_calibration_error,
    fit_calibrator,
    reliability,
)
from common.evaluation.recalibrate import recalibrate
from common.fusion import NormalisedLogOddsFusion
from common.pipeline import combine
from common.profiles import Profile, load_profiles, parse_key_profiles, save_profile
from common.result import FaceBox, FaceDetection, TestOutcome


def _shifted_scores(rng: np.random.Generator, n: int = 400):
    """A new camera: still ranked (bona fide higher) but every score low, so the shipped
    threshold 0.9 rejects nearly all bona fide presentations."""
    y = np.arange(n) % 2
    z = -2.0 + 2.0 * y + rng.normal(0, 0.7, n)
    return 1 / (1 + np.exp(-z)), y


def test_recalibration_fixes_a_shifted_threshold() -> None:
    s, y = _shifted_scores(np.random.default_rng(0))
    types = np.where(y == 1, "none", "print").astype(object)
    result = recalibrate(s, y, types, shipped_threshold=0.9, operating_point="apcer<=5%",
                         n_boot=200)
    assert result.before.bpcer > 0.9  # the shipped threshold rejects the live faces
    assert result.after.bpcer < 0.5 and result.after.apcer <= 0.1
    low, high = result.after.intervals["bpcer"]
    assert low <= result.after.bpcer <= high
    assert result.after.ece < result.before.ece
    assert 0 < result.threshold < 1 and result.calibrator.method == "platt"
    with pytest.raises(ValueError, match="at least 5 bona fide"):
        recalibrate(s[:6], y[:6], types[:6], 0.9, "eer")


def test_calibrators_and_metrics_by_hand() -> None:
    platt = Calibrator("platt", a=2.0, b=-1.0)
    assert platt(np.array([0.5]))[0] == pytest.approx(1 / (1 + math.e))  # expit(2·0 − 1)
    iso = Calibrator.from_dict({"method": "isotonic", "x": [0.1, 0.9], "y": [0.0, 1.0]})
    assert iso(np.array([0.5]))[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown calibration"):
        Calibrator.from_dict({"method": "magic"})
    p = np.array([0.05, 0.15, 0.95, 0.85])
    y = np.array([0, 0, 1, 0])
    _mean_p, rate, counts = reliability(p, y, bins=2)
    assert counts.tolist() == [2, 2] and rate.tolist() == [0.0, 0.5]
    # ECE = ½·|0 − 0.10| + ½·|0.5 − 0.90| = 0.25
    assert expected_calibration_error(p, y, bins=2) == pytest.approx(0.25)
    iso_fit = fit_calibrator(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]),
                             "isotonic")
    assert iso_fit(np.array([0.15]))[0] == 0.0 and iso_fit(np.array([0.85]))[0] == 1.0
    low, high = bootstrap_ci(lambda a, b: float(np.mean(a)), np.array([0.0, 1.0] * 10),
                             np.array([0, 1] * 10), n=100)
    assert low <= 0.5 <= high


def _face() -> FaceDetection:
    return FaceDetection(FaceBox(10, 90, 90, 10), True, "blazeface", 1)


def test_profile_decides_on_its_calibrated_probability(tmp_path) -> None:
    profile = Profile("lobby", "apcer<=5%", 0.3, {"method": "platt", "a": 1.0, "b": 2.0},
                      retry_band=0.0, fusion="rule")
    save_profile(tmp_path, profile)
    loaded = load_profiles(tmp_path)["lobby"]
    assert loaded == profile
    outcomes = {"quality": TestOutcome(score=0.2, threshold=0.5)}
    plain = combine(_face(), outcomes, 0.1, NormalisedLogOddsFusion())
    assert plain.decision == "spoof" and plain.probability is None
    tuned = combine(_face(), outcomes, 0.1, NormalisedLogOddsFusion(), loaded)
    # fused score = expit(logit(0.2) − logit(0.5)) = 0.2; calibrated = expit(logit(0.2) + 2)
    expected = 1 / (1 + math.exp(-(math.log(0.25) + 2)))
    assert tuned.probability == pytest.approx(expected, abs=1e-6)
    assert tuned.decision == "live" and tuned.threshold == 0.3
    assert tuned.operating_point == "apcer<=5%" and tuned.fusion.endswith("@lobby")


def test_bad_profiles_are_refused(tmp_path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "x.json").write_text(json.dumps({"name": "y", "operating_point": "eer",
                                               "threshold": 0.5,
                                               "calibration": {"method": "platt", "a": 1,
                                                               "b": 0}}))
    with pytest.raises(ModelError, match=r"must be named y\.json"):
        load_profiles(tmp_path)
    (folder / "x.json").write_text('{"name": "x", "threshold": 2}')
    with pytest.raises(ModelError, match="malformed"):
        load_profiles(tmp_path)
    assert parse_key_profiles("alice=lobby, bob=kiosk") == {"alice": "lobby", "bob": "kiosk"}
    with pytest.raises(ValueError, match="bad entry"):
        parse_key_profiles("alice")
