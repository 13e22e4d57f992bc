"""The colours of a challenge: a random sequence over a palette of saturated colours.

The palette holds the six colours a screen can show at full saturation with distinct
chromaticities (the primaries and secondaries of sRGB). White and black are left out:
they change how much light reaches the face, not its colour, and the check reads colour
only (exposure is the camera's to change). Consecutive colours always differ, and every
sequence moves each of the three channels both on and off, so that every channel of the
reflected light has something to follow.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence

#: Name → (R, G, B) of the colours a challenge draws from, sRGB 0-255.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
}
MIN_LENGTH, MAX_LENGTH = 4, 16


def _spans_every_channel(colours: Sequence[tuple[int, int, int]]) -> bool:
    return all(len({c[channel] for c in colours}) == 2 for channel in range(3))


def new_colours(length: int, rng: random.Random | None = None) -> list[tuple[int, int, int]]:
    """``length`` palette colours drawn at random (``secrets.SystemRandom`` by default).

    No colour follows itself, and each channel is on in some colour and off in another.
    Raises :class:`ValueError` for a length outside 4-16.
    """
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"a challenge has {MIN_LENGTH}-{MAX_LENGTH} colours, not {length}")
    rng = rng or secrets.SystemRandom()
    choices = list(PALETTE.values())
    while True:
        colours: list[tuple[int, int, int]] = []
        for _ in range(length):
            options = [c for c in choices if not colours or c != colours[-1]]
            colours.append(rng.choice(options))
        if _spans_every_channel(colours):
            return colours


def to_hex(colour: Sequence[int]) -> str:
    """``(255, 0, 0)`` → ``"#ff0000"``."""
    return "#" + "".join(f"{int(v):02x}" for v in colour)


def parse_hex(text: str) -> tuple[int, int, int]:
    """``"#ff0000"`` → ``(255, 0, 0)``; :class:`ValueError` for anything else."""
    if not (isinstance(text, str) and len(text) == 7 and text[0] == "#"):
        raise ValueError(f"not a #rrggbb colour: {text!r}")
    value = int(text[1:], 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255
