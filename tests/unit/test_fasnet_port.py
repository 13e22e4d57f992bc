"""The fasnet test: the MiniFASNet port reproduces the original code's reference outputs
(Keras and the shipped TFLite model), Minivision's crop procedure on synthetic images,
upright crops of turned faces, the served model's variants and the scorer.

The reference outputs and weights are read from ``../shared/weights/silent-face/``
beside the project (CI has it); without it those tests skip and say why.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from common.config import PROJECT_ROOT
from common.errors import ModelError
from common.result import FaceBox, FaceDetection
from workers.fasnet.crop import (
    BOX_MAPPINGS,
    SCALES,
    BoxMapping,
    crop_at_scale,
    crop_box,
    fasnet_crops,
    upright_points,
)

WEIGHTS = PROJECT_ROOT.parent / "shared" / "weights" / "silent-face"
REFERENCE = WEIGHTS / "reference" / "reference.json"
SHIPPED = PROJECT_ROOT / "models" / "fasnet"
TOLERANCE = 1e-4


def _reference() -> list[dict]:
    if not REFERENCE.is_file():
        pytest.skip(f"the original's reference outputs are not here ({REFERENCE}; "
                    "../shared/weights/silent-face/reference/ in CI)")
    return json.loads(REFERENCE.read_text())["cases"]


def _crop(case: dict) -> np.ndarray:
    """The reference crop: exactly the 80×80 BGR array the original fed (lossless PNG)."""
    crop = cv2.imread(str(REFERENCE.parent / case["crop"]))
    assert crop is not None and crop.shape == (80, 80, 3), case["crop"]
    return crop


@pytest.fixture(scope="module")
def networks() -> dict[str, object]:
    from workers.fasnet.port import WEIGHT_FILES, port_networks

    _reference()
    if not all((WEIGHTS / w.name).is_file() for w in WEIGHT_FILES):
        pytest.skip(f"the MiniFASNet weight files are not here ({WEIGHTS})")
    return dict(zip((w.name for w in WEIGHT_FILES), port_networks(WEIGHTS), strict=True))


def test_the_keras_port_reproduces_every_reference_softmax(networks) -> None:
    cases = _reference()
    assert len(cases) == 24
    for case in cases:
        softmax, embedding = networks[case["model"]](_crop(case)[None].astype(np.float32),
                                                     training=False)
        np.testing.assert_allclose(np.asarray(softmax)[0], case["softmax"], atol=TOLERANCE,
                                   rtol=0, err_msg=case["crop"])
        assert np.asarray(embedding).shape == (1, 128)


def test_the_shipped_model_reproduces_every_reference_softmax() -> None:
    """``models/fasnet/model.tflite`` under LiteRT: both softmax outputs within 1e-4 of
    the original's on all 24 crops, and ``p_live`` is its variant of them."""
    from workers.fasnet.scorer import FasnetTest

    cases = _reference()
    test = FasnetTest.from_dir(SHIPPED)
    by_model = {}
    for case in cases:
        by_model.setdefault(case["model"], []).append(case)
    (v2_name, v2_cases), (se_name, se_cases) = sorted(by_model.items(),
                                                      key=lambda kv: kv[1][0]["scale"])
    assert "MiniFASNetV2" in v2_name and "MiniFASNetV1SE" in se_name
    out = test.runner.run([np.stack([_crop(c) for c in v2_cases]).astype(np.float32),
                           np.stack([_crop(c) for c in se_cases]).astype(np.float32)])
    for key, group in (("softmax_v2", v2_cases), ("softmax_v1se", se_cases)):
        expected = np.array([c["softmax"] for c in group])
        np.testing.assert_allclose(out[key], expected, atol=TOLERANCE, rtol=0, err_msg=key)
    variant = json.loads((SHIPPED / "model.json").read_text())["params"]["variant"]
    live = {"pair": (out["softmax_v2"][:, 1] + out["softmax_v1se"][:, 1]) / 2,
            "v2": out["softmax_v2"][:, 1], "v1se": out["softmax_v1se"][:, 1]}
    if variant in live:
        np.testing.assert_allclose(out["p_live"][:, 0], live[variant], atol=1e-6)
    assert np.all((out["p_live"] >= 0) & (out["p_live"] <= 1))


def test_a_state_dict_that_does_not_fit_is_refused(networks) -> None:
    from workers.fasnet.network import build_minifasnet
    from workers.fasnet.port import WEIGHT_FILES
    from workers.torch_port import load_state_dict

    sd = load_state_dict(WEIGHTS / WEIGHT_FILES[0].name)
    missing = {k: v for k, v in sd.items() if not k.endswith("prob.weight")}
    with pytest.raises(ModelError, match=r"no 'prob\.weight'"):
        build_minifasnet(missing)
    extra = {**sd, "module.extra.weight": np.zeros(3, np.float32)}
    with pytest.raises(ModelError, match="does not use"):
        build_minifasnet(extra)
    wrong = {**sd, "module.linear.weight": np.zeros((128, 256), np.float32)}
    with pytest.raises(ModelError, match="linear"):
        build_minifasnet(wrong)


