"""Fusion trained on out-of-fold scores: every subset of tests, method comparison,
operating points and the retry band (against hand-computed values)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from common.evaluation.metrics import threshold_at_operating_point
from common.evaluation.oof import write_oof_scores
from common.fusion import LinearLogOddsFusion, decide, load_fusion
from common.result import TestOutcome
from workers.fusion.train import (
    fit_linear,
    load_score_table,
    logit,
    subsets,
    train_fusion,
)


def _oof_files(tmp_path, rng, drop_cnn_every: int = 7):
    """Quality weak, cnn strong; 4 collections; cnn missing on some images."""
    n = 240
    y = np.arange(n) % 2
    colls = [f"c{(i // 2) % 4}" for i in range(n)]
    keys = [f"set/{i}" for i in range(n)]
    types = np.where(y == 1, "none", "print")
    quality = 1 / (1 + np.exp(-(0.6 * (2 * y - 1) + rng.normal(0, 1, n))))
    cnn = 1 / (1 + np.exp(-(2.5 * (2 * y - 1) + rng.normal(0, 1, n))))
    cnn[::drop_cnn_every] = np.nan
    write_oof_scores(tmp_path / "q.csv", keys, colls, y, types, quality)
    write_oof_scores(tmp_path / "c.csv", keys, colls, y, types, cnn)
    return {"quality": tmp_path / "q.csv", "cnn": tmp_path / "c.csv"}


def test_score_table_joins_and_filters(tmp_path) -> None:
    files = _oof_files(tmp_path, np.random.default_rng(0))
    table = load_score_table(files)
    assert table.tests == ["cnn", "quality"] and table.S.shape == (240, 2)
    assert table.present(["cnn", "quality"]).sum() == 240 - len(range(0, 240, 7))
    with pytest.raises(ValueError, match="no scored image"):
        load_score_table(files, datasets=["other"])


def test_subsets_and_rule_weights() -> None:
    assert subsets(["quality", "cnn"]) == [("cnn", "quality"), ("cnn",), ("quality",)]
    w, b = fit_linear("rule", np.zeros((2, 2)), np.array([0, 1]), [0.5, 0.8])
    assert w.tolist() == [0.5, 0.5] and b == pytest.approx(-math.log(4) / 2)
    with pytest.raises(ValueError, match="unknown fusion method"):
        fit_linear("svm", np.zeros((2, 1)), np.array([0, 1]))


def test_train_fusion_every_subset_and_the_best_method(tmp_path) -> None:
    files = _oof_files(tmp_path, np.random.default_rng(1))
    out = tmp_path / "fusion"
    card = train_fusion(files, out, {"quality": 0.5, "cnn": 0.5}, operating_point="apcer<=5%",
                        retry_band=0.5, version="t")
    text = card.read_text()
    for method in ("rule", "lda", "logistic"):
        assert (f"| {method} | cnn + quality |" in text
                or f"| **{method}** | cnn + quality |" in text)
    assert "| cnn |" in text and "| quality |" in text and "Retry band" in text
    fusion = load_fusion(tmp_path)
    assert isinstance(fusion, LinearLogOddsFusion) and fusion.operating_point == "apcer<=5%"
    assert set(fusion.subsets) == {frozenset({"cnn", "quality"}), frozenset({"cnn"}),
                                   frozenset({"quality"})}
    both = {"cnn": TestOutcome(score=0.9), "quality": TestOutcome(score=0.4)}
    only_quality = {"cnn": TestOutcome(score=None, error="model_unavailable: x"),
                    "quality": TestOutcome(score=0.4)}
    for outcomes, subset in ((both, {"cnn", "quality"}), (only_quality, {"quality"})):
        fused = fusion.fuse(outcomes)
        model = fusion.subsets[frozenset(subset)]
        z = model.bias + sum(w * math.log(outcomes[t].score / (1 - outcomes[t].score))
                             for t, w in model.weights.items())
        assert fused.score == pytest.approx(1 / (1 + math.exp(-z)))
        assert fused.threshold == model.threshold and fused.probability is not None
        assert fused.decision == decide(fused.score, model.threshold, 0.5)
    assert (out / "evaluation" / "reliability.png").is_file()
    assert (out / "evaluation" / "oof_scores.csv").is_file()


def test_operating_point_arithmetic_by_hand() -> None:
    # 20 attacks scored 0.00..0.19 (+0.005), 10 bona fide at 0.5..0.95.
    attacks = np.arange(20) / 100 + 0.005
    bona = 0.5 + np.arange(10) / 20
    s = np.concatenate([attacks, bona])
    y = np.array([0] * 20 + [1] * 10)
    # APCER ≤ 5 %: one of 20 attacks may pass: the threshold must reject the second
    # highest attack (0.185), so it sits just above 0.185 and at or below 0.195.
    t5 = threshold_at_operating_point(s, y, "apcer<=5%")
    assert 0.185 < t5 <= 0.195
    assert threshold_at_operating_point(s, y, "apcer=0.05") == t5
    assert np.mean(s[y == 0] >= t5) == pytest.approx(0.05)
    t1 = threshold_at_operating_point(s, y, "apcer<=1%")  # none may pass
    assert 0.195 < t1 <= 0.5 and np.mean(s[y == 0] >= t1) == 0.0
    with pytest.raises(ValueError, match="unknown operating point"):
        threshold_at_operating_point(s, y, "far<=1%")


def test_retry_band_by_hand() -> None:
    t = 0.5  # logit 0
    assert decide(0.6, t, 0.5) == "retry"       # logit 0.405 < 0.5
    assert decide(0.65, t, 0.5) == "live"       # logit 0.619
    assert decide(0.35, t, 0.5) == "spoof"      # logit −0.619
    assert decide(0.4, t, 0.5) == "retry"
    assert decide(0.6, t, 0.0) == "live" and decide(None, t, 0.5) == "retry"
    assert logit(np.array([0.5]))[0] == 0.0


def test_a_score_inside_the_band_is_a_retry_with_its_reason() -> None:
    from common.pipeline import RETRY_BAND, combine
    from common.result import FaceBox, FaceDetection

    fusion = LinearLogOddsFusion("lin", 0.5, {"quality": {"weights": {"quality": 1.0},
                                                          "bias": 0.0}},
                                 operating_point="eer", retry_band=0.5)
    face = FaceDetection(FaceBox(10, 90, 90, 10), True, "blazeface", 1)
    inside = combine(face, {"quality": TestOutcome(score=0.6)}, 0.1, fusion)
    assert inside.decision == "retry" and RETRY_BAND in inside.reasons
    assert inside.operating_point == "eer" and inside.score == pytest.approx(0.6)
    outside = combine(face, {"quality": TestOutcome(score=0.7)}, 0.1, fusion)
    assert outside.decision == "live" and RETRY_BAND not in outside.reasons


# --- the default operating point and honest leave-one-collection-out (issue 16) ---------
def test_worst_bpcer_threshold_by_hand() -> None:
    from workers.fusion.operating import worst_bpcer_threshold

    s = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.8, 0.05, 0.6, 0.7])
    y = np.array([1, 1, 1, 1, 1, 1, 0, 1, 1])
    c = np.array(["a", "a", "a", "a", "b", "b", "a", "b", "b"])
    # a's live: .1 .2 .3 .4 ; b's live: .6 .7 .8 .9
    assert worst_bpcer_threshold(s, y, c, 0.0) == pytest.approx(0.1)    # nobody refused
    assert worst_bpcer_threshold(s, y, c, 0.25) == pytest.approx(0.2)   # one of a's four
    assert worst_bpcer_threshold(s, y, c, 0.5) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="bona fide"):
        worst_bpcer_threshold(s[6:7], y[6:7], c[6:7], 0.1)


def test_the_rule_meets_its_caps_with_the_lowest_apcer() -> None:
    from workers.fusion.operating import (
        InnerFold,
        LocoBpcerPoint,
        choose_worst_bpcer,
        parse_point,
    )

    point = parse_point("loco-bpcer<=10%/25%")
    assert point == LocoBpcerPoint(0.10, 0.25) and point.name == "loco-bpcer<=10%/25%"
    assert parse_point("apcer<=5%") == "apcer<=5%"
    rng = np.random.default_rng(3)
    folds = []
    for _ in range(5):  # training live ~ N(0.6, .1); held-out live shifted down to 0.55
        train = np.concatenate([rng.normal(0.6, 0.1, 50), rng.normal(0.2, 0.1, 50)])
        labels = np.array([1] * 50 + [0] * 50)
        test = np.concatenate([rng.normal(0.55, 0.1, 40), rng.normal(0.2, 0.1, 40)])
        folds.append(InnerFold(train, labels, np.array(["x"] * 100), test,
                               np.array([1] * 40 + [0] * 40)))
    choice = choose_worst_bpcer(folds, point)
    assert choice.feasible
    picked = next(r for r in choice.candidates if r["q"] == choice.q)
    assert picked["bpcer_mean"] <= 0.10 and picked["bpcer_worst"] <= 0.25
    # every other candidate that meets both caps accepts at least as many attacks
    for row in choice.candidates:
        if row["bpcer_mean"] <= 0.10 and row["bpcer_worst"] <= 0.25:
            assert row["apcer_mean"] >= picked["apcer_mean"]
    impossible = choose_worst_bpcer(folds, LocoBpcerPoint(0.0, 0.0))
    assert not impossible.feasible and impossible.q == 0.0


def test_loco_never_lets_the_held_out_collection_into_fitting_or_thresholding(tmp_path
                                                                              ) -> None:
    """Scramble one collection's scores: its fold's thresholds (default and strict
    points) do not move; only what is judged on it does."""
    from workers.fusion.train import loco

    files = _oof_files(tmp_path, np.random.default_rng(5))
    table = load_score_table(files)
    scrambled = load_score_table(files)
    held = table.collections == "c2"
    rng = np.random.default_rng(9)
    scrambled.S[held] = rng.uniform(0.001, 0.999, scrambled.S[held].shape)
    for point in ("loco-bpcer<=10%/25%", "apcer<=5%"):
        a = loco("logistic", table, point, {"quality": 0.5, "cnn": 0.5})
        b = loco("logistic", scrambled, point, {"quality": 0.5, "cnn": 0.5})
        for subset in a:
            rows = held & ~np.isnan(a[subset].oof_threshold)
            assert rows.any()
            np.testing.assert_array_equal(a[subset].oof_threshold[rows],
                                          b[subset].oof_threshold[rows])
            assert not np.allclose(a[subset].oof[rows], b[subset].oof[rows])
            assert a[subset].per_collection["c2"].threshold == \
                b[subset].per_collection["c2"].threshold  # c2's own fold


def test_the_shipped_model_takes_every_named_point_and_a_calibration(tmp_path) -> None:
    from common.errors import ModelError

    files = _oof_files(tmp_path, np.random.default_rng(2))
    train_fusion(files, tmp_path / "fusion", {"quality": 0.5, "cnn": 0.5}, version="t")
    default = load_fusion(tmp_path)
    strict = load_fusion(tmp_path, "apcer<=1%")
    assert default.operating_point == "loco-bpcer<=10%/25%"
    assert strict.operating_point == "apcer<=1%"
    import json

    shipped = json.loads((tmp_path / "fusion" / "model.json").read_text())["params"]["subsets"]
    for subset, model in default.subsets.items():
        points = shipped["+".join(sorted(subset))]["operating_points"]
        assert model.threshold == points["loco-bpcer<=10%/25%"]
        assert strict.subsets[subset].threshold == points["apcer<=1%"]
        assert model.calibrator is not None
    with pytest.raises(ModelError, match=r"OPERATING_POINT='eer': .* no threshold for it"):
        load_fusion(tmp_path, "eer")
    with pytest.raises(ModelError, match="no trained fusion"):
        load_fusion(tmp_path / "nowhere", "apcer<=5%")
