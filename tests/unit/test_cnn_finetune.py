"""Fine-tuning on cached activations, on tiny generated data: the split, the augmented
variants and their cache, training with early stopping, and the leave-one-collection-out
loop (held-out collections scored on served views only)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from common.config import Settings
from common.datasets import open_dataset
from common.faces import locate_face
from workers.cnn.backbones import get_backbone
from workers.cnn.finetune import (
    SIMULATED,
    ActivationTable,
    FitConfig,
    extract_activations,
    loco_finetune,
    mean_logit,
    split_trunk,
    validation_collections,
    views,
)

from .fixtures_datasets import make_folder


def _tiny_trunk():
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(4, 3, strides=2, name="stem")(inputs)
    x = layers.Conv2D(6, 1, name="last_expand")(x)
    x = layers.BatchNormalization(name="last_bn")(x)
    return keras.Model(inputs, layers.ReLU(name="last_relu")(x))


def test_split_shares_layers_and_composes() -> None:
    trunk = _tiny_trunk()
    prefix, suffix = split_trunk(trunk, "last_expand")
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(suffix(prefix(x))), np.asarray(trunk(x)), atol=1e-6)
    assert suffix.get_layer("last_expand") is trunk.get_layer("last_expand")
    with pytest.raises(ValueError, match="no layer 'nope'"):
        split_trunk(trunk, "nope")


def test_views_are_served_crop_chains_and_a_recapture() -> None:
    image = data.astronaut()
    face = locate_face(image, Settings())
    crops, codes = views(image, face, "frame", 64, 2, True, np.random.default_rng(0))
    assert codes == [0, 1, 2, -1] and all(c.shape == (64, 64, 3) for c in crops)
    served = crops[0]
    assert all(np.abs(c.astype(int) - served).mean() > 0.5 for c in crops[1:])
    _, codes = views(image, face, "face", 64, 1, False, np.random.default_rng(0))
    assert codes == [0, 1]  # no simulated recapture of an attack


def test_activation_cache_labels_and_reuse(tmp_path) -> None:
    root = make_folder(tmp_path, "set_a")
    dataset = open_dataset(root)
    samples = [(s, dataset) for s in dataset.samples()]
    backbone = get_backbone("livenessnet_32")
    prefix, _ = split_trunk(_tiny_trunk(), "last_expand")
    cache = tmp_path / "acts.h5"
    table = extract_activations(samples, backbone, prefix, ["face", "frame"], cache,
                                Settings(), variants=1)
    live = sum(s.label for s, _ in samples)
    assert len(table.y) == 2 * len(samples) + live
    assert table.A["frame"].shape == (len(table.y), 15, 15, 4)
    assert table.A["frame"].dtype == np.float16
    recaptures = table.variant == -1
    assert (table.y[recaptures] == 0).all() and (table.attack_types[recaptures] == SIMULATED).all()
    assert (table.y[table.variant == 0] == [s.label for s, _ in samples]).all()
    again = extract_activations(samples, backbone, prefix, ["face", "frame"], cache,
                                Settings(), variants=1)
    np.testing.assert_array_equal(again.A["face"], table.A["face"])


def _synthetic_table(rng: np.random.Generator) -> ActivationTable:
    """Six collections; the label lives in channel 0, variants add noise."""
    rows = []
    for image in range(72):
        coll, label = f"c{(image // 2) % 6}", image % 2
        for variant in (0, 1, -1) if label else (0, 1):
            rows.append((image, variant, coll, 0 if variant == -1 else label))
    image, variant, coll, y = (np.array(v) for v in zip(*rows, strict=True))
    A = rng.normal(size=(len(y), 3, 3, 4)).astype(np.float32)
    A[..., 0] += 2.0 * (2 * y[:, None, None] - 1)
    return ActivationTable(
        A={"frame": A.astype(np.float16), "face": (A * 0.5).astype(np.float16)}, y=y,
        image=image, variant=variant, collections=coll.astype(object),
        attack_types=np.where(variant == -1, SIMULATED,
                              np.where(y == 1, "none", "print")).astype(object))


def test_loco_finetune_learns_and_scores_served_views() -> None:
    import keras

    table = _synthetic_table(np.random.default_rng(0))
    inputs = keras.Input((3, 3, 4))
    suffix = keras.Model(inputs, keras.layers.Conv2D(8, 1, activation="relu")(inputs))
    results, epochs = loco_finetune(table, {"frame": suffix, "face": suffix},
                                    config=FitConfig(learning_rate=1e-2, epochs=4, batch=16))
    assert set(results) == {"frame", "face", "face+frame"} or set(results) == {
        "frame", "face", "frame+face"}
    for result in results.values():
        assert len(result.per_collection) == 6
        assert np.isfinite(result.oof).all() and len(result.oof) == 72
        assert np.mean([r.auc for r in result.per_collection.values()]) > 0.9
    assert all(1 <= e <= 4 for e in epochs["frame"]) and len(epochs["frame"]) == 6


def test_validation_collections_and_fusion() -> None:
    colls = np.array(["big"] * 10 + ["a", "b", "c"])
    chosen = validation_collections(colls, 2, 0)
    assert len(chosen) == 2 and "big" not in chosen
    assert chosen == validation_collections(colls, 2, 0)
    fused = mean_logit([np.array([0.9, 0.5]), np.array([0.5, 0.1])])
    np.testing.assert_allclose(fused, [1 / (1 + np.exp(-np.log(9) / 2)),
                                       1 / (1 + np.exp(np.log(9) / 2))])


def test_scratch_rows_train_the_whole_network(tmp_path) -> None:
    from workers.cnn.scratch import loco_scratch

    root = tmp_path / "data"
    for name in ("set_a", "set_b"):
        make_folder(root, name)
    samples = []
    for name in ("set_a", "set_b"):
        dataset = open_dataset(root / name)
        samples += [(s, dataset) for s in dataset.samples()]
    results = loco_scratch(samples, "livenessnet_32", ["face", "frame"], tmp_path, Settings(),
                           config=FitConfig(learning_rate=1e-3, epochs=2, batch=4,
                                            frozen_bn=False))
    assert set(results) == {"face", "frame", "face+frame"}
    assert all(len(r.oof) == len(samples) for r in results.values())
    assert (tmp_path / "livenessnet_32-crops-v1-s0.h5").is_file()
