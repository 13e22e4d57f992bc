"""Grad-CAM explanation images of the CNN test's decision.

The served model outputs, per crop scale, the map ``M`` whose positive part is the
Grad-CAM map of bona fide and whose negative part that of an attack presentation
(:mod:`workers.cnn.model`). :func:`explanation_png` shows the map of the test's own
decision (its score against its threshold) over each scale's view: the whole image for
``frame`` (the map is stretched back from the model's square input to the image's
aspect), the aligned crop for ``face``. One normaliser for all scales, so a scale that
holds little evidence looks cool.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from common.explanations import caption_band
from common.result import FaceDetection
from workers.cnn.features import crop_at_scale

#: Height of each panel, pixels.
PANEL = 224


def grad_cam(maps: np.ndarray, bona_fide: bool) -> np.ndarray:
    """(h, w, S) float maps → Grad-CAM of the decided class, scaled to [0, 1] by one
    common maximum (all zero when nothing supports the decision)."""
    heat = np.maximum(maps if bona_fide else -maps, 0.0).astype(np.float32)
    peak = float(heat.max())
    return heat / peak if peak > 0 else heat


def overlay(view: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 ``view`` with ``heat`` (h, w) in [0, 1] resized over it as a JET map."""
    h, w = view.shape[:2]
    up = cv2.resize(heat, (w, h), interpolation=cv2.INTER_CUBIC)
    colour = cv2.applyColorMap(np.clip(up * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(view, 1 - alpha, colour, alpha, 0)


def _view(image: np.ndarray, face: FaceDetection | None, scale: str) -> np.ndarray:
    if scale == "frame":
        h, w = image.shape[:2]
        width = max(1, round(w * PANEL / h))
        return cv2.resize(np.ascontiguousarray(image), (width, PANEL),
                          interpolation=cv2.INTER_AREA)
    return crop_at_scale(image, face, scale, PANEL)  # type: ignore[arg-type]


def explanation_png(image: np.ndarray, face: FaceDetection | None, maps: np.ndarray,
                    scales: Sequence[str], score: float, threshold: float) -> bytes:
    """The PNG bytes: one panel per scale (its view with the Grad-CAM map of the
    test's verdict over it) under a caption naming that verdict, score and threshold —
    the test's own, not the job's: the fusion adds the job's decision below
    (:func:`common.explanations.add_decision_caption`).

    ``image`` RGB uint8 (H, W, 3); ``maps`` (h, w, S) float32, one channel per scale.
    """
    bona_fide = score >= threshold
    heat = grad_cam(maps, bona_fide)
    panels = []
    for i, scale in enumerate(scales):
        panel = overlay(_view(image, face, scale), heat[..., i])
        cv2.putText(panel, scale, (6, PANEL - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1, cv2.LINE_AA)
        panels.append(panel)
    body = np.concatenate(panels, axis=1)
    if body.shape[1] < PANEL:  # a narrow (portrait) frame: keep room for the caption
        pad = np.zeros((body.shape[0], PANEL - body.shape[1], 3), np.uint8)
        body = np.concatenate([body, pad], axis=1)
    verdict = "live" if bona_fide else "spoof"
    relation = ">=" if bona_fide else "<"
    lines = [f"cnn test's own verdict: {verdict} (evidence for {verdict} shown)",
             f"P(live) {score:.3f} {relation} its threshold {threshold:.3f}"]
    caption = caption_band(lines, body.shape[1], (0, 0, 0))
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.concatenate([caption, body]),
                                                cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV always encodes 8-bit RGB
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()
