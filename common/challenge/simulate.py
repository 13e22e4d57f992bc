"""Camera frames of a colour-flash challenge, simulated from one real photograph.

No screen could be filmed here, so the check is measured on frames made from real face
images with the model of :mod:`common.challenge.reflectance`, plus what real cameras add
on top of it: the screen's light falls off with distance (the face gets it, the room
behind much less), the camera re-exposes and re-balances white between frames, the
person moves a little, sensor noise and JPEG compression. Attacks are made the same way:
a replayed recording of another session (lit by another sequence), a stream not lit by
this screen (an injected still or video), and a stream tinted in software to follow the
sequence (the whole frame changes colour, the room as much as the face).

The simulation is the test bench of the check, never evidence that it works on real
screens and cameras: ``bench/challenge.py`` prints its figures and the README says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from common.challenge.reflectance import SRGB_TO_LINEAR


@dataclass(frozen=True)
class Conditions:
    """What lies between the screen and the frames.

    ``screen_ratio``: the screen's light on the face relative to the room's (β; an
    office lit at ~300 lux and a phone at full brightness 30 cm away: ~0.05-0.2).
    ``background_ratio``: the share of it that reaches the room behind. ``exposure``,
    ``white_balance``: how much of the change in brightness / colour cast the camera
    undoes between frames (0 none, 1 all). ``jitter_px``: largest shift of the person
    between frames. ``noise``: sensor noise, sRGB units (0-255). ``jpeg_quality``:
    0 for none.
    """

    screen_ratio: float = 0.1
    background_ratio: float = 0.15
    exposure: float = 0.5
    white_balance: float = 0.0
    jitter_px: int = 3
    noise: float = 2.0
    jpeg_quality: int = 85


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return srgb * 255.0


def light_map(shape: tuple[int, ...], box: tuple[float, float, float, float],
              background_ratio: float) -> np.ndarray:
    """How much of the screen's light each pixel gets (H, W) float32: 1 on the face (an
    ellipse around ``box``, ``(x0, y0, x1, y1)``), ``background_ratio`` elsewhere, with a
    soft edge."""
    height, width = shape[:2]
    x0, y0, x1, y1 = box
    weights = np.full((height, width), background_ratio, np.float32)
    centre = (int((x0 + x1) / 2), int((y0 + y1) / 2))
    axes = (max(1, int(0.6 * (x1 - x0))), max(1, int(0.75 * (y1 - y0))))
    cv2.ellipse(weights, centre, axes, 0, 0, 360, 1.0, -1)
    sigma = max(1.0, 0.08 * (x1 - x0))
    return cv2.GaussianBlur(weights, (0, 0), sigma)


def simulate_capture(image: np.ndarray, box: tuple[float, float, float, float],
                     colours: Sequence[Sequence[int]], conditions: Conditions = Conditions(),
                     rng: np.random.Generator | None = None, uniform_light: bool = False
                     ) -> list[np.ndarray]:
    """One frame (H, W, 3) uint8 per screen colour of ``colours`` (sRGB 0-255), as a
    camera would see ``image`` (RGB uint8, the ambient-lit scene) with the screen's light
    added on ``box``. ``uniform_light``: the whole frame gets the full light (a software
    tint, not a reflection)."""
    rng = rng or np.random.default_rng()
    base = SRGB_TO_LINEAR[image].astype(np.float32)
    weights = (np.ones(image.shape[:2], np.float32) if uniform_light
               else light_map(image.shape, box, conditions.background_ratio))
    base_means = base.reshape(-1, 3).mean(axis=0)
    frames = []
    for colour in colours:
        screen = SRGB_TO_LINEAR[np.asarray(colour, np.uint8)].astype(np.float32)
        lit = base * (1.0 + conditions.screen_ratio * weights[..., None] * screen)
        means = lit.reshape(-1, 3).mean(axis=0)
        gain = (base_means.mean() / means.mean()) ** conditions.exposure
        balance = (base_means / means) ** conditions.white_balance
        lit *= gain * balance / balance.mean()
        srgb = _to_srgb(lit) + rng.normal(0.0, conditions.noise, lit.shape)
        frame = np.clip(np.rint(srgb), 0, 255).astype(np.uint8)
        if conditions.jitter_px:
            dx, dy = rng.integers(-conditions.jitter_px, conditions.jitter_px + 1, 2)
            shift = np.float32([[1, 0, dx], [0, 1, dy]])
            frame = cv2.warpAffine(frame, shift, frame.shape[1::-1],
                                   borderMode=cv2.BORDER_REFLECT)
        if conditions.jpeg_quality:
            _, data = cv2.imencode(".jpg", frame[..., ::-1],
                                    [cv2.IMWRITE_JPEG_QUALITY, conditions.jpeg_quality])
            frame = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()
        frames.append(frame)
    return frames
