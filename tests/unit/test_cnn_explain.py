"""Grad-CAM of the CNN test: the model's map output is Grad-CAM (checked against
tf.GradientTape), the explanation PNG, and a fine-tuned model trained end to end."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from common.config import Settings
from common.estimator import ModelInfo
from common.faces import locate_face
from workers.cnn.backbones import get_backbone
from workers.cnn.explain import explanation_png, grad_cam
from workers.cnn.model import build_scoring_model, save_model_folder

from .fixtures_datasets import make_folder


def _two_scale_model():
    import keras

    keras.utils.set_random_seed(2)
    backbone = get_backbone("livenessnet_32")
    face_trunk, frame_trunk = (keras.Model(t.input, t.output, name=f"{n}_trunk") for n, t in
                               (("face", backbone.build(None)), ("frame", backbone.build(None))))
    rng = np.random.default_rng(0)
    w = [rng.normal(size=32).astype(np.float32) for _ in range(2)]
    model = build_scoring_model(backbone, [face_trunk, frame_trunk], ["face", "frame"], w, -0.3)
    return backbone, (face_trunk, frame_trunk), w, model


def test_cam_output_is_grad_cam() -> None:
    """Grad-CAM (Selvaraju et al. 2017) by the book: α_k = mean of ∂logit/∂F_k, map =
    Σ α_k F_k; for each scale it equals the model's map / (h·w), and the model's P(live)
    is the sigmoid of the pooled maps plus the bias."""
    import tensorflow as tf

    backbone, trunks, w, model = _two_scale_model()
    rng = np.random.default_rng(1)
    x = [backbone.preprocess(rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8))
         for _ in range(2)]
    p_live, maps = (np.asarray(o) for o in model(x, training=False))
    feats = [tf.constant(np.asarray(t(xi, training=False))) for t, xi in zip(trunks, x,
                                                                               strict=True)]
    with tf.GradientTape() as tape:
        for f in feats:
            tape.watch(f)
        logit = sum(tf.reduce_mean(tf.tensordot(f, wi, 1), axis=[1, 2])
                    for f, wi in zip(feats, w, strict=True)) - 0.3
    grads = tape.gradient(logit, feats)
    for i, (f, g) in enumerate(zip(feats, grads, strict=True)):
        alpha = tf.reduce_mean(g, axis=[1, 2])  # (1, C)
        cam = np.asarray(tf.reduce_sum(f * alpha[:, None, None, :], axis=-1))[0]
        h, wd = cam.shape
        np.testing.assert_allclose(cam, maps[0, ..., i] / (h * wd), rtol=1e-4, atol=1e-6)
    assert p_live[0, 0] == pytest.approx(float(tf.sigmoid(logit)[0]), abs=1e-5)


def test_grad_cam_picks_the_decided_class() -> None:
    maps = np.array([[[2.0], [-1.0]], [[0.0], [-4.0]]])
    live = grad_cam(maps, True)
    spoof = grad_cam(maps, False)
    assert live.max() == 1.0 and live[0, 1, 0] == 0.0
    assert spoof[1, 1, 0] == 1.0 and spoof[0, 0, 0] == 0.0
    assert not grad_cam(np.zeros((2, 2, 1)), True).any()


def test_served_model_explains_as_png(tmp_path) -> None:
    from workers.cnn.scorer import CnnTest

    backbone, _, _, model = _two_scale_model()
    info = ModelInfo(test="cnn", name="tiny", version="1", threshold=0.5)
    rng = np.random.default_rng(0)
    check = [backbone.preprocess(rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
             for _ in range(2)]
    save_model_folder(tmp_path, model, info, backbone, ["face", "frame"], check_inputs=check)
    test = CnnTest.from_dir(tmp_path)
    image = data.astronaut()
    face = locate_face(image, Settings())
    png = test.explain(image, face)
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape[0] > 224
    assert picture.shape[1] == 224 + 224  # face crop + the (square) astronaut frame
    direct = explanation_png(image, face, np.ones((1, 1, 2), np.float32), ["face", "frame"],
                             0.1, 0.5)
    assert direct.startswith(b"\x89PNG")
    portrait = np.ascontiguousarray(image[:, :200])  # narrower than tall: padded to 224
    narrow = explanation_png(portrait, face, np.ones((1, 1, 1), np.float32), ["frame"], 0.9,
                             0.5)
    picture = cv2.imdecode(np.frombuffer(narrow, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[1] == 224


def test_finetune_training_end_to_end(tmp_path) -> None:
    """Tiny generated data, MobileNetV2: fine-tuned rows in the card, the TFLite model
    serves a score and an explanation."""
    from workers.cnn.finetune import FitConfig
    from workers.cnn.scorer import CnnTest
    from workers.cnn.train import train_cnn

    root = tmp_path / "data"
    for name in ("set_a", "set_b"):
        make_folder(root, name)
    out = tmp_path / "model"
    card = train_cnn([root / "set_a", root / "set_b"], "mobilenet_v2", out,
                     tmp_path / "cache", scales=["face", "frame"], version="t2",
                     seed_head_row=False, head="finetune", variants=1,
                     fit=FitConfig(epochs=1, batch=8), pooling="last", balanced=False,
                     resolution_copies=0)
    text = card.read_text()
    assert "| mobilenet_v2 fine-tuned last block + augmentation, face+frame |" in text
    assert "| mobilenet_v2 frozen, frame, last map |" in text
    test = CnnTest.from_dir(out)
    assert test.info.name == "mobilenet_v2-finetune-face+frame"
    image = data.astronaut()
    face = locate_face(image, Settings())
    assert 0.0 <= test.score(image, face) <= 1.0
    assert test.explain(image, face).startswith(b"\x89PNG")
