"""The MiniFASNet crops: Minivision's crop procedure on the face stage's detection.

**The procedure** (Silent-Face-Anti-Spoofing, ``src/generate_patches.py``,
``CropImage``), for a face box ``(x, y, w, h)`` in an image of ``W × H`` pixels and a
scale ``s`` (2.7 for MiniFASNetV2, 4.0 for MiniFASNetV1SE):

1. ``s' = min(s, (H − 1) / h, (W − 1) / w)``; a box of ``w·s' × h·s'`` about the box's
   centre ``(x + w/2, y + h/2)``;
2. a box leaving the image is shifted back inside (not clipped): past the left/top edge
   by ``d`` moves it right/down by ``d``; past ``W − 1`` / ``H − 1`` moves it back;
3. corners truncated to int (``int()``, toward zero), the bottom-right one inclusive:
   rows ``y0 … y1``, columns ``x0 … x1``;
4. that region resized to 80 × 80 by ``cv2.resize``'s default (bilinear) interpolation.

Pixels stay BGR uint8; the networks take them as float32 0–255
(:mod:`workers.fasnet.network`).

**The box.** The original takes its box from a Caffe RetinaFace-style detector; here it
comes from the face stage (:class:`common.result.FaceDetection`), never a second
detection. :data:`BOX_MAPPINGS` are the candidate ways to turn the face stage's result
into the original's ``(x, y, w, h)``: the square box as it is, or a box derived from the
five landmarks (centre and size from the eyes and mouth, so it does not depend on which
detector or search pass found the face). ``liveness train fasnet`` measures each on
every collection and the model folder names the one it ships (``params.box``).

**Rotation.** A face the face stage found turned by 90/180/270° (``FaceDetection.rotation``)
is cropped upright: the image is turned so the face stands, the box and landmarks are
mapped into the turned image, and the procedure runs there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from common.result import FaceDetection

#: Side of both networks' input, pixels.
INPUT_SIDE = 80
#: Context scale of each network's crop (the weight files' names: 2.7_80x80, 4_0_0_80x80).
SCALES = (2.7, 4.0)

# cv2.rotate code turning a face that lies at this clockwise angle upright (as the face
# stage's search does).
_UPRIGHT = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 270: cv2.ROTATE_90_CLOCKWISE,
            180: cv2.ROTATE_180}


def crop_box(image_w: int, image_h: int, box: Sequence[float], scale: float
             ) -> tuple[int, int, int, int]:
    """The original's enlarged box ``(x0, y0, x1, y1)``, inclusive, for a face box
    ``(x, y, w, h)`` (pixels) in a ``image_w × image_h`` image (module docstring, steps
    1–3). Raises ``ValueError`` for a box without a positive width and height."""
    x, y, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0):
        raise ValueError(f"a face box needs a positive width and height; got {w} × {h}")
    scale = min((image_h - 1) / h, min((image_w - 1) / w, scale))
    new_w, new_h = w * scale, h * scale
    cx, cy = w / 2 + x, h / 2 + y
    x0, y0 = cx - new_w / 2, cy - new_h / 2
    x1, y1 = cx + new_w / 2, cy + new_h / 2
    if x0 < 0:
        x1 -= x0
        x0 = 0
    if y0 < 0:
        y1 -= y0
        y0 = 0
    if x1 > image_w - 1:
        x0 -= x1 - image_w + 1
        x1 = image_w - 1
    if y1 > image_h - 1:
        y0 -= y1 - image_h + 1
        y1 = image_h - 1
    return int(x0), int(y0), int(x1), int(y1)


def crop_at_scale(bgr: np.ndarray, box: Sequence[float], scale: float,
                  side: int = INPUT_SIDE) -> np.ndarray:
    """The original's crop: BGR uint8 (H, W, 3) image, face box ``(x, y, w, h)`` →
    BGR uint8 (side, side, 3) (module docstring, steps 1–4)."""
    h, w = bgr.shape[:2]
    x0, y0, x1, y1 = crop_box(w, h, box, scale)
    region = bgr[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1]
    return cv2.resize(np.ascontiguousarray(region), (side, side))


@dataclass(frozen=True)
class BoxMapping:
    """How the face stage's result becomes the original's face box ``(x, y, w, h)``.

    ``kind`` ``"square"``: the face stage's square box as it is. ``kind``
    ``"landmarks"``: centred on the midpoint of the eyes' and mouth corners' centres
    (``cy`` shifted by ``shift`` eye-to-mouth distances, up when negative), ``width`` and
    ``height`` that many eye-to-mouth distances (measured upright).
    """

    name: str
    kind: str
    width: float = 0.0
    height: float = 0.0
    shift: float = 0.0

    def box(self, face: FaceDetection, rotation: int, image_shape: Sequence[int]
            ) -> tuple[float, float, float, float]:
        """``(x, y, w, h)`` in the image turned upright by ``rotation`` (shape: the
        original image's (H, W, …))."""
        if self.kind == "landmarks" and len(face.landmarks) == 5:
            pts = upright_points(np.asarray(face.landmarks, np.float64), rotation,
                                 image_shape)
            eyes, mouth = pts[:2].mean(axis=0), pts[3:5].mean(axis=0)
            span = float(np.hypot(*(mouth - eyes)))
            if span > 0:
                cx, cy = (eyes + mouth) / 2.0
                cy += self.shift * span
                w, h = self.width * span, self.height * span
                return cx - w / 2.0, cy - h / 2.0, w, h
        b = face.box
        corners = upright_points(np.array([[b.left, b.top], [b.right, b.bottom]], np.float64),
                                 rotation, image_shape)
        (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
        return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


#: RetinaFace-style box in eye-to-mouth distances: width, height and the centre's shift
#: below the eye–mouth midpoint — the medians over the 11 distinct images of the
#: original's reference cases (``../shared/weights/silent-face/reference/``; their source
#: images are in ``../shared/data``: NUAA and psi_balveer), where its boxes are 2.14–2.40
#: wide, 2.26–2.49 tall and −0.08 to −0.02 low.
RETINA_WIDTH, RETINA_HEIGHT, RETINA_SHIFT = 2.34, 2.40, -0.04

#: Candidate mappings compared by ``liveness train fasnet`` (the model folder names the
#: shipped one): the square box, and the landmark box fitted to the original's boxes at
#: 0.85, 1 and 1.15 times its size.
BOX_MAPPINGS: dict[str, BoxMapping] = {m.name: m for m in (
    BoxMapping("square", "square"),
    *(BoxMapping(f"landmarks_x{k:g}", "landmarks", RETINA_WIDTH * k, RETINA_HEIGHT * k,
                 RETINA_SHIFT) for k in (0.85, 1.0, 1.15)),
)}


def upright_points(points: np.ndarray, rotation: int, image_shape: Sequence[int]
                   ) -> np.ndarray:
    """Points (N, 2) ``(x, y)`` of the original image mapped into the image turned so
    that a face lying at ``rotation`` degrees clockwise stands upright
    (``cv2.rotate`` with :data:`_UPRIGHT`'s code). Raises ``ValueError`` for a rotation
    that is not 0/90/180/270."""
    h, w = int(image_shape[0]), int(image_shape[1])
    x, y = points[:, 0], points[:, 1]
    rotation %= 360
    if rotation == 0:
        return points.copy()
    if rotation == 90:      # turned counter-clockwise: (x, y) → (y, w − x)
        return np.stack([y, w - x], axis=1)
    if rotation == 270:     # turned clockwise: (x, y) → (h − y, x)
        return np.stack([h - y, x], axis=1)
    if rotation == 180:
        return np.stack([w - x, h - y], axis=1)
    raise ValueError(f"rotation must be 0, 90, 180 or 270 degrees; got {rotation}")


def upright_image(image: np.ndarray, rotation: int) -> np.ndarray:
    """``image`` turned so that a face lying at ``rotation`` degrees clockwise stands."""
    rotation %= 360
    if rotation == 0:
        return image
    if rotation not in _UPRIGHT:
        raise ValueError(f"rotation must be 0, 90, 180 or 270 degrees; got {rotation}")
    return cv2.rotate(image, _UPRIGHT[rotation])


def fasnet_crops(rgb: np.ndarray, face: FaceDetection, mapping: BoxMapping,
                 scales: Sequence[float] = SCALES, side: int = INPUT_SIDE
                 ) -> list[np.ndarray]:
    """One BGR uint8 (side, side, 3) crop per scale of an RGB uint8 (H, W, 3) image,
    upright, on the face stage's face mapped by ``mapping``."""
    rotation = int(face.rotation) % 360
    bgr = upright_image(np.ascontiguousarray(rgb[:, :, ::-1]), rotation)
    box = mapping.box(face, rotation, rgb.shape)
    return [crop_at_scale(bgr, box, s, side) for s in scales]
