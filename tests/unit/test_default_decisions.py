"""The default job can answer both ``live`` and ``spoof`` (issue 16: before it, the
default job's highest possible score was below its threshold, so every face was
``spoof``).

In process, with the shipped models and the registry's default tests (what a job that
names no tests runs): scikit-image's astronaut as a capture, and the same photograph
shown on a screen — generated here: the image inside a black bezel on a dark
surround, as a phone or monitor held up to the camera looks. Both must be decided
outside the retry band. ``tests/unit/test_fusion_shipped.py`` checks the same on the
out-of-fold scores of every collection (every subset reachable on both sides).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from common.calibration import log_odds
from common.pipeline import load_tests, score_image
from common.registry import default_registry

#: Surround around the screen (pixels) and the bezel's width.
PAD, BEZEL = 128, 14


def on_a_screen(image: np.ndarray) -> np.ndarray:
    """``image`` (H, W, 3) uint8 shown on a screen: black bezel, dark surround."""
    h, w = image.shape[:2]
    frame = np.full((h + 2 * PAD, w + 2 * PAD, 3), 35, np.uint8)
    frame[PAD:PAD + h, PAD:PAD + w] = image
    cv2.rectangle(frame, (PAD - BEZEL, PAD - BEZEL), (PAD + w + BEZEL, PAD + h + BEZEL),
                  (10, 10, 10), BEZEL)
    return frame


@pytest.fixture(scope="module")
def default_tests():
    names = default_registry().resolve(None)
    assert names == ["cnn", "fasnet", "quality"]
    return load_tests(names)


@pytest.mark.parametrize(("make", "decision"), [
    (lambda a: a, "live"),
    (on_a_screen, "spoof"),
])
def test_the_default_job_answers_live_and_spoof(default_tests, make, decision) -> None:
    result = score_image(make(data.astronaut()), default_tests).to_dict()
    assert result["decision"] == decision, result
    assert result["face_found"] and result["reasons"] == []
    margin = float(log_odds(np.array([result["score"]]))[0]
                   - log_odds(np.array([result["threshold"]]))[0])
    assert abs(margin) > 1.0, margin  # clearly outside the ±0.5 retry band
