"""Benchmark: the face stage (common.faces.locate_face), one thread, side by side per
detector.

For each detector (default: blazeface, then dlib hog, the seed's detector) it prints the
median milliseconds of ``locate_face`` on a 640×480 webcam frame, a 1920×1080 frame, a
tight face crop, a frame turned 90°, a frame turned 45°, a 100 px face in a 1080p frame,
faceless 640×480 and 1080p frames, and two images past ``LIVENESS_FACE_SEARCH_MAX_SIDE``
(4032): a faceless 6300×6300 image (smooth, as a 115 KB JPEG of that size is) and a
200 px face in a 6000×4000 photo — which search pass found the face, and the model load
time (a fresh interpreter: import, load the detector and Face Mesh, first call). The
large images run ``--repeat-large`` times (default 3).

Usage: python bench/faces.py [--repeat N] [--detector NAME ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np
from skimage import data

from bench.timing import fresh_process_seconds
from common.config import get_settings
from common.faces import DETECTORS, locate_face
from common.faces.locate import tile_count

LOAD_SNIPPET = """
import time, numpy as np
start = time.perf_counter()
from common.config import Settings
from common.faces import locate_face
import dataclasses
s = dataclasses.replace(Settings(), face_detector={detector!r})
locate_face(np.zeros((64, 64, 3), np.uint8), s)
print(time.perf_counter() - start)
"""


def on_canvas(image: np.ndarray, width: int, height: int, side: int) -> np.ndarray:
    """``image`` scaled to ``side`` px and centred on a grey canvas."""
    scaled = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA
                        if side < image.shape[0] else cv2.INTER_CUBIC)
    canvas = np.full((height, width, 3), 120, np.uint8)
    top, left = (height - side) // 2, (width - side) // 2
    canvas[top:top + side, left:left + side] = scaled
    return canvas


#: Cases past the search size: run ``--repeat-large`` times.
LARGE = ("no face 6300x6300", "6000x4000, 200 px face")


def cases() -> dict[str, np.ndarray]:
    astronaut = data.astronaut()  # face ~95 px of 512
    webcam = on_canvas(astronaut, 640, 480, 480)            # face ~90 px
    full_hd = on_canvas(astronaut, 1920, 1080, 1080)       # face ~200 px
    turn45 = cv2.getRotationMatrix2D((320, 240), -45, 1.0)
    return {
        "640x480 frame": webcam,
        "1920x1080 frame": full_hd,
        "tight crop 280x280": cv2.resize(astronaut[86:156, 185:255], (280, 280),
                                         interpolation=cv2.INTER_CUBIC),
        "640x480 turned 90": cv2.rotate(webcam, cv2.ROTATE_90_CLOCKWISE),
        "640x480 turned 45": cv2.warpAffine(webcam, turn45, (640, 480),
                                            borderMode=cv2.BORDER_REPLICATE),
        "1080p, 100 px face": on_canvas(astronaut, 1920, 1080, 540),
        "no face 640x480": cv2.resize(data.coffee(), (640, 480), interpolation=cv2.INTER_AREA),
        "no face 1920x1080": cv2.resize(data.coffee(), (1920, 1080),
                                        interpolation=cv2.INTER_CUBIC),
        "no face 6300x6300": cv2.resize(data.coffee(), (6300, 6300),
                                        interpolation=cv2.INTER_CUBIC),
        "6000x4000, 200 px face": on_canvas(astronaut, 6000, 4000, 1080),
    }


def load_seconds(detector: str) -> float:
    return fresh_process_seconds(LOAD_SNIPPET.format(detector=detector))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--repeat-large", type=int, default=3,
                        help="runs of the cases past the search size")
    parser.add_argument("--detector", action="append", choices=DETECTORS,
                        help="detectors to compare (repeatable; default blazeface, hog)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    detectors = args.detector or ["blazeface", "hog"]
    images = cases()
    results: dict[str, dict[str, tuple[float, str]]] = {}
    loads = {}
    for detector in detectors:
        settings = dataclasses.replace(get_settings(), face_detector=detector)
        loads[detector] = load_seconds(detector)
        locate_face(np.zeros((64, 64, 3), np.uint8), settings)
        results[detector] = {}
        for name, image in images.items():
            times, method = [], ""
            for _ in range(args.repeat_large if name in LARGE else args.repeat):
                start = time.perf_counter()
                method = locate_face(image, settings).method
                times.append(time.perf_counter() - start)
            results[detector][name] = (1000 * statistics.median(times), method)
    width = 30
    print(f"{'case (median ms, pass that found it)':<24}"
          + "".join(f"{d:>{width}}" for d in detectors))
    for name in images:
        cells = "".join(f"{results[d][name][0]:>9.1f}  {results[d][name][1]:<19}"
                        for d in detectors)
        print(f"{name:<24}{cells}")
    print(f"{'model load (s)':<24}" + "".join(f"{loads[d]:>9.2f}{'':<21}" for d in detectors))
    limit = get_settings().face_search_max_side
    print(f"tiles pass: at most {tile_count((limit, limit), get_settings().face_detect_max_side)}"
          f" detector runs (images are first downscaled to {limit} px; 6300x6300 before: "
          f"{tile_count((6300, 6300), get_settings().face_detect_max_side)})")


if __name__ == "__main__":
    main()