def test_altered_weight_files_are_refused(tmp_path: Path) -> None:
    from workers.fasnet.port import WEIGHT_FILES, checked_weight_path

    with pytest.raises(ModelError, match="is missing"):
        checked_weight_path(tmp_path, WEIGHT_FILES[0])
    (tmp_path / WEIGHT_FILES[0].name).write_bytes(b"not the weights")
    with pytest.raises(ModelError, match="is not the pinned"):
        checked_weight_path(tmp_path, WEIGHT_FILES[0])


# --- the crop procedure (the weights' README; Minivision's CropImage) ----------------------


def test_the_crop_box_follows_the_original_rules() -> None:
    # Inside the image: centre (100 + 20, 200 + 25) = (120, 225), 2.7 × (40, 50) = (108,
    # 135): corners 66, 157.5 → 174, 292.5, truncated to int.
    assert crop_box(640, 480, (100, 200, 40, 50), 2.7) == (66, 157, 174, 292)
    # Past the left/top edge: shifted right/down by the overshoot, not clipped (same size).
    x0, y0, x1, y1 = crop_box(640, 480, (0, 0, 40, 50), 2.7)
    assert (x0, y0) == (0, 0) and (x1, y1) == (108, 135)
    # Past the right/bottom edge: shifted back to end at W - 1 / H - 1.
    assert crop_box(640, 480, (620, 460, 40, 50), 2.7)[2:] == (639, 479)
    assert crop_box(640, 480, (620, 460, 40, 50), 2.7)[:2] == (531, 344)
    # Scale limited by the image: s' = min(4.0, 479/200, 639/200) = 2.395 → 479 tall.
    x0, y0, x1, y1 = crop_box(640, 480, (220, 140, 200, 200), 4.0)
    assert (y0, y1) == (0, 479) and x1 - x0 == 479
    # A box larger than the image (the original's detector can give one) still fits.
    x0, y0, x1, y1 = crop_box(71, 103, (-1, 21, 75, 80), 2.7)
    assert 0 <= x0 < x1 <= 70 and 0 <= y0 < y1 <= 102
    with pytest.raises(ValueError, match="positive width"):
        crop_box(640, 480, (10, 10, 0, 20), 2.7)


def test_the_crop_is_the_inclusive_region_resized_bilinearly_in_bgr() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # red everywhere: BGR puts it last
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    box = (50, 40, 20, 24)
    x0, y0, x1, y1 = crop_box(160, 120, box, 2.7)
    expected = cv2.resize(bgr[y0:y1 + 1, x0:x1 + 1], (80, 80), interpolation=cv2.INTER_LINEAR)
    got = crop_at_scale(bgr, box, 2.7)
    assert got.dtype == np.uint8 and got.shape == (80, 80, 3)
    np.testing.assert_array_equal(got, expected)
    face = FaceDetection(box=FaceBox(top=40, right=74, bottom=64, left=50), found=True,
                         method="blazeface", n_faces=1)
    crops = fasnet_crops(rgb, face, BOX_MAPPINGS["square"])
    assert len(crops) == len(SCALES) == 2
    np.testing.assert_array_equal(crops[0], crop_at_scale(bgr, (50, 40, 24, 24), 2.7))
    assert np.all(crops[0][..., 2] == 255)


def _face(box: FaceBox, landmarks: np.ndarray, rotation: int) -> FaceDetection:
    return FaceDetection(box=box, found=True, method="blazeface", n_faces=1,
                         rotation=rotation,
                         landmarks=tuple((float(x), float(y)) for x, y in landmarks))


@pytest.mark.parametrize("rotation", [90, 180, 270])
@pytest.mark.parametrize("mapping", ["square", "landmarks_x1"])
def test_a_turned_face_is_cropped_upright(rotation: int, mapping: str) -> None:
    """The same face turned by 90/180/270° clockwise gives exactly the upright crops."""
    upright = data.astronaut()[:400, :300]
    box = FaceBox(top=40, right=230, bottom=190, left=80)
    marks = np.array([[120.0, 100.0], [190.0, 100.0], [155.0, 130.0], [125.0, 165.0],
                      [185.0, 165.0]])
    turn = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180,
            270: cv2.ROTATE_90_COUNTERCLOCKWISE}[rotation]
    turned = cv2.rotate(upright, turn)
    # where the box corners and landmarks lie in the turned image (inverse of upright_points)
    h, w = upright.shape[:2]
    inverse = {90: lambda p: np.stack([h - p[:, 1], p[:, 0]], 1),
               180: lambda p: np.stack([w - p[:, 0], h - p[:, 1]], 1),
               270: lambda p: np.stack([p[:, 1], w - p[:, 0]], 1)}[rotation]
    corners = inverse(np.array([[box.left, box.top], [box.right, box.bottom]], float))
    (left, top), (right, bottom) = corners.min(0), corners.max(0)
    turned_face = _face(FaceBox(top=int(top), right=int(right), bottom=int(bottom),
                                left=int(left)),
                        inverse(marks), rotation)
    np.testing.assert_allclose(upright_points(inverse(marks), rotation, turned.shape), marks)
    expected = fasnet_crops(upright, _face(box, marks, 0), BOX_MAPPINGS[mapping])
    got = fasnet_crops(turned, turned_face, BOX_MAPPINGS[mapping])
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(g, e)


