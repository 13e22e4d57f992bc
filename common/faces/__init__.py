"""The face stage: detection, landmarks, alignment and capture checks.

The pipeline calls :func:`locate_face` once per image; tests crop the face they need
with :func:`face_crop` (five-point aligned, with a context margin) or :func:`crop_face`
(the seed's square box). Modules: :mod:`~common.faces.blazeface` (MediaPipe BlazeFace on
LiteRT), :mod:`~common.faces.detectors` (the selectable detectors),
:mod:`~common.faces.landmarks` (Face Mesh → five points and pose),
:mod:`~common.faces.alignment`, :mod:`~common.faces.capture` (the checks, built on
:mod:`~common.faces.framing` — is the whole face in the frame —,
:mod:`~common.faces.regions` — skin and surround — and
:mod:`~common.faces.photometry` — exposure, backlight, skin tone) and
:mod:`~common.faces.locate` (the search strategy).
"""

from common.faces.alignment import ARCFACE_112, aligned_crop, crop_face, face_crop
from common.faces.detectors import DETECTORS, get_detector
from common.faces.locate import (
    NO_FACE,
    PASSES,
    as_rgb,
    locate_face,
    search_faces,
    square_box,
    whole_image_box,
)
from common.result import CAPTURE_REASONS, FaceBox, FaceDetection

#: Every face reason code, with its meaning (stable API strings).
REASONS = CAPTURE_REASONS

__all__ = ["ARCFACE_112", "CAPTURE_REASONS", "DETECTORS", "NO_FACE", "PASSES", "REASONS",
           "FaceBox", "FaceDetection", "aligned_crop", "as_rgb", "crop_face", "face_crop",
           "get_detector", "locate_face", "search_faces", "square_box", "whole_image_box"]
