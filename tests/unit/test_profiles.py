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
from common.fusion import DEFAULT_RULE_NAME, DEFAULT_RULE_VERSION, NormalisedLogOddsFusion
from common.pipeline import combine
from common.profiles import (
    Profile,
    ProfileCatalog,
    ProfileMismatchError,
    load_profiles,
    parse_key_profiles,
    save_profile,
)
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


#: The model of the outcomes below and of the profiles fitted on them.
WIQA = {"name": "wiqa-lda", "version": "2026.11.29"}
CNN = {"name": "efficientnet", "version": "2026-11-29"}


def _profile(name: str = "lobby", tests: tuple[str, ...] = ("quality",), threshold: float = 0.3,
             calibration: dict | None = None, retry_band: float = 0.0) -> Profile:
    models = {"quality": WIQA, "cnn": CNN}
    return Profile(name, "apcer<=5%", threshold,
                   calibration or {"method": "platt", "a": 1.0, "b": 2.0},
                   tests, {t: models[t] for t in tests}, retry_band, DEFAULT_RULE_NAME,
                   DEFAULT_RULE_VERSION)


def _outcome(score: float | None, model: dict = WIQA, threshold: float = 0.5) -> TestOutcome:
    return TestOutcome(score=score, model=model["name"], version=model["version"],
                       threshold=threshold, error=None if score is not None else "timeout: x")


def test_profile_decides_on_its_calibrated_probability(tmp_path) -> None:
    profile = _profile()
    save_profile(tmp_path, profile)
    loaded = load_profiles(tmp_path)["lobby"]
    assert loaded == profile
    outcomes = {"quality": _outcome(0.2)}
    plain = combine(_face(), outcomes, 0.1, NormalisedLogOddsFusion())
    assert plain.decision == "spoof" and plain.probability is None and plain.fused_score is None
    tuned = combine(_face(), outcomes, 0.1, NormalisedLogOddsFusion(), loaded)
    # fused score = expit(logit(0.2) − logit(0.5)) = 0.2; calibrated = expit(logit(0.2) + 2)
    expected = 1 / (1 + math.exp(-(math.log(0.25) + 2)))
    assert tuned.probability == pytest.approx(expected, abs=1e-6)
    assert tuned.decision == "live" and tuned.threshold == 0.3
    # score and threshold on one scale: the score is the calibrated probability
    assert tuned.score == tuned.probability and tuned.score >= tuned.threshold
    assert tuned.fused_score == pytest.approx(0.2)
    assert tuned.operating_point == "apcer<=5%" and tuned.fusion.endswith("@lobby")


def test_a_profile_is_never_applied_to_other_tests_models_or_fusion() -> None:
    """Issue 15.1: a profile fitted on quality+cnn applied to a quality-only job accepted
    every attack. It must refuse any job it was not fitted on."""
    both = _profile("both", ("quality", "cnn"), threshold=0.003,
                    calibration={"method": "platt", "a": 1.0, "b": 8.0})
    attack = {"quality": _outcome(0.05)}
    with pytest.raises(ProfileMismatchError, match=r"cnn\+quality.*ran quality") as info:
        combine(_face(), attack, 0.1, NormalisedLogOddsFusion(), both)
    assert info.value.code == "profile_mismatch" and info.value.http_status == 422
    newer = {"quality": _outcome(0.05, {"name": "wiqa-lda", "version": "2027.01.01"}),
             "cnn": _outcome(0.05, CNN)}
    with pytest.raises(ProfileMismatchError, match=r"2026\.11\.29.*2027\.01\.01"):
        combine(_face(), newer, 0.1, NormalisedLogOddsFusion(), both)
    other_fusion = NormalisedLogOddsFusion()
    other_fusion.version = "2"  # type: ignore[misc]
    with pytest.raises(ProfileMismatchError, match="fusion"):
        combine(_face(), {"quality": _outcome(0.05), "cnn": _outcome(0.05, CNN)}, 0.1,
                other_fusion, both)
    with pytest.raises(ProfileMismatchError, match="fitted on the tests quality"):
        _profile().check_tests(["cnn", "quality"])
    _profile().check_tests(["quality"])


