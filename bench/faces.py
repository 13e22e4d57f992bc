"""Benchmark: face location (common.faces.locate_face), one thread.

Prints the median milliseconds of ``locate_face`` on a 640x480 and a 1280x720
image with a face, a tight face crop and a faceless image, and which method fired.
With ``--data DIR`` (repeatable) it also runs over every image of each folder and
prints how often each method fired (how often the tight-crop fallbacks are needed)
and its median time there.

Usage: python bench/faces.py [--repeat N] [--detector hog|cnn] [--data DIR ...]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np
from skimage import data

from common.config import Settings, get_settings
from common.errors import ImageError
from common.faces import METHODS, locate_face
from common.imageio import load_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def on_canvas(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` scaled to the canvas height and centred on a grey canvas."""
    side = height
    scaled = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((height, width, 3), 120, np.uint8)
    left = (width - side) // 2
    canvas[:, left : left + side] = scaled
    return canvas


def cases() -> dict[str, np.ndarray]:
    astronaut = data.astronaut()  # face at rows 76-166, columns 175-265
    tight = cv2.resize(astronaut[86:156, 185:255], (280, 280), interpolation=cv2.INTER_CUBIC)
    faceless = cv2.resize(data.coffee(), (640, 480), interpolation=cv2.INTER_AREA)
    return {
        "face 640x480": on_canvas(astronaut, 640, 480),
        "face 1280x720": on_canvas(astronaut, 1280, 720),
        "tight crop 280x280": tight,
        "faceless 640x480": faceless,
    }


def time_case(image: np.ndarray, settings: Settings, repeat: int) -> tuple[float, str]:
    times, method = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        method = locate_face(image, settings).method
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), method


def survey(folder: Path, settings: Settings, limit: int | None) -> None:
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    methods: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    times, errors = [], 0
    for path in paths:
        try:
            image = load_image(path, settings)
        except ImageError:
            errors += 1
            continue
        start = time.perf_counter()
        found = locate_face(image, settings)
        times.append(time.perf_counter() - start)
        methods[found.method] += 1
        reasons.update(found.reasons)
    n = len(times)
    if not n:
        print(f"{folder}: no readable images")
        return
    shares = "  ".join(f"{m} {100 * methods[m] / n:.1f}%" for m in METHODS if methods[m])
    extra = "  ".join(f"{r} {100 * c / n:.1f}%" for r, c in sorted(reasons.items()))
    print(f"{folder} ({n} images, {errors} unreadable): {shares}")
    print(f"    reasons: {extra or '-'}   median {1000 * statistics.median(times):.1f} ms, "
          f"max {1000 * max(times):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--detector", choices=("hog", "cnn"), default=None,
                        help="override LIVENESS_FACE_DETECTOR")
    parser.add_argument("--data", type=Path, action="append", default=[],
                        help="folder of real images (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="images per --data folder")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    settings = get_settings()
    if args.detector:
        settings = dataclasses.replace(settings, face_detector=args.detector)
    locate_face(np.zeros((64, 64, 3), np.uint8), settings)  # load the detectors first
    print(f"detector {settings.face_detector}, max side {settings.face_detect_max_side}")
    print(f"{'case':<20} {'method':<12} {'median ms':>10}")
    for name, image in cases().items():
        ms, method = time_case(image, settings, args.repeat)
        print(f"{name:<20} {method:<12} {ms:>10.1f}")
    for folder in args.data:
        survey(folder, settings, args.limit)


if __name__ == "__main__":
    main()
