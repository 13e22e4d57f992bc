"""Benchmark: decoding and validating uploads (common.imageio.decode_image).

Prints the median milliseconds per image for JPEG, PNG and WebP at webcam and
phone sizes, on one thread. Usage: python bench/intake.py [--repeat N]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
from PIL import Image
from skimage import data

from common.imageio import decode_image


def encoded(size: tuple[int, int], fmt: str) -> bytes:
    rgb = cv2.resize(data.astronaut(), size, interpolation=cv2.INTER_CUBIC)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"{'format':<6} {'size':>10} {'bytes':>9} {'median ms':>10}")
    for size in ((640, 480), (1280, 720), (1920, 1080)):
        for fmt in ("JPEG", "PNG", "WEBP"):
            payload = encoded(size, fmt)
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                decode_image(payload)
                times.append(time.perf_counter() - start)
            print(f"{fmt:<6} {size[0]:>5}x{size[1]:<4} {len(payload):>9} "
                  f"{1000 * statistics.median(times):>10.2f}")


if __name__ == "__main__":
    main()
