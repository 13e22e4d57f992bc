"""The MiniFASNet pair's weight files: where they are, their pinned SHA-256, the port.

Minivision's Silent-Face-Anti-Spoofing (``minivision-ai/Silent-Face-Anti-Spoofing``,
commit b6d5f04a, Apache-2.0) ships two PyTorch state dicts; ``../shared/weights/
silent-face/`` holds them with the licence, a README (crop procedure, input format) and
the original code's outputs on 24 reference crops (``reference/``). They are read with
the torch-free reader (:mod:`workers.torch_port`), checked against the SHA-256 below,
and built into Keras by :mod:`workers.fasnet.network`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config import PROJECT_ROOT
from common.errors import ModelError
from common.modelfolder import sha256_file

#: Where ``liveness train fasnet`` looks for the weights by default.
DEFAULT_WEIGHTS_DIR = PROJECT_ROOT.parent / "shared" / "weights" / "silent-face"
#: The reference outputs of the original code (``reference.json`` and 24 PNG crops).
REFERENCE_SUBDIR = "reference"
SOURCE = "minivision-ai/Silent-Face-Anti-Spoofing"
SOURCE_COMMIT = "b6d5f04a"


@dataclass(frozen=True)
class WeightFile:
    """One network of the pair: its file, crop scale, network and pinned SHA-256."""

    name: str
    scale: float
    network: str
    tag: str
    sha256: str


#: The pair, in the order of the served model's inputs (scale 2.7, then 4.0).
WEIGHT_FILES = (
    WeightFile("2.7_80x80_MiniFASNetV2.pth", 2.7, "MiniFASNetV2", "v2",
               "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0"),
    WeightFile("4_0_0_80x80_MiniFASNetV1SE.pth", 4.0, "MiniFASNetV1SE", "v1se",
               "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990"),
)


def checked_weight_path(weights_dir: Path, weight: WeightFile) -> Path:
    """The path of ``weight`` in ``weights_dir``; raises :class:`ModelError` when it is
    missing or is not the pinned file (SHA-256)."""
    path = Path(weights_dir) / weight.name
    if not path.is_file():
        raise ModelError(f"{path} is missing: the fasnet test is ported from Minivision's "
                         f"{weight.name} ({SOURCE}); pass --weights DIR")
    digest = sha256_file(path)
    if digest != weight.sha256:
        raise ModelError(f"{path}: SHA-256 {digest[:12]}… is not the pinned "
                         f"{weight.sha256[:12]}… of {SOURCE} {SOURCE_COMMIT}")
    return path


def port_networks(weights_dir: Path = DEFAULT_WEIGHTS_DIR) -> list[Any]:
    """The two Keras networks (V2, V1SE) with their ported weights (outputs: softmax
    (N, 3), embedding (N, 128)); raises :class:`ModelError` for missing or unexpected
    weight files."""
    from workers.fasnet.network import build_minifasnet
    from workers.torch_port import load_state_dict

    return [build_minifasnet(load_state_dict(checked_weight_path(weights_dir, w)), w.network)
            for w in WEIGHT_FILES]


def reference_cases(weights_dir: Path = DEFAULT_WEIGHTS_DIR) -> list[dict[str, Any]]:
    """The original code's reference cases (``reference/reference.json``): each with
    ``crop`` (PNG file name in ``reference/``), ``model`` (weight file), ``scale``,
    ``box_xywh``, ``logits`` and ``softmax``. Raises ``FileNotFoundError`` without it."""
    doc = json.loads((Path(weights_dir) / REFERENCE_SUBDIR / "reference.json").read_text())
    return list(doc["cases"])
