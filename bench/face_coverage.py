"""Face stage coverage: faces found per set and collection, on hard variants, and the
capture checks' pass rate on live images.

For every image of each ``--data`` folder (labelled ``live/`` + ``spoof/`` or by a TSV
with a ``collection`` column) it runs the face stage (``common.faces.locate_face``) and
prints, per set, collection and label, how often a face was found. Then, from each
image whose face was found, it makes variants and checks the face stage on them:

* ``masked`` – a surgical-mask-blue shape drawn over the lower face (nose to chin);
* ``rot90`` / ``rot180`` / ``rot270`` – the image turned clockwise;
* ``closeup`` – the face box alone (the face fills the frame), resized to 480 px;
* ``small`` – the image scaled so the face box is 60 px and pasted into a 4000×3000
  photo of smooth noise: counted when the face is found (it is then ``face_too_small``
  when its measured side is below ``LIVENESS_MIN_FACE_SIDE``; the share is printed);
* ``partial`` – the image cut through the face (40 % of the box outside): counted when
  the face stage reports ``face_partial`` or finds no face;
* ``dark`` – the frame scaled to a mean brightness of 30 (from frames with a mean of at
  least 60): counted when ``too_dark``;
* ``blurred`` – horizontal motion blur over 12 % of the face side: counted when
  ``too_blurry`` (or no face).

The variants of live images only are made (every ``--variants-every``-th one).

It ends with the capture measures' percentiles on the live images, the share of live
images that pass every check (the thresholds must keep it ≥ 99 %), the misses by file
name, and the median time per image. ``--detector`` compares detectors; ``--every N``
takes every N-th image (for the slow ones).

Usage: python bench/face_coverage.py --data ../shared/data/nuaa_train [--data ...]
           [--detector blazeface|mtcnn|hog|mmod] [--every N] [--no-variants]
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
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from common.config import get_settings
from common.datasets import open_dataset
from common.errors import ImageError
from common.faces import DETECTORS, FaceDetection, locate_face

VARIANTS = ("masked", "rot90", "rot180", "rot270", "closeup", "small", "partial", "dark",
            "blurred")
#: The variants whose face must be found (the coverage target); the others test the
#: capture checks: each must be refused with its reason.
FIND_VARIANTS = ("masked", "rot90", "rot180", "rot270", "closeup")
EXPECTED_REASON = {"small": "found", "partial": "face_partial", "dark": "too_dark",
                   "blurred": "too_blurry"}
MEASURES = ("face_side", "cut_x", "cut_y", "edge_margin", "yaw", "pitch", "brightness",
            "overexposed", "blur")


def masked(image: np.ndarray, face: FaceDetection) -> np.ndarray:
    """A light-blue mask polygon from just below the nose to below the chin."""
    out = image.copy()
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    iod = float(np.hypot(rx - lx, ry - ly))
    ex, ey = (rx - lx) / iod, (ry - ly) / iod           # along the eyes
    dx, dy = -ey, ex                                      # down the face
    top = np.array([nx, ny]) + 0.25 * iod * np.array([dx, dy])
    chin = np.array([(mlx + mrx) / 2, (mly + mry) / 2]) + 0.75 * iod * np.array([dx, dy])
    half = 1.05 * iod
    poly = np.array([top - half * np.array([ex, ey]), top + half * np.array([ex, ey]),
                     chin + 0.8 * half * np.array([ex, ey]),
                     chin - 0.8 * half * np.array([ex, ey])], np.int32)
    cv2.fillPoly(out, [poly], (170, 200, 225))
    return out


def closeup(image: np.ndarray, face: FaceDetection) -> np.ndarray:
    b = face.box
    crop = image[b.top:b.bottom, b.left:b.right]
    return cv2.resize(crop, (480, 480), interpolation=cv2.INTER_CUBIC)


def small(image: np.ndarray, face: FaceDetection) -> np.ndarray:
    """The image scaled so its face is 60 px, pasted into a 4000×3000 photo of smooth
    coloured noise (no face of its own)."""
    scale = 60.0 / max(face.box.width, 1)
    h, w = image.shape[:2]
    piece = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(0).integers(40, 220, (30, 40, 3), dtype=np.uint8)
    canvas = cv2.resize(noise, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    ph, pw = piece.shape[:2]
    canvas[1200:1200 + ph, 2400:2400 + pw] = piece
    return canvas


def dark(image: np.ndarray, face: FaceDetection) -> np.ndarray:
    """The frame scaled to a mean brightness of 30 (of 255). Only made from frames with a
    mean of at least 60 (for darker ones it would hardly change them)."""
    factor = 30.0 / max(float(image.mean()), 1.0)
    return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def blurred(image: np.ndarray, face: FaceDetection) -> np.ndarray:
    """Horizontal motion blur over 12 % of the face box side (a shaken phone)."""
    length = max(3, round(0.12 * face.box.width))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    return cv2.filter2D(image, -1, kernel)


def partial(image: np.ndarray, face: FaceDetection) -> np.ndarray:
    b = face.box
    cut = b.left + round(0.4 * b.width)
    return np.ascontiguousarray(image[:, cut:])


MAKERS = {
    "masked": masked,
    "rot90": lambda im, f: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
    "rot180": lambda im, f: cv2.rotate(im, cv2.ROTATE_180),
    "rot270": lambda im, f: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE),
    "closeup": closeup,
    "small": small,
    "partial": partial,
    "dark": dark,
    "blurred": blurred,
}


def variant_ok(name: str, face: FaceDetection) -> bool:
    """Found (the find variants), or refused with the expected reason (or no face)."""
    if name in FIND_VARIANTS:
        return face.found
    if name == "small":  # found (it is then judged on its measured size), never no_face
        return face.found
    return not face.found or EXPECTED_REASON[name] in face.reasons


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--detector", choices=DETECTORS, default=None)
    parser.add_argument("--every", type=int, default=1, help="take every N-th image")
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--variants-every", type=int, default=1,
                        help="make variants of every N-th live image")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated variants to make (default: all)")
    parser.add_argument("--dump", action="store_true", help="print each live face's measures")
    parser.add_argument("--show-misses", type=int, default=20,
                        help="file names listed per group (0: none)")
    args = parser.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    cv2.setNumThreads(1)
    settings = get_settings()
    if args.detector:
        settings = dataclasses.replace(settings, face_detector=args.detector)
    start = time.perf_counter()
    locate_face(np.zeros((64, 64, 3), np.uint8), settings)
    print(f"detector {settings.face_detector}: first call (model load) "
          f"{time.perf_counter() - start:.2f} s")

    found: dict[tuple[str, str, str], list[int]] = collections.defaultdict(lambda: [0, 0])
    misses: dict[tuple[str, ...], list[str]] = collections.defaultdict(list)
    variant_counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    too_small: collections.Counter[str] = collections.Counter()
    live_measures: dict[str, list[float]] = collections.defaultdict(list)
    variant_measures: dict[str, dict[str, list[float]]] = collections.defaultdict(
        lambda: collections.defaultdict(list))
    live_reasons: collections.Counter[str] = collections.Counter()
    live_total = live_pass = 0
    times: list[float] = []
    for root in args.data:
        dataset = open_dataset(root)
        for sample in dataset.samples()[:: args.every]:
            try:
                image = dataset.read_image(sample)
            except ImageError as exc:
                print(f"unreadable {root.name}/{sample.key}: {exc}")
                continue
            t0 = time.perf_counter()
            face = locate_face(image, settings)
            times.append(time.perf_counter() - t0)
            label = "live" if sample.is_live else "spoof"
            key = (root.name, sample.collection, label)
            found[key][1] += 1
            if not face.found:
                misses[key].append(sample.key)
                continue
            found[key][0] += 1
            if sample.is_live:
                live_total += 1
                live_pass += bool(face.capture_ok)
                live_reasons.update(face.reasons)
                for m in MEASURES:
                    live_measures[m].append(face.quality[m])
                if args.dump:
                    print("LIVE", sample.key, face.quality, face.reasons)
            if args.no_variants or not sample.is_live or live_total % args.variants_every:
                continue
            for name in args.variants.split(","):
                if name == "dark" and image.mean() < 60:
                    continue
                got = locate_face(MAKERS[name](image, face), settings)
                ok = variant_ok(name, got)
                if got.found:
                    for m in MEASURES:
                        variant_measures[name][m].append(got.quality[m])
                    too_small[name] += "face_too_small" in got.reasons
                variant_counts[name][0] += ok
                variant_counts[name][1] += 1
                if not ok:
                    misses[("variant", name)].append(f"{root.name}/{sample.key}")

    print(f"\n{'set':<14} {'collection':<18} {'label':<6} {'found':>12} {'%':>7}")
    for (set_name, coll, label), (hit, n) in sorted(found.items()):
        print(f"{set_name:<14} {coll:<18} {label:<6} {hit:>5} / {n:<5} {100 * hit / n:>7.2f}")
    total_hit = sum(v[0] for v in found.values())
    total_n = sum(v[1] for v in found.values())
    print(f"{'all':<14} {'':<18} {'':<6} {total_hit:>5} / {total_n:<5} "
          f"{100 * total_hit / max(total_n, 1):>7.2f}")
    if variant_counts:
        print(f"\n{'variant':<10} {'expected':<16} {'ok':>14} {'%':>7}")
        for name in args.variants.split(","):
            hit, n = variant_counts[name]
            expect = EXPECTED_REASON.get(name, "face found")
            print(f"{name:<10} {expect:<16} {hit:>6} / {n:<6} {100 * hit / max(n, 1):>7.2f}")
        found_small = len(variant_measures["small"]["face_side"])
        print(f"small: {too_small['small']} of the {found_small} found faces are "
              "face_too_small (the rest measure at least LIVENESS_MIN_FACE_SIDE)")
        print("measures on the variants (p5, p50, p95):")
        for name in ("small", "partial", "dark", "blurred"):
            v = variant_measures[name]
            print(f"  {name:<8} " + "  ".join(
                f"{m} p5 {pct(v[m], 5):.3f} p50 {pct(v[m], 50):.3f} p95 {pct(v[m], 95):.3f}"
                for m in ("face_side", "edge_margin", "cut_x", "brightness", "blur")
                if v[m]))
    print(f"\ncapture checks on live images with a face: {live_pass} / {live_total} pass "
          f"({100 * live_pass / max(live_total, 1):.2f} %); reasons: "
          + (", ".join(f"{r} {c}" for r, c in live_reasons.most_common()) or "-"))
    print(f"{'measure':<12} {'p0.5':>9} {'p1':>9} {'p5':>9} {'p50':>9} {'p95':>9} "
          f"{'p99':>9} {'p99.5':>9}")
    for m in MEASURES:
        v = live_measures[m]
        print(f"{m:<12} " + " ".join(f"{pct(v, q):>9.3f}"
                                     for q in (0.5, 1, 5, 50, 95, 99, 99.5)))
    if times:
        print(f"\nface stage: median {1000 * statistics.median(times):.1f} ms, "
              f"p95 {1000 * pct(times, 95):.1f} ms per image ({len(times)} images)")
    if args.show_misses:
        for key, names in sorted(misses.items()):
            shown = ", ".join(names[: args.show_misses])
            more = f" (+{len(names) - args.show_misses} more)" if len(names) > \
                args.show_misses else ""
            print(f"missed {'/'.join(key)}: {shown}{more}")


if __name__ == "__main__":
    main()
