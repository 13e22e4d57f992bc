"""The face stage (common.faces): detection, rotations, tiles, landmarks, alignment and
the capture checks, on skimage's astronaut and images made from it."""

from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest
from skimage import data

from common.config import Settings
from common.errors import ModelError
from common.faces import (
    ARCFACE_112,
    CAPTURE_REASONS,
    DETECTORS,
    NO_FACE,
    REASONS,
    FaceBox,
    FaceDetection,
    aligned_crop,
    crop_face,
    face_crop,
    get_detector,
    locate_face,
    square_box,
    whole_image_box,
)
from common.faces.alignment import alignment_matrix
from common.faces.blazeface import letterbox, ssd_anchors, weighted_nms
from common.faces.capture import blur
from common.faces.detectors import check_detector
from common.faces.framing import box_cut, edge_margin
from common.faces.locate import is_upright

SETTINGS = Settings()
#: The astronaut's face in the 512x512 image (rows 70-175, columns 174-279 as BlazeFace
#: finds it; her eyes at about (204, 101) and (246, 104)).
TRUE_FACE = FaceBox(top=76, right=265, bottom=166, left=175)
EYES = ((204.0, 101.0), (246.0, 104.0))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def located(astronaut: np.ndarray) -> FaceDetection:
    return locate_face(astronaut, SETTINGS)


def iou(a: FaceBox, b: FaceBox) -> float:
    rows = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    cols = max(0, min(a.right, b.right) - max(a.left, b.left))
    inter = rows * cols
    return inter / (a.width * a.height + b.width * b.height - inter)


def near(point: tuple[float, float], target: tuple[float, float], tol: float) -> bool:
    return math.dist(point, target) <= tol


def motion_blur(image: np.ndarray, length: int) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    return cv2.filter2D(image, -1, kernel)


# --- the upright astronaut ----------------------------------------------------------------


def test_face_landmarks_and_pose(located: FaceDetection) -> None:
    assert located.found and located.capture_ok and located.usable
    assert located.method == "blazeface" and located.n_faces == 1 and located.reasons == ()
    assert iou(located.box, TRUE_FACE) > 0.5
    assert located.box.width == located.box.height
    assert located.score is not None and located.score > 0.75
    assert located.rotation == 0
    assert len(located.landmarks) == 5
    left_eye, right_eye, nose, mouth_l, mouth_r = located.landmarks
    assert near(left_eye, EYES[0], 6) and near(right_eye, EYES[1], 6)
    assert left_eye[1] < nose[1] < mouth_l[1] and left_eye[0] < nose[0] < right_eye[0]
    assert mouth_l[0] < mouth_r[0]
    assert located.pose is not None
    assert abs(located.pose["yaw"]) < 10 and abs(located.pose["roll"]) < 10
    assert set(located.quality) >= {"face_side", "box_cut", "face_cut", "edge_margin",
                                    "mesh_tilt", "eye_mouth_drop", "yaw", "pitch",
                                    "exposure", "backlight", "overexposed", "blur", "faces"}


def test_result_round_trips_through_json(located: FaceDetection) -> None:
    doc = json.loads(json.dumps(located.to_dict()))
    assert FaceDetection.from_dict(doc) == located
    # a record written before the capture checks existed still reads
    old = {"box": located.box.to_dict(), "found": True, "method": "hog", "n_faces": 1,
           "reasons": []}
    legacy = FaceDetection.from_dict(old)
    assert legacy.capture_ok is None and legacy.usable and legacy.landmarks == ()


@pytest.mark.parametrize("detector", DETECTORS)
def test_every_detector_finds_the_astronaut(astronaut: np.ndarray, detector: str) -> None:
    settings = dataclasses.replace(SETTINGS, face_detector=detector)
    face = locate_face(astronaut, settings)
    assert face.found and face.method.startswith(detector)
    assert iou(face.box, TRUE_FACE) > 0.4
    # whatever found it, the landmarks come from Face Mesh
    assert near(face.landmarks[0], EYES[0], 8) and near(face.landmarks[1], EYES[1], 8)


def test_settings_accept_exactly_the_detectors(monkeypatch) -> None:
    for name in DETECTORS:
        monkeypatch.setenv("LIVENESS_FACE_DETECTOR", name)
        assert Settings.from_env().face_detector == name


def test_unknown_detector_is_refused_by_settings(monkeypatch) -> None:
    monkeypatch.setenv("LIVENESS_FACE_DETECTOR", "haar")
    with pytest.raises(ValueError, match="LIVENESS_FACE_DETECTOR"):
        Settings.from_env()


# --- rotations, tiles, padding ------------------------------------------------------------


