"""Benchmark: the fasnet test (the MiniFASNet pair under LiteRT), one thread.

Prints, for the shipped model (``models/fasnet``): the load time in a fresh process
(imports + model + first call), the ``.tflite`` file's size, and the median milliseconds
per image of ``FasnetTest.score`` on scikit-image's astronaut with its located face —
both crops (Minivision's procedure) and both networks, face stage excluded — and of the
two networks alone (the model on ready crops, batch 1).

Usage: python bench/fasnet.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skimage import data

from bench.timing import median_ms, scorer_load_seconds
from common.config import get_settings
from common.faces import locate_face


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    folder = get_settings().models_dir / "fasnet"
    if not (folder / "model.json").is_file():
        print(f"no shipped model in {folder} (liveness train fasnet)")
        return
    from workers.fasnet.model import MODEL_FILE
    from workers.fasnet.scorer import FasnetTest

    load_s = scorer_load_seconds("workers.fasnet.scorer:FasnetTest", folder)
    test = FasnetTest.from_dir(folder)
    image = data.astronaut()
    face = locate_face(image)
    crops = test.crops(image, face)
    score_ms = median_ms(lambda: test.score(image, face), args.repeat)
    model_ms = median_ms(lambda: test.runner(crops), args.repeat)
    size = (folder / MODEL_FILE).stat().st_size / 1e6
    print(f"fasnet {test.info.name} {test.info.version}: {score_ms:.2f} ms per face "
          f"(2 crops + 2 networks, LiteRT, one thread; face stage excluded), of which "
          f"{model_ms:.2f} ms the networks; load {load_s:.2f} s in a "
          f"fresh process; {MODEL_FILE} {size:.2f} MB")


if __name__ == "__main__":
    main()
