"""The job's decision added to a test's explanation image.

A test's explanation (the cnn test's Grad-CAM PNG, :mod:`workers.cnn.explain`) is drawn
when that test has scored, so its caption can only give the test's own verdict. The
job's decision comes later, from the fusion of every test and the capture checks, and
may differ (the cnn test may say ``live`` where the job says ``spoof`` or ``retry``). The
fusion pool therefore adds a second caption band, clearly apart, with the job's
decision (:func:`add_decision_caption`), before the result is stored.
"""

from __future__ import annotations

import cv2
import numpy as np

from common.result import LivenessResult

_LINE = 18
_BAND_COLOUR = (60, 40, 0)  # BGR: a dark blue band, unlike the test's black caption


def decision_caption_lines(result: LivenessResult) -> list[str]:
    """The text of the band: the job's decision, its score against its threshold, and
    the reasons when it is ``retry``."""
    if result.score is None:
        scored = "no test scored"
    else:
        relation = ">=" if result.score >= result.threshold else "<"
        scored = (f"fused score {result.score:.3f} {relation} threshold {result.threshold:.3f}"
                  f" ({', '.join(sorted(result.tests))})")
    lines = [f"job decision: {result.decision} - all tests and the capture checks", scored]
    if result.decision == "retry" and result.reasons:
        lines.append("why: " + ", ".join(result.reasons)[:90])
    return lines


def add_decision_caption(png: bytes, result: LivenessResult) -> bytes:
    """``png`` with a band under it stating the job's decision; ``ValueError`` when the
    bytes are not a decodable image."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the explanation is not a decodable image")
    lines = decision_caption_lines(result)
    band = np.zeros((_LINE * len(lines) + 6, image.shape[1], 3), np.uint8)
    band[:] = _BAND_COLOUR
    for i, text in enumerate(lines):
        cv2.putText(band, text, (6, _LINE * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
    ok, out = cv2.imencode(".png", np.concatenate([image, band]))
    if not ok:  # pragma: no cover - OpenCV always encodes 8-bit BGR
        raise RuntimeError("PNG encoding failed")
    return out.tobytes()