@pytest.mark.parametrize(("code", "rotation"), [
    (cv2.ROTATE_90_CLOCKWISE, 90), (cv2.ROTATE_180, 180),
    (cv2.ROTATE_90_COUNTERCLOCKWISE, 270)])
def test_turned_images_are_found_and_crops_turned_back(astronaut, located, code, rotation):
    turned = cv2.rotate(astronaut, code)
    face = locate_face(turned, SETTINGS)
    assert face.found and face.capture_ok, face
    assert face.rotation == rotation
    assert face.method.endswith(f"rot{rotation}")
    upright = crop_face(astronaut, located.box, 96).astype(int)
    back = crop_face(turned, face.box, 96, rotation=face.rotation).astype(int)
    # turned back upright: closer to the upright crop than any other quarter turn of it
    diffs = [np.abs(np.rot90(back, k) - upright).mean() for k in range(4)]
    assert int(np.argmin(diffs)) == 0, diffs
    # the aligned crop needs no rotation step: the landmarks carry it
    aligned = face_crop(turned, face, 112)
    assert np.abs(aligned.astype(int) - face_crop(astronaut, located, 112)).mean() < 20


def test_in_plane_tilt_is_measured_as_roll(astronaut: np.ndarray) -> None:
    tilted = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((256, 256), 30, 1.0),
                            (512, 512))
    face = locate_face(tilted, SETTINGS)
    assert face.found and face.rotation == 0
    assert face.pose is not None and -40 < face.pose["roll"] < -20  # turned anticlockwise


def test_small_face_in_a_large_photo_is_found_in_tiles(astronaut: np.ndarray) -> None:
    """1920x1080 with a 100 px face: too small for the whole-frame pass (640 px copy)."""
    frame = np.full((1080, 1920, 3), 100, np.uint8)
    frame[300:812, 700:1212] = astronaut
    face = locate_face(frame, SETTINGS)
    assert face.found and face.method == "blazeface_tiles"
    assert iou(face.box, FaceBox(376, 965, 466, 875)) > 0.4


def test_tiny_face_in_a_12_megapixel_photo_is_too_small(astronaut: np.ndarray) -> None:
    photo = np.full((3000, 4000, 3), 100, np.uint8)
    photo[1000:1300, 2000:2300] = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)
    face = locate_face(photo, SETTINGS)  # the face is ~58 px
    assert face.found and "face_too_small" in face.reasons and not face.capture_ok


def test_close_up_filling_the_frame_is_found(astronaut: np.ndarray) -> None:
    close = cv2.resize(astronaut[86:160, 185:260], (480, 480), interpolation=cv2.INTER_CUBIC)
    face = locate_face(close, SETTINGS)
    assert face.found


def test_masked_lower_face_is_found(astronaut: np.ndarray) -> None:
    masked = astronaut.copy()
    cv2.fillPoly(masked, [np.array([[180, 128], [272, 128], [262, 185], [190, 185]])],
                 (170, 200, 225))
    face = locate_face(masked, SETTINGS)
    assert face.found and iou(face.box, TRUE_FACE) > 0.4


@pytest.mark.parametrize("kind", ["coffee", "noise", "flat"])
def test_faceless_image_is_no_face(kind: str) -> None:
    image = {
        "coffee": data.coffee(),
        "noise": np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8),
        "flat": np.full((480, 640, 3), 128, np.uint8),
    }[kind]
    face = locate_face(image, SETTINGS)
    assert not face.found and face.reasons == (NO_FACE,) and face.capture_ok is False
    assert face.method == "whole_image" and face.box == whole_image_box(image.shape)
    assert not face.usable


def test_grey_and_small_images_do_not_crash(astronaut: np.ndarray) -> None:
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    assert locate_face(grey, SETTINGS).found
    assert isinstance(locate_face(np.zeros((64, 64, 3), np.uint8), SETTINGS), FaceDetection)
    assert isinstance(locate_face(np.zeros((3, 900, 3), np.uint8), SETTINGS), FaceDetection)


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 2), (64, 5000, 3), (5000, 64, 3),
                                   (300, 1, 3), (1500, 1500, 3)])
