"""The `liveness` command end to end on a small generated dataset: train → score → evaluate."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data

from cli import main
from common.imageio import load_image
from common.pipeline import load_tests, score_image
from common.registry import default_registry
from workers.quality.model import QualityClassifier

SCENES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry")


def _scene(name: str, rng: np.random.Generator) -> np.ndarray:
    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.dstack([img] * 3)
    img = np.ascontiguousarray(img[..., :3])
    h, w = img.shape[:2]
    y, x = rng.integers(0, h // 4), rng.integers(0, w // 4)
    return cv2.resize(img[y : y + 3 * h // 4, x : x + 3 * w // 4], (320, 240),
                      interpolation=cv2.INTER_AREA)


def _recapture(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A crude print/screen recapture: blur, moiré-like stripes, noise."""
    out = cv2.GaussianBlur(rgb, (0, 0), 1.6).astype(np.float32)
    yy, xx = np.mgrid[: rgb.shape[0], : rgb.shape[1]]
    out += 8 * np.sin(0.9 * xx + 0.4 * yy)[..., None]
    out += rng.normal(0, 3, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> list[Path]:
    """Two 'collections' as folder+TSV datasets, 12 live and 12 attacks each."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    paths = []
    for coll in ("alpha", "beta"):
        folder = root / coll
        rows = ["path\tlabel\tattack_type\tsubject\tcollection"]
        for i in range(12):
            live = _scene(SCENES[i % len(SCENES)], rng)
            _write(folder / "live" / f"{i}.jpg", live)
            _write(folder / "spoof" / f"{i}.jpg", _recapture(live, rng))
            rows.append(f"live/{i}.jpg\tlive\tnone\t{coll}_{i % 3}\t{coll}")
            rows.append(f"spoof/{i}.jpg\tspoof\tprint\t{coll}_{i % 3}\t{coll}")
        (root / f"{coll}.tsv").write_text("\n".join(rows) + "\n")
        paths.append(folder)
    return paths


@pytest.fixture(scope="module")
def trained(datasets, tmp_path_factory) -> Path:
    models = tmp_path_factory.mktemp("models")
    result = CliRunner().invoke(main, [
        "train", "quality", *[arg for p in datasets for arg in ("--data", str(p))],
        "--out", str(models / "quality"), "--cache-dir", str(models / "cache"), "--jobs", "1",
    ])
    assert result.exit_code == 0, result.output
    return models


def test_train_writes_model_card_and_validation(trained):
    folder = trained / "quality"
    model = QualityClassifier.load(folder)
    assert model.info is not None and 0.0 < model.info.threshold < 1.0
    assert model.info.metrics["validation"] == "leave-one-collection-out"
    assert set(model.info.metrics["per_collection"]) == {"alpha", "beta"}
    card = (folder / "MODEL_CARD.md").read_text()
    assert "leave-one-collection-out" in card and "| alpha |" in card
    # each held-out collection also at the shipped threshold; the mean and worst rows
    at_shipped = model.info.metrics["per_collection_at_shipped_threshold"]
    assert set(at_shipped) == {"alpha", "beta"}
    assert f"| ACER at {model.info.threshold:.4f} |" in card
    assert "| **mean** |" in card and "| **worst** |" in card
    assert {"auc_mean", "auc_min", "eer_mean", "hter_mean", "shipped_acer_mean"} <= set(
        model.info.metrics["summary"])
    for name in ("report.md", "report.json", "roc.png", "det.png", "scores.png"):
        assert (folder / "validation" / name).is_file()
    from common.evaluation.oof import read_oof_scores

    oof = read_oof_scores(folder / "validation" / "oof_scores.csv")
    assert len(oof.keys) == 48 and set(oof.collections) == {"alpha", "beta"}
    assert all(k.split("/")[0] in ("alpha", "beta") for k in oof.keys)
    assert np.isfinite(oof.scores).all()


def test_score_csv_matches_in_process_pipeline(trained, datasets, tmp_path, monkeypatch):
    out = tmp_path / "results.csv"
    result = CliRunner().invoke(main, ["score", str(datasets[0]), "--out", str(out),
                                       "--tests", "quality", "--models-dir", str(trained)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 24
    assert {"path", "score_live", "decision", "face_found", "reasons", "seconds",
            "quality_score"} <= set(rows[0])
    monkeypatch.setenv("LIVENESS_MODELS_DIR", str(trained))
    tests = load_tests(["quality"])
    first = rows[0]
    expected = score_image(load_image(first["path"]), tests).to_dict()
    assert float(first["score_live"]) == pytest.approx(expected["score"], abs=1e-6)
    assert first["decision"] == expected["decision"]


def test_score_json_and_bad_files(trained, tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    result = CliRunner().invoke(main, ["score", str(good), str(bad), "--json",
                                       "--tests", "quality", "--models-dir", str(trained)])
    assert result.exit_code == 1  # one file could not be scored
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["result"]["decision"] in ("live", "spoof")
    assert lines[0]["result"]["tests"]["quality"]["score"] is not None
    assert lines[1]["result"] is None and lines[1]["error"].startswith("not_an_image")


def test_score_unknown_test_is_a_clear_error(trained, tmp_path):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), data.astronaut())
    result = CliRunner().invoke(main, ["score", str(img), "--tests", "nope",
                                       "--models-dir", str(trained)])
    assert result.exit_code != 0 and "unknown test" in result.output


def test_evaluate_writes_iso_report(trained, datasets, tmp_path):
    out = tmp_path / "eval"
    result = CliRunner().invoke(main, ["evaluate", "--data", str(datasets[1]), "--out", str(out),
                                       "--tests", "quality", "--models-dir", str(trained),
                                       "--jobs", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["n_bona_fide"] == 12 and report["n_attacks"] == {"print": 12}
    assert report["threshold"] == 0.5 and report["threshold_source"] == "given"
    assert len((out / "scores.csv").read_text().splitlines()) == 25
    text = (out / "report.md").read_text()
    for section in ("Each test and the fusion, pooled", "fused: per collection",
                    "APCER per attack type, pooled",
                    "quality: per collection", "Expected calibration error", "Latency"):
        assert section in text, section
    assert (out / "reliability.png").is_file() and (out / "scores_by_collection.png").is_file()


def test_calibrate_writes_a_profile_the_pipeline_applies(trained, datasets, tmp_path):
    import shutil

    models = tmp_path / "models"
    shutil.copytree(trained / "quality", models / "quality")
    result = CliRunner().invoke(main, [
        "calibrate", "--data", str(datasets[0]), "--data", str(datasets[1]), "--name", "lab",
        "--tests", "quality", "--operating-point", "eer", "--models-dir", str(models),
        "--jobs", "1",
        "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "APCER" in result.output and "after (profile, 5-fold CV)" in result.output
    from common.profiles import load_profiles

    profile = load_profiles(models)["lab"]
    assert profile.operating_point == "eer" and profile.fitted_on["images"] == 48
    assert (tmp_path / "report" / "reliability.png").is_file()
    scored = CliRunner().invoke(main, ["score", str(datasets[0]), "--json", "--profile", "lab",
                                       "--tests", "quality", "--models-dir", str(models)])
    assert scored.exit_code == 0, scored.output
    first = json.loads(scored.stdout.splitlines()[0])["result"]
    assert first["operating_point"] == "eer" and first["fusion"].endswith("@lab")
    assert 0.0 <= first["probability"] <= 1.0
    # score and threshold on one scale (issue 15.3): the score is the calibrated probability
    assert first["score"] == first["probability"] and first["fused_score"] is not None
    assert profile.tests == ("quality",) and set(profile.models) == {"quality"}
    # the profile records what it was fitted on and is applied to nothing else (15.1)
    other = CliRunner().invoke(main, ["score", str(datasets[0]), "--profile", "lab",
                                      "--tests", "quality,cnn", "--models-dir", str(models)])
    assert other.exit_code != 0 and "fitted on the tests quality" in other.output
    stale = json.loads((models / "profiles" / "lab.json").read_text())
    stale["models"]["quality"]["version"] = "1999.01.01"
    (models / "profiles" / "lab.json").write_text(json.dumps(stale))
    time.sleep(1.1)  # this process's profile catalog looks for changed files once a second
    refused = CliRunner().invoke(main, ["score", str(datasets[0]), "--profile", "lab",
                                        "--tests", "quality", "--models-dir", str(models)])
    assert refused.exit_code != 0 and "1999.01.01" in refused.output
    bad = CliRunner().invoke(main, ["calibrate", "--data", str(datasets[0]), "--name", "../x",
                                    "--models-dir", str(models)])
    assert bad.exit_code != 0 and "--name" in bad.output


def test_a_plugin_test_flows_through_liveness_score(plugin_on_path, tmp_path):
    """A test registered by another distribution is scored, fused and in the CSV."""
    from brightness_liveness.scorer import expected_score

    image = tmp_path / "face.png"
    cv2.imwrite(str(image), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "scores.csv"
    args = ["score", str(image), "--tests", "quality,brightness",
            "--models-dir", str(plugin_on_path.models_dir)]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    row = next(csv.DictReader(out.open()))
    assert list(row)[-2:] == ["quality_score", "brightness_score"]
    expected = expected_score(load_image(image), 100.0, 0.05)
    assert float(row["brightness_score"]) == pytest.approx(expected, abs=1e-6)
    as_json = CliRunner().invoke(main, [*args, "--json"])
    fused = json.loads(as_json.stdout.splitlines()[-1])["result"]
    assert set(fused["tests"]) == {"quality", "brightness"}
    assert fused["tests"]["brightness"]["model"] == "mean-brightness"
    # fused over both tests; two runs of the quality measures may differ in the last bits
    # (threaded BLAS/OpenCV reductions sum in a different order)
    assert float(row["score_live"]) == pytest.approx(fused["score"], abs=1e-9)


def test_liveness_tests_lists_the_registry(plugin_on_path):
    result = CliRunner().invoke(main, ["tests", "--json"],
                                env={"LIVENESS_MODELS_DIR": str(plugin_on_path.models_dir)})
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["quality"]["default"] is True and rows["quality"]["model"].startswith("wiqa")
    assert rows["cnn"]["default"] is True and rows["fasnet"]["default"] is True
    assert rows["brightness"]["queue"] == "brightness" and rows["brightness"]["default"] is False
    assert rows["depth3d"]["default"] is False
    assert rows["cnn"]["model"].startswith("unavailable")


def test_a_test_whose_trainer_cannot_be_imported_does_not_break_train(monkeypatch):
    from cli import train
    from common.registry import TestRegistry, TestSpec

    registry = TestRegistry([TestSpec("eyes", "blinks", None, trainer="nowhere.cli:train"),
                             *default_registry()])
    monkeypatch.setattr(train, "default_registry", lambda: registry)
    listing = CliRunner().invoke(main, ["train", "--help"])
    assert listing.exit_code == 0 and "quality" in listing.output and "eyes" in listing.output
    broken = CliRunner().invoke(main, ["train", "eyes"])
    assert broken.exit_code != 0 and "cannot train 'eyes'" in broken.output
    assert "No module named 'nowhere'" in broken.output


@pytest.mark.parametrize(("variable", "value", "words"), [
    ("LIVENESS_FACE_DETECTOR", "haar", "LIVENESS_FACE_DETECTOR='haar': must be one of"),
    ("LIVENESS_MIN_FACE_SIDE", "abc", "LIVENESS_MIN_FACE_SIDE='abc': expected an integer"),
    ("LIVENESS_MAX_BLUR", "x", "LIVENESS_MAX_BLUR='x': expected a number"),
])
def test_a_bad_setting_is_one_line_not_a_traceback(tmp_path, variable, value, words):
    import os
    import subprocess
    import sys

    from PIL import Image

    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    out = subprocess.run([sys.executable, "-c", "from cli import run; run()", "score",
                          str(image)], capture_output=True, text=True, check=False,
                         env={**os.environ, variable: value})
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
    assert words in out.stderr


def test_a_fourth_test_joins_fusion_with_one_command(plugin_on_path, trained, datasets,
                                                     tmp_path):
    """The plug-in test (a fixed rule, never trained on these images) is scored in
    process and fused with quality's out-of-fold scores: one command."""
    import shutil

    from common.fusion import load_fusion

    models = tmp_path / "models"
    shutil.copytree(trained / "quality", models / "quality")
    shutil.copytree(plugin_on_path.models_dir / "brightness", models / "brightness")
    result = CliRunner().invoke(main, [
        "train", "fusion", *[a for d in datasets for a in ("--data", str(d))],
        "--tests", "quality,brightness", "--score-in-process", "brightness",
        "--operating-point", "eer", "--models-dir", str(models), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    fusion = load_fusion(models)
    assert frozenset({"quality", "brightness"}) in fusion.subsets
    card = (models / "fusion" / "MODEL_CARD.md").read_text()
    assert "brightness + quality" in card and "--score-in-process brightness" in card
    missing = CliRunner().invoke(main, ["train", "fusion", "--tests", "cnn", "--models-dir",
                                        str(tmp_path / "empty")])
    assert missing.exit_code != 0 and "no out-of-fold scores for test 'cnn'" in missing.output
