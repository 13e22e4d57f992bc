"""Face location and square crops (common.faces) on skimage's astronaut and composites."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
from skimage import data

from common.config import Settings
from common.faces import (
    FACE_TOO_SMALL,
    MULTIPLE_FACES,
    NO_FACE,
    REASONS,
    FaceBox,
    FaceDetection,
    crop_face,
    detect_faces,
    locate_face,
    square_box,
    whole_image_box,
)

SETTINGS = Settings()
#: The astronaut's face as HOG finds it in the 512x512 image (the other HOG box,
#: rows 335-425, is a false positive on the mission patch of her suit).
TRUE_FACE = FaceBox(top=76, right=265, bottom=166, left=175)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def iou(a: FaceBox, b: FaceBox) -> float:
    rows = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    cols = max(0, min(a.right, b.right) - max(a.left, b.left))
    inter = rows * cols
    return inter / (a.width * a.height + b.width * b.height - inter)


def scaled(box: FaceBox, factor: float, dy: int = 0, dx: int = 0) -> FaceBox:
    return FaceBox(
        top=round(box.top * factor) + dy,
        right=round(box.right * factor) + dx,
        bottom=round(box.bottom * factor) + dy,
        left=round(box.left * factor) + dx,
    )


def paste(canvas: np.ndarray, image: np.ndarray, side: int, top: int, left: int) -> FaceBox:
    """Paste ``image`` resized to ``side`` x ``side``; return where it went."""
    interp = cv2.INTER_AREA if side < image.shape[0] else cv2.INTER_CUBIC
    canvas[top : top + side, left : left + side] = cv2.resize(image, (side, side),
                                                              interpolation=interp)
    return FaceBox(top=top, right=left + side, bottom=top + side, left=left)


# --- detection on real faces -------------------------------------------------------------


def test_astronaut_face_is_found_by_hog(astronaut: np.ndarray) -> None:
    result = locate_face(astronaut, SETTINGS)
    assert result.found
    assert result.method == "hog"
    assert iou(result.box, TRUE_FACE) > 0.8
    assert result.box.width == result.box.height
    # HOG also fires on the mission patch: the face is the larger box and is chosen.
    assert result.n_faces == 2
    assert result.reasons == (MULTIPLE_FACES,)


def test_detect_faces_maps_downscaled_boxes_back(astronaut: np.ndarray) -> None:
    big = cv2.resize(astronaut, (1280, 1280), interpolation=cv2.INTER_CUBIC)
    boxes = detect_faces(big, max_side=640)  # detected on a 640x640 copy
    assert boxes
    best = max(boxes, key=lambda b: b.width * b.height)
    assert iou(best, scaled(TRUE_FACE, 2.5)) > 0.6


def test_cnn_detector_is_selectable(astronaut: np.ndarray) -> None:
    result = locate_face(astronaut, dataclasses.replace(SETTINGS, face_detector="cnn"))
    assert result.found
    assert result.method == "cnn"
    assert iou(result.box, TRUE_FACE) > 0.6


@pytest.mark.parametrize(
    "rows, cols",
    [
        ((76, 166), (175, 265)),  # exactly the detected face box
        ((86, 156), (185, 255)),  # tighter: brow to mouth
    ],
)
def test_tight_crop_is_found_not_whole_image(
    astronaut: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]
) -> None:
    crop = astronaut[rows[0] : rows[1], cols[0] : cols[1]]
    result = locate_face(crop, SETTINGS)
    assert result.found
    assert result.method != "whole_image"
    assert result.reasons == ()
    # The face fills the crop, so the box must cover most of it.
    assert result.box.width >= 0.8 * crop.shape[1]


def test_tighter_crop_needs_the_padded_retry(astronaut: np.ndarray) -> None:
    crop = astronaut[86:156, 185:255]
    assert detect_faces(crop) == []  # plain HOG misses a face without margin
    assert locate_face(crop, SETTINGS).method == "hog_padded"


def test_two_faces_reports_multiple_and_takes_the_larger(astronaut: np.ndarray) -> None:
    face = astronaut[40:200, 140:300]  # the face with some hair and background
    canvas = np.full((360, 640, 3), 120, np.uint8)
    large = paste(canvas, face, 180, 60, 60)
    small = paste(canvas, face, 120, 100, 400)
    result = locate_face(canvas, SETTINGS)
    assert result.found
    assert result.n_faces == 2
    assert MULTIPLE_FACES in result.reasons
    assert iou(result.box, large) > 0.2
    assert iou(result.box, small) == 0.0


def test_tiny_face_is_flagged_too_small(astronaut: np.ndarray) -> None:
    canvas = np.full((480, 640, 3), 120, np.uint8)
    paste(canvas, astronaut, 200, 100, 200)  # the face becomes ~36 px wide
    result = locate_face(canvas, SETTINGS)
    assert result.found
    assert result.box.width < SETTINGS.min_face_side
    assert FACE_TOO_SMALL in result.reasons
    # the same image passes with a lower minimum
    relaxed = locate_face(canvas, dataclasses.replace(SETTINGS, min_face_side=24))
    assert FACE_TOO_SMALL not in relaxed.reasons


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_faceless_image_falls_back_to_whole_image(kind: str) -> None:
    if kind == "blank":
        image = np.full((480, 640, 3), 128, np.uint8)
    else:
        image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    result = locate_face(image, SETTINGS)
    assert not result.found
    assert result.method == "whole_image"
    assert result.reasons == (NO_FACE,)
    assert result.n_faces == 0
    assert result.box == FaceBox(top=0, right=560, bottom=480, left=80)


def test_grey_and_small_images_do_not_crash(astronaut: np.ndarray) -> None:
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    assert locate_face(grey, SETTINGS).found  # 2-D grey is accepted
    grey3 = np.repeat(grey[:, :, None], 3, axis=2)
    assert iou(locate_face(grey3, SETTINGS).box, TRUE_FACE) > 0.8
    tiny = cv2.resize(astronaut, (64, 64), interpolation=cv2.INTER_AREA)
    result = locate_face(tiny, SETTINGS)
    assert 0 <= result.box.top < result.box.bottom <= 64
    assert 0 <= result.box.left < result.box.right <= 64


def test_bad_input_is_refused(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError, match="detector"):
        detect_faces(astronaut, model="haar")
    with pytest.raises(ValueError, match="shape"):
        locate_face(np.zeros((10, 10, 4), np.uint8), SETTINGS)
    with pytest.raises(ValueError, match="uint8"):
        locate_face(np.zeros((64, 64, 3), np.float32), SETTINGS)


def test_to_dict_is_json_ready() -> None:
    box = FaceBox(top=1, right=12, bottom=11, left=2)
    result = FaceDetection(box, True, "hog", 2, (MULTIPLE_FACES,))
    assert (box.width, box.height) == (10, 10)
    assert json.loads(json.dumps(result.to_dict())) == {
        "box": {"top": 1, "right": 12, "bottom": 11, "left": 2},
        "found": True,
        "method": "hog",
        "n_faces": 2,
        "reasons": ["multiple_faces"],
    }
    assert set(REASONS) == {NO_FACE, MULTIPLE_FACES, FACE_TOO_SMALL}


# --- square_box maths --------------------------------------------------------------------


@pytest.mark.parametrize(
    "box, expected",
    [
        # inside: side = max(h, w), anchored at the top-left corner
        (FaceBox(top=10, right=50, bottom=40, left=20), FaceBox(10, 50, 40, 20)),
        (FaceBox(top=10, right=40, bottom=60, left=20), FaceBox(10, 70, 60, 20)),
        (FaceBox(top=10, right=80, bottom=30, left=20), FaceBox(10, 80, 70, 20)),
        # overflowing the bottom / right edge: shifted back up / left
        (FaceBox(top=170, right=60, bottom=190, left=20), FaceBox(160, 60, 200, 20)),
        (FaceBox(top=10, right=300, bottom=60, left=280), FaceBox(10, 300, 60, 250)),
        # sticking out of the top / left edge (negative coordinates): shifted down / right
        (FaceBox(top=-10, right=60, bottom=30, left=20), FaceBox(0, 60, 40, 20)),
        (FaceBox(top=10, right=30, bottom=50, left=-5), FaceBox(10, 40, 50, 0)),
        # larger than the shorter side (200): shrunk to 200 and kept inside
        (FaceBox(top=0, right=250, bottom=240, left=10), FaceBox(0, 210, 200, 10)),
        (FaceBox(top=50, right=300, bottom=100, left=0), FaceBox(0, 200, 200, 0)),
        (FaceBox(top=50, right=420, bottom=100, left=150), FaceBox(0, 300, 200, 100)),
    ],
)
def test_square_box(box: FaceBox, expected: FaceBox) -> None:
    result = square_box(box, (200, 300, 3))
    assert result == expected
    assert result.width == result.height


def test_whole_image_box_is_the_largest_centred_square() -> None:
    assert whole_image_box((480, 640)) == FaceBox(top=0, right=560, bottom=480, left=80)
    assert whole_image_box((301, 100, 3)) == FaceBox(top=100, right=100, bottom=200, left=0)


# --- crop_face ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 90, 224])
def test_crop_face_shape_and_dtype(astronaut: np.ndarray, size: int) -> None:
    out = crop_face(astronaut, TRUE_FACE, size)
    assert out.shape == (size, size, 3)
    assert out.dtype == np.uint8
    assert out.flags["C_CONTIGUOUS"]


def test_crop_face_content(astronaut: np.ndarray) -> None:
    same = crop_face(astronaut, TRUE_FACE, 90)
    np.testing.assert_array_equal(same, astronaut[76:166, 175:265])
    same[0, 0] = 0
    assert astronaut[76, 175].any()  # a copy, not a view
    # shrinking with INTER_AREA averages: a 2x2 block mean
    half = crop_face(astronaut, TRUE_FACE, 45)
    block = astronaut[76:78, 175:177].astype(float).mean(axis=(0, 1))
    np.testing.assert_allclose(half[0, 0], block, atol=1)


def test_crop_face_refuses_a_box_outside_the_image(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError, match="overlap"):
        crop_face(astronaut, FaceBox(top=600, right=700, bottom=700, left=600), 64)
    with pytest.raises(ValueError, match="size"):
        crop_face(astronaut, TRUE_FACE, 0)