def test_odd_shapes_never_crash(shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    face = locate_face(image, SETTINGS)
    assert not face.found and face.reasons == (NO_FACE,)


def test_bad_input_is_refused(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        locate_face(astronaut.astype(np.float32), SETTINGS)
    with pytest.raises(ValueError, match="shape"):
        locate_face(np.zeros((10, 10, 4), np.uint8), SETTINGS)


# --- the capture checks: one per reason code ----------------------------------------------


def test_every_reason_code_is_documented() -> None:
    assert REASONS is CAPTURE_REASONS
    assert set(CAPTURE_REASONS) == {"no_face", "multiple_faces", "face_too_small",
                                    "face_partial", "landmarks_unreliable", "face_turned",
                                    "too_dark", "backlit", "overexposed", "too_blurry"}


def test_too_dark(astronaut: np.ndarray) -> None:
    face = locate_face((astronaut * 0.12).astype(np.uint8), SETTINGS)
    assert face.found and "too_dark" in face.reasons and not face.capture_ok
    assert face.quality["exposure"] < SETTINGS.min_exposure


def test_overexposed(astronaut: np.ndarray) -> None:
    bright = np.clip(astronaut.astype(np.float32) * 1.9 + 20, 0, 255).astype(np.uint8)
    face = locate_face(bright, SETTINGS)
    assert face.found and "overexposed" in face.reasons and not face.capture_ok


def test_too_blurry(astronaut: np.ndarray) -> None:
    face = locate_face(motion_blur(astronaut, 21), SETTINGS)
    assert face.found and "too_blurry" in face.reasons and not face.capture_ok
    assert face.quality["blur"] > SETTINGS.max_blur


def test_face_too_small(astronaut: np.ndarray) -> None:
    face = locate_face(cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA),
                       SETTINGS)
    assert face.found and "face_too_small" in face.reasons and not face.capture_ok


def test_face_partial(astronaut: np.ndarray) -> None:
    cut = np.ascontiguousarray(astronaut[:, 215:])  # 40 % of the face is left of the cut
    face = locate_face(cut, SETTINGS)
    assert face.found and "face_partial" in face.reasons and not face.capture_ok
    assert face.quality["edge_margin"] < SETTINGS.min_edge_margin


def test_face_turned(astronaut: np.ndarray) -> None:
    """The pose check (real turned heads are measured by bench/face_coverage.py): the
    astronaut reads a pitch of about 10°, so a 5° limit refuses her."""
    strict = dataclasses.replace(SETTINGS, max_pitch_deg=5.0)
    face = locate_face(astronaut, strict)
    assert face.found and face.reasons == ("face_turned",) and not face.capture_ok


def test_multiple_faces_policy(astronaut: np.ndarray) -> None:
    two = np.full((512, 1100, 3), 90, np.uint8)
    two[:, :512] = astronaut
    two[:, 588:] = astronaut[:, ::-1]
    face = locate_face(two, SETTINGS)
    assert face.n_faces == 2 and face.reasons == ("multiple_faces",) and not face.capture_ok
    lenient = locate_face(two, dataclasses.replace(SETTINGS, multiple_faces="largest"))
    assert lenient.reasons == ("multiple_faces",) and lenient.capture_ok
    # a much smaller second face does not count
    small = two.copy()
    small[:, 512:] = 90
    small[200:300, 700:800] = cv2.resize(astronaut, (100, 100), interpolation=cv2.INTER_AREA)
    assert "multiple_faces" not in locate_face(small, SETTINGS).reasons


def test_capture_settings_are_read_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("LIVENESS_MIN_EXPOSURE", "12.5")
    monkeypatch.setenv("LIVENESS_MAX_BACKLIGHT", "40")
    monkeypatch.setenv("LIVENESS_MULTIPLE_FACES", "largest")
    settings = Settings.from_env()
    assert settings.min_exposure == 12.5 and settings.multiple_faces == "largest"
    assert settings.max_backlight == 40.0
    monkeypatch.setenv("LIVENESS_MULTIPLE_FACES", "ignore")
    with pytest.raises(ValueError, match="LIVENESS_MULTIPLE_FACES"):
        Settings.from_env()


# --- measure and geometry helpers ---------------------------------------------------------


def test_blur_measure_orders_blur() -> None:
    grey = cv2.cvtColor(data.astronaut()[60:200, 160:300], cv2.COLOR_RGB2GRAY).astype(np.float32)
    sharp, soft = blur(grey), blur(cv2.GaussianBlur(grey, (0, 0), 3))
    assert 0 <= sharp < soft <= 1
    assert blur(np.full((50, 50), 80, np.float32)) == 1.0


def test_box_cut_and_edge_margin() -> None:
    assert box_cut((0, 0, 10, 10), (20, 20)) == 0.0
    assert box_cut((-10, 0, 10, 10), (20, 20)) == 0.5
    assert box_cut((-2, 15, 22, 25), (20, 20)) == 0.5  # the largest one-sided part
    assert box_cut((5, 5, 5, 9), (20, 20)) == 1.0
    five = np.array([[40, 40], [60, 40], [50, 50], [42, 60], [58, 60]], np.float32)
    assert edge_margin(five, (100, 100)) == pytest.approx(2.0)  # 40 px / 20 px apart
    assert edge_margin(five - [45, 0], (100, 100)) < 0


def test_is_upright() -> None:
    from common.faces.blazeface import RawFace

    kps = np.array([[10, 10], [30, 10], [20, 20], [20, 30], [0, 12], [40, 12]], np.float32)
    face = RawFace((0, 0, 40, 40), kps, 0.9)
    assert is_upright(face)
    turned = RawFace((0, 0, 40, 40), kps[:, ::-1].copy(), 0.9)  # eyes one above the other
    assert not is_upright(turned)


def test_alignment_matrix_maps_landmarks_onto_the_template() -> None:
    angle, scale, shift = math.radians(25), 2.5, np.array([300.0, 120.0])
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)],
                            [math.sin(angle), math.cos(angle)]])
    points = ARCFACE_112 @ rot.T + shift  # the template, turned, scaled and moved
    matrix = alignment_matrix(points, 112)
    np.testing.assert_allclose(points @ matrix[:, :2].T + matrix[:, 2], ARCFACE_112,
                               atol=1e-6)
    wide = alignment_matrix(points, 224, context=2.0)  # half the size about the centre
    mapped = points @ wide[:, :2].T + wide[:, 2]
    np.testing.assert_allclose(mapped, (ARCFACE_112 * 2 - 112) / 2 + 112, atol=1e-6)
    with pytest.raises(ValueError, match="five"):
        alignment_matrix(points[:4], 112)
    with pytest.raises(ValueError, match="degenerate"):
        alignment_matrix(np.zeros((5, 2)), 112)