def test_a_profile_whose_test_failed_is_not_applied_and_answers_retry() -> None:
    """A job whose cnn test failed is fused by the quality-only model: a profile fitted on
    quality+cnn does not calibrate that score, so no decision but retry."""
    both = _profile("both", ("quality", "cnn"), calibration={"method": "platt", "a": 1.0,
                                                             "b": 9.0})
    outcomes = {"quality": _outcome(0.9), "cnn": _outcome(None, CNN)}
    result = combine(_face(), outcomes, 0.1, NormalisedLogOddsFusion(), both)
    assert result.decision == "retry"
    assert "profile_not_applicable:both" in result.reasons and "test_failed:cnn" in result.reasons
    assert "score_in_retry_band" not in result.reasons
    # the fusion's own score and threshold, on one scale, and no calibrated probability
    assert result.fused_score is None and result.probability is None
    assert result.threshold == 0.5 and result.score == pytest.approx(0.9)


@pytest.mark.parametrize("seed", range(5))
def test_score_and_threshold_are_on_one_scale_whatever_decides(seed: int) -> None:
    """Issue 15.3: with a profile the result carried the fused score beside the profile's
    threshold on the calibrated probability. For every result: outside the retry band,
    ``decision == live`` exactly when ``score >= threshold``."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        band = float(rng.choice([0.0, 0.5]))
        profile = _profile(threshold=float(rng.uniform(0.001, 0.999)), retry_band=band,
                           calibration={"method": "platt", "a": float(rng.uniform(0.2, 3)),
                                        "b": float(rng.normal(0, 4))})
        outcomes = {"quality": _outcome(float(rng.uniform(0.0001, 0.9999)))}
        for chosen in (None, profile):
            r = combine(_face(), outcomes, 0.0, NormalisedLogOddsFusion(), chosen)
            clip = min(max(r.score, 1e-12), 1 - 1e-12)
            margin = abs(math.log(clip / (1 - clip))
                         - math.log(r.threshold / (1 - r.threshold)))
            if r.decision == "retry":
                assert margin < (band if chosen else 0.0) + 1e-9
            else:
                assert (r.decision == "live") == (r.score >= r.threshold), (r, chosen)
            if chosen is not None:
                assert r.score == r.probability


def test_profile_catalog_reloads_changed_files_and_keeps_a_good_set(tmp_path) -> None:
    """Issue 15.16: a profile written by `liveness calibrate` reaches a running service."""
    catalog = ProfileCatalog(tmp_path, check_s=0.0)
    assert catalog.all() == {}
    save_profile(tmp_path, _profile("kiosk"))
    assert set(catalog.all()) == {"kiosk"} and "kiosk" in catalog
    save_profile(tmp_path, _profile("kiosk", threshold=0.7))
    assert catalog.get("kiosk").threshold == 0.7
    (tmp_path / "profiles" / "broken.json").write_text("{not json")
    assert set(catalog.all()) == {"kiosk"} and "broken.json" in (catalog.error or "")
    (tmp_path / "profiles" / "broken.json").unlink()
    (tmp_path / "profiles" / "kiosk.json").unlink()
    assert catalog.all() == {} and catalog.error is None
    with pytest.raises(ModelError, match=r"not json|unreadable"):
        (tmp_path / "profiles" / "bad.json").write_text("{not json")
        ProfileCatalog(tmp_path)  # at start a bad profile is an error


def test_bad_profiles_are_refused(tmp_path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    good = _profile("y").to_dict()
    (folder / "x.json").write_text(json.dumps(good))
    with pytest.raises(ModelError, match=r"must be named y\.json"):
        load_profiles(tmp_path)
    # written before profiles recorded their tests and models: refused, not guessed
    old = {k: v for k, v in good.items() if k not in ("tests", "models")}
    (folder / "x.json").write_text(json.dumps({**old, "name": "x"}))
    with pytest.raises(ModelError, match="does not record the tests"):
        load_profiles(tmp_path)
    (folder / "x.json").write_text(json.dumps({**good, "name": "x", "threshold": 2}))
    with pytest.raises(ModelError, match="threshold must be in"):
        load_profiles(tmp_path)
    (folder / "x.json").write_text(json.dumps({**good, "name": "x", "models": {}}))
    with pytest.raises(ModelError, match="must name the model of each"):
        load_profiles(tmp_path)
    (folder / "x.json").write_text(json.dumps({**good, "name": "x", "calibration": 3}))
    with pytest.raises(ModelError, match="malformed"):
        load_profiles(tmp_path)
    assert parse_key_profiles("alice=lobby, bob=kiosk") == {"alice": "lobby", "bob": "kiosk"}
    with pytest.raises(ValueError, match="bad entry"):
        parse_key_profiles("alice")
