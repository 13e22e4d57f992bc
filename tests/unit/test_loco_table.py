"""The model cards' leave-one-collection-out table (common.evaluation.loco_table)."""

from __future__ import annotations

import numpy as np
import pytest

from common.evaluation import evaluate
from common.evaluation.loco_table import loco_summary, loco_table, reports_at_threshold

# Two collections. "a": 2 bona fide (0.9, 0.4), 2 print attacks (0.6, 0.1).
# "b": 2 bona fide (0.8, 0.7), 2 replay attacks (0.2, 0.75). One row nobody scored (NaN).
SCORES = np.array([0.9, 0.4, 0.6, 0.1, 0.8, 0.7, 0.2, 0.75, np.nan])
LABELS = np.array([1, 1, 0, 0, 1, 1, 0, 0, 1])
TYPES = np.array(["none", "none", "print", "print", "none", "none", "replay", "replay", "none"])
COLLS = np.array(["a"] * 4 + ["b"] * 5)


def test_each_collection_is_judged_at_the_one_given_threshold():
    at = reports_at_threshold(SCORES, LABELS, TYPES, COLLS, 0.5)
    assert list(at) == ["a", "b"]
    # a: bona fide 0.4 rejected, print 0.6 accepted
    assert (at["a"].bpcer, at["a"].apcer_max, at["a"].acer) == (0.5, 0.5, 0.5)
    # b: no bona fide rejected, replay 0.75 accepted; the unscored row is left out
    assert at["b"].n_bona_fide == 2
    assert (at["b"].bpcer, at["b"].apcer_max, at["b"].acer) == (0.0, 0.5, 0.25)
    assert all(r.threshold == 0.5 and not r.threshold_fitted for r in at.values())


def test_a_collection_without_both_classes_has_no_report_and_lengths_must_agree():
    only_live = np.array(["a", "a", "c", "c", "b", "b", "b", "b", "b"])
    assert "c" not in reports_at_threshold(SCORES, LABELS, TYPES, only_live, 0.5)
    with pytest.raises(ValueError, match="differ in length"):
        reports_at_threshold(SCORES[:-1], LABELS, TYPES, COLLS, 0.5)


def _folds():
    """Per-fold reports at thresholds of their own (as if chosen on the other collection)."""
    return {c: evaluate(SCORES[c == COLLS][:4], LABELS[c == COLLS][:4],
                        TYPES[c == COLLS][:4], threshold=t)
            for c, t in (("a", 0.3), ("b", 0.77))}


def test_the_summary_has_fold_means_and_the_shipped_thresholds_means_and_worst():
    folds, at = _folds(), reports_at_threshold(SCORES, LABELS, TYPES, COLLS, 0.5)
    s = loco_summary(folds, at)
    assert s["auc_mean"] == pytest.approx(np.mean([folds["a"].auc, folds["b"].auc]))
    assert s["auc_min"] == pytest.approx(min(folds["a"].auc, folds["b"].auc))
    assert s["hter_mean"] == pytest.approx(np.mean([folds["a"].hter, folds["b"].hter]))
    assert s["shipped_bpcer_mean"] == pytest.approx(0.25)
    assert s["shipped_bpcer_max"] == pytest.approx(0.5)
    assert s["shipped_acer_mean"] == pytest.approx(0.375)
    assert s["shipped_apcer_max"] == pytest.approx(0.5)
    assert loco_summary({}, {}) == {}


def test_the_table_has_a_row_per_collection_then_the_mean_and_worst_rows():
    folds, at = _folds(), reports_at_threshold(SCORES, LABELS, TYPES, COLLS, 0.5)
    lines = loco_table(folds, at, 0.5).splitlines()
    assert "ACER at 0.5000" in lines[0]
    assert [line.split("|")[1].strip() for line in lines[2:]] == [
        "a", "b", "**mean**", "**worst**"]
    cells = [c.strip() for c in lines[3].split("|")[1:-1]]
    b = folds["b"]
    assert cells[:4] == ["b", "2", "2", f"{b.auc:.3f}"]
    # fold threshold 0.77 on b: bona fide 0.7 rejected, no attack accepted
    assert cells[5:8] == ["0.0 %", "50.0 %", "25.0 %"]
    assert cells[8:] == ["50.0 %", "0.0 %", "25.0 %"]  # at the shipped 0.5
    worst = [c.strip("* ") for c in lines[5].split("|")[1:-1]]
    assert worst[3] == f"{min(folds['a'].auc, b.auc):.3f}"
    assert worst[8:] == ["50.0 %", "50.0 %", "50.0 %"]


def test_the_one_table_reads_every_shipped_model_and_says_when_figures_are_missing(
        tmp_path):
    """``liveness models table``: a row per model folder, its figures from model.json."""
    import json

    from click.testing import CliRunner

    from cli import main
    from common.config import PROJECT_ROOT
    from common.errors import ModelError
    from common.evaluation.loco_table import TABLE_KEYS, shipped_models_table
    from common.modelfolder import write_model_folder

    names = ["cnn", "depth3d", "fasnet", "quality", "fusion"]
    table = shipped_models_table(PROJECT_ROOT / "models", [*names, "mask3d"])
    rows = table.splitlines()[2:]
    assert [row.split(" | ")[0].lstrip("| ").split(" ")[0] for row in rows] == names  # no mask3d
    default = json.loads((PROJECT_ROOT / "models/fusion/model.json").read_text())
    headline = " + ".join(default["info"]["metrics"]["headline_tests"])
    assert rows[-1].startswith(f"| fusion ({headline}: the default job) |")
    for name, row in zip(names, rows, strict=True):
        info = json.loads((PROJECT_ROOT / "models" / name / "model.json").read_text())["info"]
        summary = info["metrics"]["summary"]
        assert set(TABLE_KEYS) <= set(summary), name
        assert f"| {summary['auc_mean']:.3f} | {summary['auc_min']:.3f} |" in row, name
        assert f"{100 * summary['shipped_bpcer_mean']:.1f} %" in row, name
    printed = CliRunner().invoke(main, ["models", "table"])
    assert printed.exit_code == 0, printed.output
    assert set(printed.output.strip().splitlines()) == set(table.splitlines())

    info = {"name": "old", "version": "1", "metrics": {"summary": {"auc_mean": 0.9}}}
    write_model_folder(tmp_path / "old", {"format": "x", "info": info}, {})
    assert "retrain" in shipped_models_table(tmp_path, ["old"])
    (tmp_path / "old" / "model.json").write_text(
        (tmp_path / "old" / "model.json").read_text().replace("0.9", "0.99"))
    with pytest.raises(ModelError, match="manifest_sha256"):
        shipped_models_table(tmp_path, ["old"])