def test_aligned_crop_levels_the_eyes(astronaut: np.ndarray, located: FaceDetection) -> None:
    tilted = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((256, 256), 30, 1.0),
                            (512, 512))
    face = locate_face(tilted, SETTINGS)
    crop = aligned_crop(tilted, np.asarray(face.landmarks), 224, context=1.0)
    again = locate_face(crop, SETTINGS)
    assert again.found and abs(again.pose["roll"]) < 6
    (lx, ly), (rx, ry) = again.landmarks[:2]
    assert abs(ly - 0.46 * 224) < 10 and abs(math.dist((lx, ly), (rx, ry)) - 0.315 * 224) < 12
    wide = aligned_crop(astronaut, np.asarray(located.landmarks), 224, context=2.0)
    assert wide.shape == (224, 224, 3) and wide.dtype == np.uint8


def test_blazeface_building_blocks() -> None:
    assert ssd_anchors(128, (8, 16, 16, 16), 1.0).shape == (896, 2)
    assert ssd_anchors(192, (4,), 0.0).shape == (2304, 2)
    square, scale, px, py = letterbox(np.zeros((100, 200, 3), np.uint8), 128)
    assert square.shape == (128, 128, 3) and scale == 0.64 and (px, py) == (0.0, 32.0)
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    merged = weighted_nms(boxes, kps, np.array([0.9, 0.6, 0.8], np.float32))
    assert len(merged) == 2 and merged[0][2] == pytest.approx(0.9)
    np.testing.assert_allclose(merged[0][0], [0.4, 0.4, 10.4, 10.4], atol=1e-5)
    assert get_detector("blazeface") is get_detector("blazeface")
    for name in DETECTORS:
        check_detector(name)
    with pytest.raises(ModelError, match="unknown face detector"):
        check_detector("haar")


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


def test_degenerate_landmarks_are_measured_on_the_box(astronaut: np.ndarray) -> None:
    from common.faces.blazeface import RawFace
    from common.faces.capture import assess_capture
    from common.faces.landmarks import Landmarks

    marks = Landmarks(np.zeros((468, 2), np.float32), np.zeros((5, 2), np.float32), 40.0,
                      0.0, 0.0, 0.0)
    face = RawFace((174.0, 70.0, 279.0, 175.0), np.zeros((0, 2), np.float32), 0.9)
    result = assess_capture(astronaut, face, [face], marks, SETTINGS)
    assert 150 < result.measures["exposure"] <= 255
    assert "landmarks_unreliable" in result.reasons and not result.ok


def test_small_face_in_a_webcam_frame_needs_the_full_range_model(astronaut) -> None:
    """Why the default runs both BlazeFace models: short range alone misses a ~65 px face
    in a 640x480 frame."""
    frame = np.full((480, 640, 3), 120, np.uint8)
    frame[50:390, 100:440] = cv2.resize(astronaut, (340, 340), interpolation=cv2.INTER_AREA)
    assert locate_face(frame, SETTINGS).found
    short = dataclasses.replace(SETTINGS, face_detector="blazeface_short")
    assert not locate_face(frame, short).found
