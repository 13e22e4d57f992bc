"""The job's decision is added under a test's explanation, apart from the test's own
verdict (issue 16: the Grad-CAM caption says both, separately)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from common.explanations import add_decision_caption, decision_caption_lines
from common.result import FaceBox, FaceDetection, LivenessResult, TestOutcome


def _result(decision: str, score: float, reasons: tuple[str, ...] = ()) -> LivenessResult:
    face = FaceDetection(FaceBox(10, 90, 90, 10), True, "blazeface", 1)
    return LivenessResult(score=score, decision=decision, threshold=0.4, fusion="f",
                          face=face, tests={"cnn": TestOutcome(score=0.9),
                                            "quality": TestOutcome(score=0.1)},
                          reasons=reasons)


def test_the_caption_states_the_jobs_decision_not_the_tests() -> None:
    lines = decision_caption_lines(_result("spoof", 0.25))
    assert lines[0].startswith("job decision: spoof")
    assert "0.250 < threshold 0.400" in lines[1] and "cnn, quality" in lines[1]
    retry = decision_caption_lines(_result("retry", 0.8, ("face_partial",)))
    assert retry[0].startswith("job decision: retry") and "face_partial" in retry[2]


def test_the_band_is_added_below_the_test_s_own_image() -> None:
    own = np.full((240, 300, 3), 200, np.uint8)
    png = cv2.imencode(".png", own)[1].tobytes()
    out = cv2.imdecode(np.frombuffer(add_decision_caption(png, _result("live", 0.9)),
                                     np.uint8), cv2.IMREAD_COLOR)
    assert out.shape[1] == 300 and out.shape[0] > 240
    np.testing.assert_array_equal(out[:240], own)            # the test's image untouched
    assert tuple(out[-2, -2]) == (60, 40, 0)                  # the band, apart from it
    with pytest.raises(ValueError, match="not a decodable image"):
        add_decision_caption(b"not a png", _result("live", 0.9))


def test_caption_lines_are_wrapped_to_the_image_width_and_nothing_is_cut() -> None:
    """A 224-px-wide explanation cut its caption at the right edge (fresh-clone check)."""
    from common.explanations import _FONT, _MARGIN, _SCALE, caption_band, wrap_to_width

    lines = ["cnn test's own verdict: live (evidence for live shown)",
             "fused score 0.829 >= threshold 0.118 (cnn, fasnet)"]
    wrapped = wrap_to_width(lines, 224)
    assert len(wrapped) > len(lines)
    assert " ".join(wrapped).split() == " ".join(lines).split()   # every word kept, in order
    assert all(cv2.getTextSize(t, _FONT, _SCALE, 1)[0][0] <= 224 - 2 * _MARGIN
               for t in wrapped)
    assert caption_band(lines, 224, (0, 0, 0)).shape == (18 * len(wrapped) + 6, 224, 3)
    assert wrap_to_width(["x" * 400], 60)[0] and wrap_to_width([""], 60) == [""]
