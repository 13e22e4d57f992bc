"""CNN test building blocks on tiny generated data: every backbone builds and runs, the
crop scales, the feature cache and the leave-one-collection-out probe."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage import data

from common.config import Settings
from common.datasets import open_dataset
from common.errors import ModelError
from common.faces import locate_face
from workers.cnn.backbones import BACKBONES, get_backbone
from workers.cnn.features import (
    SCALES,
    FeatureExtractor,
    FeatureTable,
    cache_name,
    crop_at_scale,
    extract_features,
    lower_resolution_views,
    scaled_face,
)
from workers.cnn.probe import (
    collection_balanced_weights,
    fit_probe,
    loco_probe,
    summary_row,
    training_rows,
)

from .fixtures_datasets import make_folder

FEATURE_DIMS = {"mobilenet_v2": 1280, "efficientnet_lite0": 1280, "resnet50": 2048,
                "mobilenet_v2_035_96": 1280, "livenessnet_32": 32}


class CacheOnly:
    """An extractor with ``extractor``'s backbone that fails if it is ever run: the
    features must all come from the cache."""

    def __init__(self, extractor: FeatureExtractor) -> None:
        self.backbone = extractor.backbone

    def __call__(self, *_: object) -> np.ndarray:
        raise AssertionError("the cache must be used")


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_builds_and_extracts(name: str) -> None:
    backbone = get_backbone(name)
    extractor = FeatureExtractor(backbone)
    side = backbone.input_side
    crops = np.random.default_rng(0).integers(0, 256, (3, side, side, 3), dtype=np.uint8)
    feats = extractor(crops, batch=2)
    assert feats.shape == (3, FEATURE_DIMS[name]) and feats.dtype == np.float32
    assert np.all(np.isfinite(feats))
    np.testing.assert_allclose(extractor(crops[:1]), feats[:1], rtol=1e-4, atol=1e-4)


def test_unknown_backbone_and_bad_init(tmp_path) -> None:
    with pytest.raises(ModelError, match="unknown backbone"):
        get_backbone("vgg16")
    bad = tmp_path / "x.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ModelError, match="cannot load initial weights"):
        get_backbone("livenessnet_32").build(bad)


def test_crop_scales() -> None:
    image = data.astronaut()
    face = locate_face(image, Settings())
    crops = {s: crop_at_scale(image, face, s, 96) for s in SCALES}
    assert all(c.shape == (96, 96, 3) and c.dtype == np.uint8 for c in crops.values())
    assert not np.array_equal(crops["face"], crops["frame"])
    with pytest.raises(ValueError, match="unknown scale"):
        crop_at_scale(image, face, "body", 96)


def test_feature_cache_is_reused(tmp_path) -> None:
    dataset = open_dataset(make_folder(tmp_path))
    samples = [(s, dataset) for s in dataset.samples()]
    extractor = FeatureExtractor(get_backbone("livenessnet_32"))
    cache = tmp_path / "cache" / "livenessnet_32.h5"
    first = extract_features(samples, extractor, cache, Settings())
    assert first.X["face"].shape == (5, 32) and list(first.y) == [1, 1, 1, 0, 0]
    assert set(first.collections) == {"c1", "c2"}

    again = extract_features(samples, CacheOnly(extractor), cache,  # type: ignore[arg-type]
                             Settings())
    np.testing.assert_array_equal(again.X["frame"], first.X["frame"])


def test_loco_probe_separable_and_chance() -> None:
    rng = np.random.default_rng(0)
    n = 240
    y = np.tile([0, 1], n // 2)
    colls = np.repeat(np.array(["a", "b", "c"], dtype=object), n // 3)
    signal = rng.normal(size=(n, 8)) + y[:, None] * 3.0
    noise = rng.normal(size=(n, 8))
    types = np.where(y == 1, "none", "print").astype(object)
    table = FeatureTable({"face": signal, "frame": noise}, y, [str(i) for i in range(n)],
                         colls, types)
    good = summary_row(loco_probe(table, ["face"]))
    assert good["auc_mean"] > 0.99 and good["hter_mean"] < 0.05
    chance = summary_row(loco_probe(table, ["frame"]))
    assert 0.3 < chance["auc_mean"] < 0.7
    assert set(loco_probe(table, ["face", "frame"]).per_collection) == {"a", "b", "c"}


def test_train_writes_a_model_the_scorer_serves(tmp_path) -> None:
    """End to end on tiny generated data: train → model folder → CnnTest scores."""
    from workers.cnn.scorer import CnnTest
    from workers.cnn.train import train_cnn

    root = tmp_path / "data"
    for name in ("set_a", "set_b"):
        make_folder(root, name)
    out = tmp_path / "model"
    card = train_cnn([root / "set_a", root / "set_b"], "livenessnet_32", out,
                     tmp_path / "cache", version="t1", command="liveness train cnn …",
                     compare=["mobilenet_v2_035_96"], head="probe")
    text = card.read_text()
    assert "Leave-one-collection-out" in text and "seed dense head" in text
    assert "NUAA" not in text  # the card names the licences of the data it was trained on
    # the default: every stage pooled, collection-balanced, two lower-resolution copies;
    # beside it the rows without copies, the last map and the unweighted probe; a compared
    # backbone without stages on its last map
    for row in ("livenessnet_32 frozen, face+frame, every stage pooled, collection-balanced, "
                "+ 2 lower-resolution copies",
                "livenessnet_32 frozen, face+frame, every stage pooled, collection-balanced",
                "livenessnet_32 frozen, face+frame, every stage pooled, "
                "+ 2 lower-resolution copies",
                "livenessnet_32 frozen, face+frame, last map, collection-balanced",
                "livenessnet_32 frozen, face+frame, last map",
                "mobilenet_v2_035_96 frozen, face+frame, last map, collection-balanced"):
        assert f"| {row} |" in text
    assert " ms, " in text
    # every held-out collection at its fold's threshold and at the shipped one
    info = json.loads((out / "model.json").read_text())["info"]
    at_shipped = info["metrics"]["per_collection_at_shipped_threshold"]
    assert set(at_shipped) == set(info["metrics"]["per_collection"]) == {"c1", "c2"}
    assert f"| ACER at {info['threshold']:.4f} |" in text
    assert "| c1 |" in text and "| **mean** |" in text and "| **worst** |" in text
    assert (out / "model.tflite").is_file() and (out / "evaluation" / "roc.png").is_file()
    test = CnnTest.from_dir(out)
    assert test.info.version == "t1" and test.scales == ["face", "frame"]
    assert test.info.name == "livenessnet_32-probe-face+frame-stages"
    params = json.loads((out / "model.json").read_text())["params"]
    assert params["pooling"] == "stages" and params["balanced"] is True
    assert params["resolution_copies"] == 2
    image = data.astronaut()
    face = locate_face(image, Settings())
    assert 0.0 <= test.score(image, face) <= 1.0
    with pytest.raises(ModelError, match="needs the face"):
        test.score(image, None)


def test_served_tflite_equals_the_keras_model(tmp_path) -> None:
    """The folder's TFLite model gives the Keras scoring model's P(live), and the folded
    head equals sigmoid(features · w + b)."""
    import keras

    from common.estimator import ModelInfo
    from workers.cnn.model import build_scoring_model, save_model_folder
    from workers.cnn.scorer import CnnTest

    keras.utils.set_random_seed(1)
    backbone = get_backbone("livenessnet_32")
    trunk = backbone.build(None)
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=64).astype(np.float32) * 0.1, 0.2
    model = build_scoring_model(backbone, [trunk, trunk], ["face", "frame"], np.split(w, 2), b)
    info = ModelInfo(test="cnn", name="tiny", version="1", threshold=0.5)
    save_model_folder(tmp_path, model, info, backbone, ["face", "frame"])
    test = CnnTest.from_dir(tmp_path)
    image = data.astronaut()
    face = locate_face(image, Settings())
    crops = test.crops(image, face)
    expected = float(np.asarray(model(crops, training=False)[0])[0, 0])
    assert test.score(image, face) == pytest.approx(expected, abs=1e-5)
    extractor = FeatureExtractor(backbone)
    extractor.trunk = trunk
    feats = np.concatenate([extractor(crop_at_scale(image, face, s, 32)[None])
                            for s in ("face", "frame")], axis=1)
    assert expected == pytest.approx(float(1 / (1 + np.exp(-(feats @ w + b)[0]))), abs=1e-5)


def test_a_tampered_cnn_model_is_refused(tmp_path) -> None:
    from common.modelfolder import write_model_folder
    from workers.cnn.scorer import CnnTest

    (tmp_path / "model.json").write_text('{"format": "other", "files": {}}')
    with pytest.raises(ModelError, match="has no manifest_sha256"):
        CnnTest.from_dir(tmp_path)
    write_model_folder(tmp_path, {"format": "other"}, {})
    with pytest.raises(ModelError, match=r"does not list model\.tflite"):
        CnnTest.from_dir(tmp_path)
    write_model_folder(tmp_path, {"format": "other"}, {"model.tflite": b"x"})
    with pytest.raises(ModelError, match="not a cnn model"):
        CnnTest.from_dir(tmp_path)


def test_init_loads_a_weights_file(tmp_path) -> None:
    backbone = get_backbone("livenessnet_32")
    trained = backbone.build(None)
    path = tmp_path / "trained.weights.h5"
    trained.save_weights(path)
    again = backbone.build(path)
    for a, b in zip(trained.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_port_weights_command(tmp_path) -> None:
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, ["cnn", "port-weights", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "mobilenet_v2: ImageNet top-5 coffee [967" in result.output
    for name in ("mobilenet_v2", "efficientnet_lite0"):
        path = tmp_path / f"{name}_imagenet.weights.h5"
        assert path.is_file()
        get_backbone(name).build(path)  # loads onto the backbone as an --init file


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_trains_a_step(name: str) -> None:
    """Backbone + pooling + sigmoid head, end to end trainable: one Adam step on two
    generated crops changes the backbone's weights and gives a finite loss."""
    import keras

    backbone = get_backbone(name)
    trunk = backbone.build(None)
    side = backbone.input_side
    inputs = keras.Input((side, side, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(trunk(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(pooled))
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    crops = backbone.preprocess(
        np.random.default_rng(0).integers(0, 256, (2, side, side, 3), dtype=np.uint8))
    before = [w.copy() for w in trunk.get_weights()]
    loss = model.train_on_batch(crops, np.array([0.0, 1.0], np.float32))
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, trunk.get_weights(),
                                                         strict=True))


def test_collection_balanced_weights_give_every_group_the_same_weight() -> None:
    collections = np.array(["big"] * 90 + ["small"] * 10, dtype=object)
    labels = np.array([1] * 60 + [0] * 30 + [1] * 5 + [0] * 5)
    w = collection_balanced_weights(collections, labels)
    assert w.shape == (100,) and w.mean() == pytest.approx(1.0)
    totals = {(c, y): w[(collections == c) & (labels == y)].sum()
              for c in ("big", "small") for y in (0, 1)}
    assert np.allclose(list(totals.values()), 25.0)
    assert collection_balanced_weights(np.array([]), np.array([])).size == 0


def test_balanced_probe_follows_the_small_collection() -> None:
    """One big collection whose live/attack signal is feature 0 and a small one whose
    signal is feature 1: weighted, the head leans on feature 1 far more."""
    rng = np.random.default_rng(3)
    y_big, y_small = np.tile([0, 1], 200), np.tile([0, 1], 10)
    big = rng.normal(size=(400, 2)) + np.c_[y_big * 2.0, np.zeros(400)]
    small = rng.normal(size=(20, 2)) + np.c_[np.zeros(20), y_small * 2.0]
    X, y = np.vstack([big, small]), np.r_[y_big, y_small]
    colls = np.array(["big"] * 400 + ["small"] * 20, dtype=object)
    plain = fit_probe(X, y, 1.0)[-1].coef_[0]
    balanced = fit_probe(X, y, 1.0, colls)[-1].coef_[0]
    assert balanced[1] / balanced[0] > 2 * plain[1] / plain[0]


def test_stage_pooling_model_is_the_probe_and_its_map_sums_to_the_log_odds(tmp_path) -> None:
    """Every stage pooled: P(live) = sigmoid(pooled features · w + b), the map (on the
    last map's grid) averages to the log-odds minus the bias, and the served TFLite
    model gives the same."""
    import keras

    from common.estimator import ModelInfo
    from workers.cnn.model import build_scoring_model, save_model_folder
    from workers.cnn.scorer import CnnTest

    keras.utils.set_random_seed(4)
    backbone = get_backbone("livenessnet_32")
    extractor = FeatureExtractor(backbone, pooling="stages")
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    feats = extractor(crops)
    assert feats.shape == (3, 16 + 32)  # stage1_pool's 16 channels, then the last 32
    w, b = rng.normal(size=48).astype(np.float32), -0.4
    model = build_scoring_model(backbone, [extractor.trunk], ["frame"], [w], b)
    p_live, cam = (np.asarray(o) for o in model([backbone.preprocess(crops)], training=False))
    logit = feats @ w + b
    np.testing.assert_allclose(p_live[:, 0], 1 / (1 + np.exp(-logit)), atol=1e-5)
    assert cam.shape == (3, 8, 8, 1)
    np.testing.assert_allclose(cam.mean(axis=(1, 2, 3)), logit - b, rtol=1e-4, atol=1e-4)
    info = ModelInfo(test="cnn", name="tiny", version="1", threshold=0.5)
    save_model_folder(tmp_path, model, info, backbone, ["frame"],
                      check_inputs=[backbone.preprocess(crops)])
    image = data.astronaut()
    face = locate_face(image, Settings())
    served = CnnTest.from_dir(tmp_path).score(image, face)
    direct = extractor(crop_at_scale(image, face, "frame", 32)[None]) @ w + b
    assert served == pytest.approx(float(1 / (1 + np.exp(-direct[0]))), abs=1e-5)
    with pytest.raises(ValueError, match="head weights"):
        build_scoring_model(backbone, [extractor.trunk], ["frame"], [w[:40]], b)


def test_pooling_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown pooling"):
        FeatureExtractor(get_backbone("livenessnet_32"), pooling="max")
    with pytest.raises(ModelError, match="names no stages"):
        FeatureExtractor(get_backbone("mobilenet_v2_035_96"), pooling="stages")
    assert cache_name(get_backbone("efficientnet_lite0"), "last") == "efficientnet_lite0.h5"
    assert cache_name(get_backbone("efficientnet_lite0"), "stages") == \
        "efficientnet_lite0-stages.h5"
    from workers.cnn.train import train_cnn

    with pytest.raises(ValueError, match="last map only"):
        train_cnn([tmp_path], "mobilenet_v2", tmp_path / "m", tmp_path / "c",
                  head="finetune", pooling="stages")
    with pytest.raises(ValueError, match="unknown pooling"):
        train_cnn([tmp_path], "mobilenet_v2", tmp_path / "m", tmp_path / "c",
                  head="probe", pooling="max")
    with pytest.raises(ValueError, match="resolution copies train the probe"):
        train_cnn([tmp_path], "mobilenet_v2", tmp_path / "m", tmp_path / "c",
                  head="finetune", pooling="last")
    with pytest.raises(ValueError, match="resolution_copies must be >= 0"):
        train_cnn([tmp_path], "mobilenet_v2", tmp_path / "m", tmp_path / "c",
                  resolution_copies=-1)


def test_lower_resolution_copies_are_cached_seeded_and_smaller(tmp_path) -> None:
    dataset = open_dataset(make_folder(tmp_path))
    samples = [(s, dataset) for s in dataset.samples()]
    extractor = FeatureExtractor(get_backbone("livenessnet_32"))
    cache = tmp_path / "cache" / "livenessnet_32.h5"
    plain = extract_features(samples, extractor, cache, Settings())
    assert plain.copies == ()
    table = extract_features(samples, extractor, cache, Settings(), copies=2, seed=3)
    np.testing.assert_array_equal(table.X["face"], plain.X["face"])  # originals kept
    assert len(table.copies) == 2
    for copy in table.copies:
        assert {s: copy[s].shape for s in SCALES} == {s: plain.X[s].shape for s in SCALES}
        assert not np.allclose(copy["frame"], plain.X["frame"])
    assert not np.allclose(table.copies[0]["frame"], table.copies[1]["frame"])

    # cached, and a copy is the same whatever subset of samples is extracted
    again = extract_features(samples[::-1][:2], CacheOnly(extractor),  # type: ignore[arg-type]
                             cache, Settings(), copies=2, seed=3)
    np.testing.assert_array_equal(again.copies[1]["face"], table.copies[1]["face"][::-1][:2])
    image = dataset.read_image(samples[0][0])
    key = f"{dataset.name}/{samples[0][0].key}"
    face = locate_face(image, Settings())
    views = lower_resolution_views(image, face, key, 2, 3, 32)
    np.testing.assert_allclose(extractor(np.stack([views[1]["frame"]]))[0],
                               table.copies[1]["frame"][0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="copies must be >= 0"):
        extract_features(samples, extractor, cache, Settings(), copies=-1)


def test_scaled_face_moves_box_and_landmarks() -> None:
    face = locate_face(data.astronaut(), Settings())
    half = scaled_face(face, 0.5, 0.25)
    assert (half.box.left, half.box.right) == (round(face.box.left / 2),
                                               round(face.box.right / 2))
    assert (half.box.top, half.box.bottom) == (round(face.box.top / 4),
                                               round(face.box.bottom / 4))
    np.testing.assert_allclose(np.array(half.landmarks),
                               np.array(face.landmarks) * [0.5, 0.25])
    assert half.found == face.found and half.method == face.method


def test_probe_trains_on_copies_and_judges_only_the_held_out_originals() -> None:
    """A shortcut feature that follows the label in the originals but not in the copies
    (as image size does in the collections) is what the copies take away."""
    rng = np.random.default_rng(0)
    n = 300
    y = np.tile([1, 0], n // 2)
    colls = np.repeat(np.array(["a", "b", "c"], dtype=object), n // 3)
    signal = (y[:, None] - 0.5) * 0.8 + rng.normal(0, 1, (n, 4))
    size = np.where(y == 1, 3.0, -3.0)[:, None] * np.where(colls == "c", -1, 1)[:, None]
    X = np.concatenate([signal, size + rng.normal(0, 0.1, (n, 1))], axis=1)
    types = np.where(y == 1, "none", "replay").astype(object)
    copies = tuple({"frame": np.concatenate([signal + rng.normal(0, 0.1, signal.shape),
                                             rng.normal(0, 3, (n, 1))], axis=1)}
                   for _ in range(2))
    table = FeatureTable({"frame": X}, y, [str(i) for i in range(n)], colls, types, copies)
    Xf, yf, cf = training_rows(table, ["frame"], colls != "c", True)
    assert Xf.shape == (3 * 200, 5) and list(yf[:200]) == list(yf[200:400])
    assert list(cf) == list(np.tile(colls[colls != "c"], 3))
    without = loco_probe(table, ["frame"], C=1.0, balanced=True)
    with_copies = loco_probe(table, ["frame"], C=1.0, balanced=True, copies=True)
    # held out: only the collection's own 100 images are scored
    assert np.isfinite(with_copies.oof).all() and len(with_copies.oof) == n
    # the reversed shortcut fools the probe without copies on "c", not with them
    assert without.per_collection["c"].auc < 0.2
    assert with_copies.per_collection["c"].auc > 0.6
    with pytest.raises(ValueError, match="no lower-resolution copies"):
        loco_probe(FeatureTable({"frame": X}, y, [str(i) for i in range(n)], colls, types),
                   ["frame"], copies=True)


def test_train_command_refuses_fine_tuning_on_stages(tmp_path) -> None:
    from click.testing import CliRunner

    from workers.cnn.cli import train_cnn_command

    result = CliRunner().invoke(train_cnn_command, ["--data", str(tmp_path), "--head",
                                                    "finetune"])
    assert result.exit_code == 2 and "needs --pooling last" in result.output
    result = CliRunner().invoke(train_cnn_command, ["--data", str(tmp_path), "--head",
                                                    "finetune", "--pooling", "last",
                                                    "--backbone", "livenessnet_32"])
    assert result.exit_code == 2 and "needs --resolution-copies 0" in result.output
    result = CliRunner().invoke(train_cnn_command, ["--data", str(tmp_path), "--head",
                                                    "finetune", "--pooling", "last",
                                                    "--resolution-copies", "0",
                                                    "--backbone", "livenessnet_32"])
    assert result.exit_code == 1 and "Error: fine-tuning needs an ImageNet backbone" in (
        result.output) and "Traceback" not in result.output
