"""Decide whether a job's challenge frames followed its colour sequence.

The face stage calls :func:`check_challenge` with the job's image, the face it found
there, the frames (one per colour, in order) and the colours. Per frame it finds the
face again (the configured detector), measures the mean linear colour of the face's
middle and of the room behind (:mod:`common.challenge.reflectance`), and fits how both
followed the sequence. The frames must show the image's person (face_recognition's
128-d embedding, distance below its documented 0.6 tolerance), so a live accomplice
cannot answer the challenge for a photo submitted as the image.

Outcomes (:data:`common.result.CHALLENGE_OUTCOMES`), in this order of precedence:

- ``unreadable`` — a frame without a face, with several, the face moved (box IoU with
  the first frame's below 0.5), frames of different sizes, the face's middle mostly
  clipped or dark (``exposure``), or no readable room behind the person
  (``face_too_close``, ``background_unreadable``: a blown-out window or a black room;
  without it a tint added in software cannot be told from a reflection);
- ``failed`` / ``other_person`` — the frames show another face than the image;
- ``passed`` — correlation >= ``challenge_min_correlation`` (0.8) and response >=
  ``challenge_min_response``, and the room behind did not follow as strongly as the face
  (its response below 1 / :data:`MIN_FACE_TO_BACKGROUND` of the face's);
- ``failed`` / ``background_follows`` — it did, at least as strongly as the weakest live
  response (a tint added in software to a stream);
- ``failed`` / ``wrong_sequence`` — the face's colour moved three times as much as the
  weakest live response would (RMS >= 3 × ``challenge_min_response`` × the sequence's)
  but not along it;
- ``no_response`` — too little moved to tell.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from common.challenge.reflectance import (
    background_mask,
    face_region,
    fit_response,
    region_mean,
)
from common.config import Settings
from common.faces.detectors import FaceDetector, box_iou
from common.result import ChallengeCheck, FaceBox

#: The face must respond at least this many times as strongly as the room behind it.
MIN_FACE_TO_BACKGROUND = 1.5
#: A frame's box must overlap the first frame's by this IoU (the person held still).
MIN_BOX_IOU = 0.5
#: Of the face's middle, at least this share of pixels must be neither clipped nor dark;
#: of the room behind (windows and lamps clip), at least this share.
MIN_USABLE = 0.5
MIN_BACKGROUND_USABLE = 0.25
#: ``wrong_sequence`` needs the face's colour to move at least this many times the
#: smallest live response (below it: ``no_response``, as noise and motion alone move it).
WRONG_SEQUENCE_FACTOR = 3.0
#: A second face counts when its box side is at least this share of the first's.
SECOND_FACE_SHARE = 0.5
#: The room behind must cover at least this share of the frame.
MIN_BACKGROUND_SHARE = 0.02
#: face_recognition's documented tolerance: distances above it are other people.
IDENTITY_TOLERANCE = 0.6


def _face_boxes(frames: Sequence[np.ndarray], detector: FaceDetector
                ) -> tuple[list[tuple[float, float, float, float]], str | None]:
    boxes = []
    for frame in frames:
        faces = detector.detect(frame)
        if not faces:
            return boxes, "face_missing"
        if len(faces) > 1 and faces[1].side >= SECOND_FACE_SHARE * faces[0].side:
            return boxes, "several_faces"
        boxes.append(faces[0].box)
    if any(box_iou(box, boxes[0]) < MIN_BOX_IOU for box in boxes[1:]):
        return boxes, "face_moved"
    return boxes, None


def _css(box: tuple[float, float, float, float], shape: tuple[int, ...]
         ) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) → face_recognition's (top, right, bottom, left), in the image."""
    x0, y0, x1, y1 = box
    return (max(0, int(y0)), min(shape[1], int(x1)), min(shape[0], int(y1)),
            max(0, int(x0)))


