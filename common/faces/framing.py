"""Is the whole face in the frame, and are its landmarks plausible? Geometry measures
in the face's own frame, so that every side of the face, at any in-plane angle, is
judged by the same rule.

The face's frame is that of the aligned crop (:mod:`common.faces.alignment`): the
similarity that maps the five landmarks onto ArcFace's 112×112 template. In it,
:data:`FACE_REGION` is the part of a face that must be in the picture: from cheek to
cheek and from the eyebrows to the chin. The forehead above the eyebrows is left out
on purpose — tight crops and close-ups routinely cut it, and the eyes, nose, mouth and
cheeks carry what the tests look at — and that is the only allowance: no side has a
larger limit than another.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from common.faces.alignment import alignment_matrix

#: The face region (x0, y0, x1, y1) in the 112×112 template's pixels (context 1): the
#: medians of Face Mesh's cheek (points 234, 454), eyebrow (105, 334) and chin (152)
#: points over the 951 frontal (|yaw| ≤ 20°), uncut live faces of ../shared/data, as
#: mapped by the five-point alignment. The eyes lie on row 51.6, 35.2 px apart.
FACE_REGION = (16.0, 37.0, 96.0, 114.0)


def _inside_span(start: np.ndarray, end: np.ndarray, width: float, height: float
                 ) -> tuple[float, float] | None:
    """The parameter interval [t0, t1] ⊂ [0, 1] of the segment start→end that lies in
    the rectangle [0, width] × [0, height] (Liang–Barsky clipping); ``None`` if none."""
    t0, t1 = 0.0, 1.0
    delta = end - start
    for p, q in ((-delta[0], start[0]), (delta[0], width - start[0]),
                 (-delta[1], start[1]), (delta[1], height - start[1])):
        if abs(p) < 1e-12:
            if q < 0:
                return None
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
    return (t0, t1) if t0 <= t1 else None


def side_cuts(five: np.ndarray, shape: Sequence[int]) -> dict[str, float]:
    """How far the image's edges cut into the face region from each of its sides.

    For ``top`` (eyebrows) and ``bottom`` (chin): the fraction of the region's vertical
    midline, counted from that end, that lies outside the image; for ``left`` and
    ``right`` (image-left and image-right cheek of the upright face) the same along
    its horizontal midline. Each is 0 (that side is in the picture) to 1 (the whole
    midline is outside). ``five`` (5, 2) image pixels, ``shape`` (H, W, …). Raises
    ``ValueError`` for degenerate landmarks.
    """
    matrix = alignment_matrix(five, 112)
    inverse = cv2.invertAffineTransform(matrix)
    x0, y0, x1, y1 = FACE_REGION
    xm, ym = (x0 + x1) / 2.0, (y0 + y1) / 2.0

    def to_image(x: float, y: float) -> np.ndarray:
        return np.array([x, y]) @ inverse[:, :2].T + inverse[:, 2]

    h, w = float(shape[0]), float(shape[1])
    cuts = {}
    for first, second, (a, b) in (("top", "bottom", ((xm, y0), (xm, y1))),
                                  ("left", "right", ((x0, ym), (x1, ym)))):
        span = _inside_span(to_image(*a), to_image(*b), w, h)
        cuts[first], cuts[second] = (1.0, 1.0) if span is None else \
            (float(span[0]), float(1.0 - span[1]))
    return cuts


def face_cut(five: np.ndarray, shape: Sequence[int]) -> float:
    """The largest of :func:`side_cuts`: 0 when the whole face region is in the image."""
    return max(side_cuts(five, shape).values())


def box_cut(box: tuple[float, float, float, float], shape: Sequence[int]) -> float:
    """The largest part of the detection ``box`` (x0, y0, x1, y1 pixels) outside one
    image edge, as a fraction of the box's extent across that edge (0: inside; 1: for a
    degenerate box). Detectors regress the whole face's box even where the frame cuts
    it, so this is evidence of a cut independent of the landmarks (which Face Mesh may
    squeeze into the visible part of a half face)."""
    h, w = float(shape[0]), float(shape[1])
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return 1.0
    cut = max(max(-x0, x1 - w, 0.0) / (x1 - x0), max(-y0, y1 - h, 0.0) / (y1 - y0))
    return min(cut, 1.0)


def edge_margin(five: np.ndarray, shape: Sequence[int]) -> float:
    """Distance of the five landmarks (5, 2) to the nearest image edge, in inter-ocular
    distances; negative when a landmark lies outside the image."""
    h, w = int(shape[0]), int(shape[1])
    iod = max(float(np.hypot(*(five[1] - five[0]))), 1e-6)
    x, y = five[:, 0], five[:, 1]
    nearest = np.minimum(np.minimum(x, w - x), np.minimum(y, h - y))
    return float(nearest.min()) / iod


def eye_mouth_drop(five: np.ndarray) -> float:
    """How far the mouth lies below the eyes, in inter-ocular distances, measured along
    the face's own down direction (perpendicular to the eye line, turned clockwise from
    image-left eye → image-right eye). About 1 for a frontal face at any in-plane
    angle; ≤ 0 when the points are mirrored (nose and mouth on the forehead side)."""
    eyes = (five[0] + five[1]) / 2.0
    mouth = (five[3] + five[4]) / 2.0
    across = five[1] - five[0]
    iod = max(float(np.hypot(*across)), 1e-6)
    down = np.array([-across[1], across[0]]) / iod
    return float((mouth - eyes) @ down) / iod
