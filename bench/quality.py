"""Benchmark: the 25 W-IQA quality features (workers.quality.features) on one thread.

Prints the median milliseconds of every step of the extractor (the shared
intermediates and each of the 25 measures), their sum, the median of the whole timed
extraction and the median of a plain ``extract_features`` call, per image.

Usage: python bench/quality.py [--data DIR [--limit N]] [--size WxH] [--repeat N]
  default images: skimage's astronaut, coffee, chelsea and rocket resized to 640x480;
  --data DIR: the first N (default 20) images under a folder, at their own size unless
  --size is given.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# one thread everywhere: set before numpy/scipy load their BLAS and OpenMP runtimes
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np
from skimage import data

from workers.quality.features import FEATURE_NAMES, extract_features, extract_features_timed

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def parse_size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def resized(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    enlarge = size[0] * size[1] > rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC if enlarge else cv2.INTER_AREA)


def load_images(
    folder: Path | None, size: tuple[int, int] | None, limit: int
) -> list[np.ndarray]:
    if folder is None:
        sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
        return [resized(rgb, size or (640, 480)) for rgb in sources]
    images: list[np.ndarray] = []
    for path in sorted(folder.rglob("*")):
        if len(images) >= limit:
            break
        if path.suffix.lower() in IMAGE_SUFFIXES:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is not None:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                images.append(resized(rgb, size) if size else rgb)
    if not images:
        raise SystemExit(f"no readable images under {folder}")
    return images


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="folder of images to time instead of skimage's")
    parser.add_argument("--limit", type=int, default=20, help="images to take from --data")
    parser.add_argument("--size", type=parse_size, help="resize every image to WxH first")
    parser.add_argument("--repeat", type=int, default=20, help="runs per image (default 20)")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    images = load_images(args.data, args.size, args.limit)
    steps: dict[str, list[float]] = {}
    timed_totals: list[float] = []
    plain_totals: list[float] = []
    for image in images:
        extract_features(image)  # warm-up: imports, allocator, caches
        for _ in range(args.repeat):
            start = time.perf_counter()
            _, seconds = extract_features_timed(image)
            timed_totals.append(time.perf_counter() - start)
            for name, value in seconds.items():
                steps.setdefault(name, []).append(value)
            start = time.perf_counter()
            extract_features(image)
            plain_totals.append(time.perf_counter() - start)

    shapes = sorted({f"{im.shape[1]}x{im.shape[0]}" for im in images})
    print(f"{len(images)} images ({', '.join(shapes)}), {args.repeat} runs each, one thread; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'step':<15} {'median ms':>10}   (shared intermediates in brackets)")
    for name, values in steps.items():
        label = name if name in FEATURE_NAMES else f"[{name}]"
        print(f"{label:<15} {1000 * statistics.median(values):>10.3f}")
    step_sum = sum(statistics.median(values) for values in steps.values())
    print(f"{'sum of medians':<15} {1000 * step_sum:>10.2f}")
    print(f"{'timed total':<15} {1000 * statistics.median(timed_totals):>10.2f}   median per image")
    print(f"{'extract_features':<15} {1000 * statistics.median(plain_totals):>9.2f}   "
          f"median per image (the serving path)")


if __name__ == "__main__":
    main()