def identity_distance(image: np.ndarray, image_box: tuple[float, float, float, float],
                      frame: np.ndarray, frame_box: tuple[float, float, float, float]
                      ) -> float | None:
    """face_recognition distance between the faces at the two boxes; None when either
    yields no embedding (face_recognition: dlib's ResNet on its 5-point alignment)."""
    import face_recognition

    first = face_recognition.face_encodings(image, [_css(image_box, image.shape)],
                                            model="small")
    second = face_recognition.face_encodings(frame, [_css(frame_box, frame.shape)],
                                             model="small")
    if not first or not second:
        return None
    return float(face_recognition.face_distance([first[0]], second[0])[0])


def preload() -> None:
    """Load face_recognition's models now (a pool process's start), not in the first job
    that answers a challenge (~1 s)."""
    blank = np.zeros((96, 96, 3), np.uint8)
    identity_distance(blank, (16, 16, 80, 80), blank, (16, 16, 80, 80))


def _box_xyxy(box: FaceBox) -> tuple[float, float, float, float]:
    return float(box.left), float(box.top), float(box.right), float(box.bottom)


def check_challenge(image: np.ndarray, image_box: FaceBox | None,
                    frames: Sequence[np.ndarray], colours: Sequence[Sequence[int]],
                    detector: FaceDetector, settings: Settings,
                    challenge_id: str | None = None) -> ChallengeCheck:
    """Check ``frames`` (RGB uint8 (H, W, 3), one per colour of ``colours``, sRGB 0-255)
    against the sequence; ``image`` (RGB uint8) with its face at ``image_box`` (None: no
    face was found there, and identity is not compared). Never raises on image content;
    :class:`ValueError` when the frame and colour counts differ."""
    if len(frames) != len(colours):
        raise ValueError(f"{len(frames)} frames for {len(colours)} colours")
    start = time.perf_counter()

    def verdict(outcome: str, why: str | None = None, **measures: float | None
                ) -> ChallengeCheck:
        return ChallengeCheck(outcome=outcome, why=why, challenge_id=challenge_id,
                              frames=len(frames),
                              seconds=round(time.perf_counter() - start, 4), **measures)

    if len({frame.shape for frame in frames}) > 1:
        return verdict("unreadable", "frame_sizes_differ")
    boxes, problem = _face_boxes(frames, detector)
    if problem:
        return verdict("unreadable", problem)
    face_means, background_means = [], []
    for frame, box in zip(frames, boxes, strict=True):
        mean, usable = region_mean(frame, face_region(box, frame.shape))
        if usable < MIN_USABLE:
            return verdict("unreadable", "exposure")
        face_means.append(mean)
        mask = background_mask(box, frame.shape)
        if mask.mean() < MIN_BACKGROUND_SHARE:
            return verdict("unreadable", "face_too_close")
        background, share = region_mean(frame, mask)
        if share < MIN_BACKGROUND_USABLE:
            return verdict("unreadable", "background_unreadable")
        background_means.append(background)
    face = fit_response(np.array(face_means), np.asarray(colours))
    background_response = round(fit_response(np.array(background_means),
                                              np.asarray(colours)).response, 5)
    middle = len(frames) // 2
    distance = None
    if image_box is not None:
        distance = identity_distance(image, _box_xyxy(image_box), frames[middle],
                                     boxes[middle])
    measures = {"correlation": round(face.correlation, 5), "response": round(face.response, 5),
                "background_response": background_response,
                "identity_distance": None if distance is None else round(distance, 4)}
    if distance is not None and distance > IDENTITY_TOLERANCE:
        return verdict("failed", "other_person", **measures)
    min_response = settings.challenge_min_response
    if face.correlation >= settings.challenge_min_correlation and face.response >= min_response:
        if (background_response >= min_response
                and background_response * MIN_FACE_TO_BACKGROUND > face.response):
            return verdict("failed", "background_follows", **measures)
        return verdict("passed", **measures)
    if face.observed_rms >= WRONG_SEQUENCE_FACTOR * min_response * face.expected_rms:
        return verdict("failed", "wrong_sequence", **measures)
    return verdict("no_response", **measures)
