"""ISO/IEC 30107-3 metrics, reports and plots (common.evaluation)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from common.evaluation import (
    EvaluationReport,
    acer,
    apcer,
    apcer_max,
    apcer_per_attack_type,
    auc,
    bpcer,
    bpcer_at_apcer,
    combine_reports,
    confusion,
    equal_error_rate,
    evaluate,
    hter,
    threshold_at_operating_point,
    write_report,
)

# 4 bona fide, 3 print + 3 replay attacks; threshold 0.5 (accepted when score >= 0.5).
HAND_SCORES = [0.9, 0.8, 0.6, 0.3, 0.1, 0.5, 0.2, 0.7, 0.55, 0.4]
HAND_LABELS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
HAND_TYPES = ["none"] * 4 + ["print"] * 3 + ["replay"] * 3


def _random_set(seed: int, n_bf: int = 300, n_print: int = 200, n_replay: int = 150):
    """Overlapping Gaussian scores, replay harder than print; ties included."""
    rng = np.random.default_rng(seed)
    s = np.r_[rng.normal(1.0, 1.0, n_bf), rng.normal(-1.0, 1.0, n_print),
              rng.normal(0.3, 1.0, n_replay)]
    s = np.round(s, 2)  # force tied scores
    y = np.r_[np.ones(n_bf, int), np.zeros(n_print + n_replay, int)]
    t = np.array(["none"] * n_bf + ["print"] * n_print + ["replay"] * n_replay)
    return s, y, t


# ------------------------------------------------------------ closed form


def test_hand_computed_rates_at_threshold():
    s, y, t = HAND_SCORES, HAND_LABELS, HAND_TYPES
    per_type = apcer_per_attack_type(s, y, t, 0.5)
    assert per_type == {"print": pytest.approx(1 / 3), "replay": pytest.approx(2 / 3)}
    assert apcer_max(s, y, t, 0.5) == pytest.approx(2 / 3)
    assert apcer(s, y, 0.5) == pytest.approx(3 / 6)
    assert bpcer(s, y, 0.5) == pytest.approx(1 / 4)
    assert acer(s, y, t, 0.5) == pytest.approx((2 / 3 + 1 / 4) / 2)  # 11/24
    assert hter(s, y, 0.5) == pytest.approx((1 / 2 + 1 / 4) / 2)
    # rows truth (attack, bona fide), columns decision (attack, bona fide)
    assert confusion(s, y, 0.5).tolist() == [[3, 3], [1, 3]]


def test_score_equal_to_threshold_is_accepted():
    # attack at exactly 0.5 is accepted, bona fide at exactly 0.5 is not rejected
    assert apcer([0.5, 0.9], [0, 1], 0.5) == 1.0
    assert bpcer([0.5, 0.1], [1, 0], 0.5) == 0.0
    assert bpcer([0.5, 0.1], [1, 0], np.nextafter(0.5, 1)) == 1.0


def test_single_attack_type_and_pooling():
    s, y = HAND_SCORES, HAND_LABELS
    one_type = ["none"] * 4 + ["mask"] * 6
    assert apcer_per_attack_type(s, y, one_type, 0.5) == {"mask": 0.5}
    assert apcer_per_attack_type(s, y, None, 0.5) == {"attack": 0.5}
    assert apcer_max(s, y, one_type, 0.5) == apcer(s, y, 0.5)
    assert acer(s, y, one_type, 0.5) == hter(s, y, 0.5)


def test_bona_fide_attack_type_entries_are_ignored():
    t = ["print", "replay", "whatever", "none", *HAND_TYPES[4:]]
    assert apcer_per_attack_type(HAND_SCORES, HAND_LABELS, t, 0.5) == apcer_per_attack_type(
        HAND_SCORES, HAND_LABELS, HAND_TYPES, 0.5
    )
    assert "none" not in apcer_per_attack_type(HAND_SCORES, HAND_LABELS, t, 0.5)


# ------------------------------------------------------------------- errors


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        equal_error_rate([0.1, np.nan, 0.9], [0, 1, 1])
    with pytest.raises(ValueError, match="NaN"):
        bpcer([0.1, np.nan], [1, 1], 0.5)
    with pytest.raises(ValueError, match="length"):
        bpcer([0.1, 0.2], [1], 0.5)
    with pytest.raises(ValueError, match="labels must be"):
        bpcer([0.1, 0.2], [1, 2], 0.5)
    with pytest.raises(ValueError, match="no attack type"):
        apcer_per_attack_type([0.1, 0.9], [0, 1], ["none", "none"], 0.5)
    with pytest.raises(ValueError, match="entries"):
        apcer_per_attack_type([0.1, 0.9], [0, 1], ["print"], 0.5)
    with pytest.raises(ValueError, match="unknown operating point"):
        threshold_at_operating_point(HAND_SCORES, HAND_LABELS, "far=0.1")


@pytest.mark.parametrize(
    "call",
    [
        lambda s, y: equal_error_rate(s, y),
        lambda s, y: auc(s, y),
        lambda s, y: bpcer_at_apcer(s, y, 0.05),
        lambda s, y: hter(s, y, 0.5),
        lambda s, y: acer(s, y, None, 0.5),
        lambda s, y: evaluate(s, y),
    ],
)
def test_figures_needing_both_classes(call):
    with pytest.raises(ValueError, match="needs attack samples"):
        call([0.2, 0.7, 0.9], [1, 1, 1])
    with pytest.raises(ValueError, match="needs bona fide samples"):
        call([0.2, 0.7, 0.9], [0, 0, 0])


def test_one_sided_figures_need_only_their_class():
    assert bpcer([0.2, 0.7, 0.9], [1, 1, 1], 0.5) == pytest.approx(1 / 3)
    assert apcer([0.2, 0.7, 0.9], [0, 0, 0], 0.5) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="needs bona fide"):
        bpcer([0.2, 0.7], [0, 0], 0.5)
    with pytest.raises(ValueError, match="needs attack"):
        apcer_per_attack_type([0.2, 0.7], [1, 1], None, 0.5)


# ---------------------------------------------------------------------- EER


def _brute_force_eer(s: np.ndarray, y: np.ndarray) -> float:
    """Sweep every distinct threshold (plus one above the top), no sklearn."""
    grid = np.r_[np.nextafter(s.max(), np.inf), np.unique(s)[::-1]]
    a = np.array([np.mean(s[y == 0] >= t) for t in grid])
    b = np.array([np.mean(s[y == 1] < t) for t in grid])
    for i in range(1, grid.size):
        if a[i] >= b[i]:
            if a[i] == b[i]:
                return float(a[i])
            # intersect the segment (a[i-1], b[i-1]) -> (a[i], b[i]) with a == b
            d0, d1 = a[i - 1] - b[i - 1], a[i] - b[i]
            w = -d0 / (d1 - d0)
            return float(a[i - 1] + w * (a[i] - a[i - 1]))
    raise AssertionError("no crossing")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eer_matches_brute_force_sweep(seed):
    s, y, _ = _random_set(seed)
    eer, thr = equal_error_rate(s, y)
    assert eer == pytest.approx(_brute_force_eer(s, y), abs=1e-12)
    # and it lies within one sample's step of the closest discrete operating point
    grid = np.unique(s)
    gaps = [abs(apcer(s, y, t) - bpcer(s, y, t)) for t in grid]
    t_best = grid[int(np.argmin(gaps))]
    best = 0.5 * (apcer(s, y, t_best) + bpcer(s, y, t_best))
    assert abs(eer - best) <= 1 / min((y == 0).sum(), (y == 1).sum())
    # the returned threshold brackets the EER between its two error rates
    assert apcer(s, y, thr) <= eer + 1e-12
    assert bpcer(s, y, thr) >= eer - 1e-12


def test_eer_separable_and_degenerate():
    eer, thr = equal_error_rate([0.9, 0.8, 0.7, 0.3, 0.2], [1, 1, 1, 0, 0])
    assert eer == 0.0
    assert apcer([0.9, 0.8, 0.7, 0.3, 0.2], [1, 1, 1, 0, 0], thr) == 0.0
    assert bpcer([0.9, 0.8, 0.7, 0.3, 0.2], [1, 1, 1, 0, 0], thr) == 0.0
    assert equal_error_rate([0.4] * 6, [1, 1, 1, 0, 0, 0])[0] == pytest.approx(0.5)
    # fully inverted scores: every threshold errs on one side or the other
    assert equal_error_rate([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])[0] == pytest.approx(1.0)


def test_eer_hand_interpolated():
    # bona fide 0.6, 0.4; attacks 0.5, 0.1. Vertices (APCER, BPCER):
    # t>0.6 (0,1); t=0.6 (0,.5); t=0.5 (.5,.5) -> exact crossing at 0.5.
    assert equal_error_rate([0.6, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == (0.5, 0.5)
    # bona fide 0.9, 0.6, 0.4 ; attacks 0.5, 0.1: t=0.6 gives (0, 1/3), t=0.5 gives
    # (1/2, 1/3): segment crosses APCER = BPCER at 1/3, two thirds of the way.
    eer, thr = equal_error_rate([0.9, 0.6, 0.4, 0.5, 0.1], [1, 1, 1, 0, 0])
    assert eer == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.6 + (2 / 3) * (0.5 - 0.6))


# ------------------------------------------------------------ BPCER@APCER


def test_bpcer_at_apcer_honours_worst_type():
    bf = [0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45]
    prt = [0.3, 0.28, 0.25, 0.22, 0.2, 0.18, 0.15, 0.12, 0.1, 0.05]
    rep = [0.88, 0.62, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05]
    s = bf + prt + rep
    y = [1] * 10 + [0] * 20
    t = ["none"] * 10 + ["print"] * 10 + ["replay"] * 10
    # worst type replay may have 1 of 10 accepted: 0.62 must be rejected -> threshold 0.65
    b, thr = bpcer_at_apcer(s, y, 0.10, t)
    assert thr == 0.65
    assert b == pytest.approx(0.4)
    assert apcer_max(s, y, t, thr) <= 0.10
    # pooling the 20 attacks allows 2 accepted: threshold 0.45, which breaks replay
    b_pooled, thr_pooled = bpcer_at_apcer(s, y, 0.10)
    assert (b_pooled, thr_pooled) == (0.0, 0.45)
    assert apcer_max(s, y, t, thr_pooled) == pytest.approx(0.2)


@pytest.mark.parametrize("target", [0.01, 0.05, 0.1, 0.29])
def test_bpcer_at_apcer_threshold_is_the_lowest_admissible(target):
    s, y, t = _random_set(3)
    b, thr = bpcer_at_apcer(s, y, target, t)
    assert apcer_max(s, y, t, thr) <= target
    assert b == bpcer(s, y, thr)
    lower = np.unique(s)[np.unique(s) < thr]
    if lower.size:  # the next lower threshold breaks the target for some type
        assert apcer_max(s, y, t, lower.max()) > target


def test_bpcer_at_apcer_extremes():
    s, y = [0.9, 0.2, 0.8, 0.1], [1, 1, 0, 0]
    assert bpcer_at_apcer(s, y, 1.0) == (0.0, 0.1)  # everything may be accepted
    b, thr = bpcer_at_apcer(s, y, 0.0)
    assert thr == 0.9 and b == 0.5
    with pytest.raises(ValueError, match="apcer_target"):
        bpcer_at_apcer(s, y, 1.5)


def test_operating_points():
    s, y, t = _random_set(4)
    assert threshold_at_operating_point(s, y, "eer") == equal_error_rate(s, y)[1]
    assert threshold_at_operating_point(s, y, "apcer=0.05", t) == bpcer_at_apcer(
        s, y, 0.05, t
    )[1]
    assert threshold_at_operating_point(s, y, "APCER = 5%", t) == threshold_at_operating_point(
        s, y, "apcer=0.05", t
    )
    thr = threshold_at_operating_point(s, y, "bpcer=0.1")
    assert bpcer(s, y, thr) <= 0.1
    higher = np.unique(s)[np.unique(s) > thr]
    assert bpcer(s, y, higher.min()) > 0.1  # it is the highest such threshold


# ---------------------------------------------------------------------- AUC


def test_auc_is_pairwise_ranking_probability():
    s, y, _ = _random_set(5, n_bf=80, n_print=50, n_replay=40)
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    expected = np.mean((pos > neg) + 0.5 * (pos == neg))
    assert auc(s, y) == pytest.approx(expected, abs=1e-12)
    assert auc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert auc([0.5] * 4, [1, 0, 1, 0]) == 0.5


# ------------------------------------------------------------------ reports


def test_evaluate_fitted_vs_given_threshold():
    s, y, t = HAND_SCORES, HAND_LABELS, HAND_TYPES
    given = evaluate(s, y, t, threshold=0.5)
    assert given.threshold_source == "given" and not given.threshold_fitted
    assert given.operating_point is None
    assert given.n_bona_fide == 4 and given.n_attacks == {"print": 3, "replay": 3}
    assert given.apcer_max == pytest.approx(2 / 3)
    assert given.acer == pytest.approx(11 / 24)
    assert given.confusion == [[3, 3], [1, 3]]
    assert not any("optimistic" in n for n in given.notes)
    assert any("1 %" in n for n in given.notes)  # only 3 attacks per type

    fitted = evaluate(s, y, t, operating_point="apcer=0.5")
    assert fitted.threshold_fitted and fitted.operating_point == "apcer=0.5"
    assert any("optimistic" in n for n in fitted.notes)
    assert fitted.threshold == bpcer_at_apcer(s, y, 0.5, t)[1]
    eer_fit = evaluate(s, y, t)
    assert eer_fit.threshold == eer_fit.eer_threshold


def test_write_report_files_and_json_round_trip(tmp_path):
    s, y, t = _random_set(6, n_bf=120, n_print=80, n_replay=60)
    report = evaluate(s, y, t)
    paths = write_report(
        report, tmp_path / "out", "Unit test", s, y, t, extra_sections={"Setup": "seed 6"}
    )
    assert set(paths) == {"json", "md", "roc", "det", "scores"}
    data = json.loads(paths["json"].read_text())
    assert data["title"] == "Unit test"
    back = EvaluationReport.from_dict(data)
    assert back.to_dict() == report.to_dict()
    assert back.threshold == report.threshold  # thresholds are not rounded
    assert data["apcer_per_type"]["replay"] == round(report.apcer_per_type["replay"], 6)
    md = paths["md"].read_text()
    for needle in ("# Unit test", "| replay | 60 |", "BPCER20", "BPCER100", "## Setup",
                   "seed 6", "](det.png)", "](roc.png)", "](scores.png)", "optimistic"):
        assert needle in md
    for key in ("roc", "det", "scores"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(paths[key]) as im:
            im.verify()
        with Image.open(paths[key]) as im:
            assert im.size[0] >= 300 and im.size[1] >= 200


def test_write_report_degenerate_scores(tmp_path):
    s, y = [0.5] * 6, [1, 1, 1, 0, 0, 0]
    report = evaluate(s, y, threshold=0.5)
    assert report.eer == pytest.approx(0.5)
    assert report.apcer_per_type == {"attack": 1.0}
    paths = write_report(report, tmp_path, "flat", s, y)
    assert json.loads(paths["json"].read_text())["auc"] == 0.5
    assert paths["det"].stat().st_size > 0


def test_combine_reports_table():
    s, y, t = _random_set(7, n_bf=60, n_print=40, n_replay=40)
    fixed = evaluate(s[:70], y[:70], t[:70], threshold=0.0)  # bona fide + print only
    pooled = evaluate(s, y, t)
    table = combine_reports({"held-out A": fixed, "pooled": pooled})
    lines = table.strip().splitlines()
    assert lines[0].startswith("| Evaluation |")
    assert lines[2].startswith("| held-out A | 60 | 10 |")
    assert lines[3].startswith("| pooled | 60 | 80 |") and "(fitted)" in lines[3]
    assert "(print)" in lines[2]
    with pytest.raises(ValueError):
        combine_reports({})


def test_oof_scores_round_trip(tmp_path) -> None:
    import numpy as np

    from common.evaluation.oof import read_oof_scores, write_oof_scores

    path = write_oof_scores(tmp_path / "e" / "oof_scores.csv", ["d/a", "d/b"], ["c1", "c2"],
                            [1, 0], ["none", "print"], [0.25, float("nan")])
    back = read_oof_scores(path)
    assert back.keys == ["d/a", "d/b"] and back.labels.tolist() == [1, 0]
    assert back.scores[0] == 0.25 and np.isnan(back.scores[1])
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    import pytest

    with pytest.raises(ValueError, match="not an out-of-fold score file"):
        read_oof_scores(tmp_path / "bad.csv")