def test_the_landmark_box_is_centred_on_the_face_and_sized_by_it() -> None:
    marks = np.array([[100.0, 100.0], [140.0, 100.0], [120.0, 120.0], [105.0, 150.0],
                      [135.0, 150.0]])  # eye-to-mouth distance 50, midpoint (120, 125)
    face = _face(FaceBox(top=0, right=10, bottom=10, left=0), marks, 0)
    mapping = BoxMapping("t", "landmarks", width=2.0, height=3.0, shift=-0.1)
    x, y, w, h = mapping.box(face, 0, (480, 640, 3))
    assert (w, h) == (100.0, 150.0)
    assert (x + w / 2, y + h / 2) == (120.0, 120.0)
    no_marks = FaceDetection(box=FaceBox(top=5, right=45, bottom=45, left=5), found=True,
                             method="blazeface", n_faces=1)
    assert mapping.box(no_marks, 0, (480, 640, 3)) == (5.0, 5.0, 40.0, 40.0)


def test_the_folded_head_equals_the_fitted_pipeline() -> None:
    from workers.fasnet.evaluate import head_model
    from workers.fasnet.model import fold_standardised_logistic

    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 6)) * [1, 5, 0.1, 2, 3, 1] + [0, 2, -1, 0, 4, 0]
    y = (X[:, 0] + 0.3 * X[:, 1] + rng.normal(size=200) > 0.5).astype(int)
    pipeline = head_model(0.1).fit(X, y)
    w, b = fold_standardised_logistic(pipeline)
    np.testing.assert_allclose(1 / (1 + np.exp(-(X @ w + b))),
                               pipeline.predict_proba(X)[:, 1], atol=1e-5)


def test_the_fixed_variants_never_fit_on_the_held_out_collection() -> None:
    """Each fold's threshold comes from the other collections' scores only."""
    from workers.fasnet.evaluate import loco_fixed

    y = np.array([1, 1, 0, 0] * 3)
    collections = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 4, dtype=object)
    scores = np.array([0.9, 0.8, 0.2, 0.1, 0.9, 0.8, 0.2, 0.1, 0.4, 0.35, 0.3, 0.25])
    types = np.array(["none", "none", "print", "print"] * 3, dtype=object)
    result = loco_fixed(scores, y, types, collections)
    # held-out c (all its scores below a/b's EER threshold) is judged at a/b's threshold:
    # every live image of c rejected, whatever c's own scores would choose
    assert result.thresholds["c"] > 0.4 and result.per_collection["c"].bpcer == 1.0
    assert result.per_collection["c"].auc == 1.0


# --- the scorer ------------------------------------------------------------------------


def test_the_scorer_scores_a_located_face_and_needs_one() -> None:
    from common.faces import locate_face
    from workers.fasnet.scorer import FasnetTest

    if not (SHIPPED / "model.json").is_file():
        pytest.fail("models/fasnet is not shipped (liveness train fasnet)")
    test = FasnetTest.from_dir(SHIPPED)
    image = data.astronaut()
    face = locate_face(image)
    score = test.score(image, face)
    assert 0.0 <= score <= 1.0
    out = test.outputs(image, face)
    assert out["p_live"][0, 0] == pytest.approx(score)
    assert out["embedding_v2"].shape == (1, 128) and out["softmax_v1se"].shape == (1, 3)
    with pytest.raises(ModelError, match="needs the face"):
        test.score(image, None)


def test_a_folder_with_an_unknown_box_mapping_is_refused(tmp_path: Path) -> None:
    from common.modelfolder import pin_model_folder
    from workers.fasnet.scorer import FasnetTest

    folder = tmp_path / "fasnet"
    shutil.copytree(SHIPPED, folder)
    doc = json.loads((folder / "model.json").read_text())
    doc["params"]["box"] = "retinaface"
    (folder / "model.json").write_text(json.dumps(doc))
    pin_model_folder(folder)
    with pytest.raises(ModelError, match="unknown box mapping 'retinaface'"):
        FasnetTest.from_dir(folder)
