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
_FONT, _SCALE, _MARGIN = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 6


def wrap_to_width(lines: list[str], width: int) -> list[str]:
    """``lines`` broken at spaces so that each fits ``width`` pixels in the captions'
    font (OpenCV's Hershey simplex at 0.45, a 6 px margin each side); a single word
    longer than that is cut to fit. Returns the new lines (at least one per input line)."""
    room = max(width - 2 * _MARGIN, 1)

    def fits(text: str) -> bool:
        return cv2.getTextSize(text, _FONT, _SCALE, 1)[0][0] <= room

    out: list[str] = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            candidate = f"{current} {word}" if current else word
            if fits(candidate):
                current = candidate
                continue
            if current:
                out.append(current)
            while not fits(word) and len(word) > 1:
                word = word[:-1]
            current = word
        out.append(current)
    return out


def caption_band(lines: list[str], width: int, colour: tuple[int, int, int]) -> np.ndarray:
    """A (h, ``width``, 3) uint8 band of ``colour`` with ``lines`` in white, wrapped to
    the width (:func:`wrap_to_width`); ``h`` grows with the wrapped lines."""
    wrapped = wrap_to_width(lines, width)
    band = np.zeros((_LINE * len(wrapped) + 6, width, 3), np.uint8)
    band[:] = colour
    for i, text in enumerate(wrapped):
        cv2.putText(band, text, (_MARGIN, _LINE * (i + 1)), _FONT, _SCALE, (255, 255, 255),
                    1, cv2.LINE_AA)
    return band


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
    band = caption_band(decision_caption_lines(result), image.shape[1], _BAND_COLOUR)
    ok, out = cv2.imencode(".png", np.concatenate([image, band]))
    if not ok:  # pragma: no cover - OpenCV always encodes 8-bit BGR
        raise RuntimeError("PNG encoding failed")
    return out.tobytes()
