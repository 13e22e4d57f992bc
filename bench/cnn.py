"""Benchmark: the CNN test, one core.

Prints, per backbone, the median milliseconds of one crop through the backbone and
global pooling (a compiled ``tf.function``, batch 1), its parameter count and float32
size; then for the shipped model (``models/cnn``) the load time in a fresh process
(import + model + first call), the file size, and the median milliseconds of
``CnnTest.score`` (LiteRT) on the astronaut with its located face (every crop scale the
model uses, face stage excluded) and of ``CnnTest.explain`` (score + Grad-CAM PNG, only
for jobs submitted with ``explain=true``).

Usage: python bench/cnn.py [--repeat N] [--backbone NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from skimage import data

from bench.timing import median_ms, scorer_load_seconds
from common.config import get_settings
from common.faces import locate_face
from workers.cnn.backbones import BACKBONES, get_backbone
from workers.cnn.features import FeatureExtractor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--backbone", action="append", choices=list(BACKBONES))
    args = parser.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    print(f"{'backbone':<22}{'input':>7}{'ms / crop':>11}{'params (M)':>12}{'float32 MB':>12}")
    for name in args.backbone or list(BACKBONES):
        backbone = get_backbone(name)
        extractor = FeatureExtractor(backbone)
        side = backbone.input_side
        crop = np.random.default_rng(0).integers(0, 256, (1, side, side, 3), dtype=np.uint8)
        ms = median_ms(lambda e=extractor, c=crop: e(c), args.repeat)
        params = extractor.model.count_params()  # type: ignore[attr-defined]
        print(f"{name:<22}{side:>7}{ms:>11.1f}{params / 1e6:>12.2f}{params * 4 / 1e6:>12.1f}")
    folder = get_settings().models_dir / "cnn"
    if not (folder / "model.json").is_file():
        print(f"no shipped model in {folder}")
        return
    from workers.cnn.scorer import CnnTest

    load_s = scorer_load_seconds("workers.cnn.scorer:CnnTest", folder)
    test = CnnTest.from_dir(folder)
    image = data.astronaut()
    face = locate_face(image)
    ms = median_ms(lambda: test.score(image, face), args.repeat)
    explain_ms = median_ms(lambda: test.explain(image, face), args.repeat)
    from workers.cnn.model import MODEL_FILE

    size = (folder / MODEL_FILE).stat().st_size / 1e6
    print(f"\nshipped {test.info.name} {test.info.version} ({', '.join(test.scales)}): "
          f"{ms:.1f} ms per face (all its crops), load {load_s:.2f} s "
          f"in a fresh process, {MODEL_FILE} {size:.1f} MB; with the Grad-CAM PNG "
          f"(explain=true) {explain_ms:.1f} ms")


if __name__ == "__main__":
    main()
