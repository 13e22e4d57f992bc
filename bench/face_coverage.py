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
* ``tilt45`` – the image turned 45° on a canvas large enough to keep it whole: counted
  when the face is found with plausible landmarks (no ``landmarks_unreliable``);
* ``partial_top`` / ``_bottom`` / ``_left`` / ``_right`` – the image cut through the face
  from that side (40 % of the square face box outside): counted when the face stage
  reports ``face_partial`` or finds no face;
* ``dark`` – the frame scaled to a mean brightness of 30 (from frames with a mean of at
  least 60): counted when ``too_dark``;
* ``backlit`` – a backlit capture made from the frame (:func:`backlit`: the background
  brightened 3 stops to clipping, the head dimmed 5 stops and veiled by glare):
  counted when ``backlit``;
* ``blurred`` – horizontal motion blur over 12 % of the face side: counted when
  ``too_blurry`` (or no face).

The variants of live images only are made (every ``--variants-every``-th one).

**Exposure by skin tone** (every ``--exposure-every``-th live image that passes every
capture check; ``--no-exposure`` skips it): each face's skin tone is grouped by its
Individual Typology Angle (``common.faces.photometry``; Del Bino & Bernerd's bands) on
the image as it is; then the image is re-exposed at 1, 1/2, 1/4, 1/8 and 1/16 of its
light (``simulate_exposure``: linear light scaled, sensor noise, 8-bit quantisation) and
the table gives, per group and exposure, the share of faces refused as dark by the old
rule (mean luma of the aligned crop < 32, the check before issue 15) and by ``too_dark``
(the exposure of the non-skin pixels around the face, the check now), and the share
where no face was found. The backlight ratio's percentiles per group follow.

It ends with the capture measures' percentiles on the live images, the share of live
images that pass every check (the thresholds must keep it ≥ 99 %), the misses by file
name, and the median time per image. ``--detector`` compares detectors; ``--every N``
takes every N-th image (for the slow ones).

Usage: python bench/face_coverage.py --data ../shared/data/nuaa_train [--data ...]
           [--detector blazeface|mtcnn|hog|mmod] [--every N] [--no-variants]
           [--exposure-every N | --no-exposure]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from common.config import Settings, get_settings
from common.datasets import open_dataset
from common.errors import ImageError
from common.faces import (
    DETECTORS,
    FaceDetection,
    face_crop,
    get_detector,
    locate_face,
    search_faces,
)
from common.faces.landmarks import face_mesh
from common.faces.photometry import (
    ITA_GROUPS,
    individual_typology_angle,
    ita_group,
    simulate_backlight,
    simulate_exposure,
)
from common.faces.regions import face_regions

SIDES = ("top", "bottom", "left", "right")
VARIANTS = ("masked", "rot90", "rot180", "rot270", "tilt45", "closeup", "small",
            *(f"partial_{side}" for side in SIDES), "dark", "backlit", "blurred")
#: The variants whose face must be found (the coverage target); the others test the
#: capture checks: each must be refused with its reason.
FIND_VARIANTS = ("masked", "rot90", "rot180", "rot270", "tilt45", "closeup")
EXPECTED_REASON = {"small": "found", **{f"partial_{side}": "face_partial" for side in SIDES},
                   "dark": "too_dark", "backlit": "backlit", "blurred": "too_blurry"}
MEASURES = ("face_side", "box_cut", "face_cut", "edge_margin", "mesh_tilt",
            "eye_mouth_drop", "yaw", "pitch", "exposure", "backlight", "overexposed", "blur")
#: Exposure factors of the skin-tone table (0 to −4 stops).
EXPOSURES = (1.0, 0.5, 0.25, 0.125, 0.0625)
#: The check before issue 15: too dark below this mean luma of the aligned 112 crop.
OLD_MIN_BRIGHTNESS = 32.0


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


def partial(side: str) -> Callable[[np.ndarray, FaceDetection], np.ndarray]:
    """A maker cutting the image through the face from ``side`` (of the image as
    stored) so that 40 % of the square face box lies outside."""
    def make(image: np.ndarray, face: FaceDetection) -> np.ndarray:
        b = face.box
        if side == "left":
            return np.ascontiguousarray(image[:, b.left + round(0.4 * b.width):])
        if side == "right":
            return np.ascontiguousarray(image[:, :b.right - round(0.4 * b.width)])
        if side == "top":
            return np.ascontiguousarray(image[b.top + round(0.4 * b.height):])
        return np.ascontiguousarray(image[:b.bottom - round(0.4 * b.height)])
    return make


def tilt45(image: np.ndarray, face: FaceDetection) -> np.ndarray:
    """The image turned 45° clockwise on a mid-grey canvas that holds all of it."""
    h, w = image.shape[:2]
    side = int(np.ceil(np.hypot(h, w)))
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -45, 1.0)
    matrix[:, 2] += ((side - w) / 2, (side - h) / 2)
    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))


def backlit(image: np.ndarray, face: FaceDetection) -> np.ndarray:
    """``simulate_backlight`` around the face box: the background 3 stops brighter
    (clipping), the head 5 stops darker, a veiling glare of 0.5 % of full scale."""
    b = face.box
    return simulate_backlight(image, (b.left, b.top, b.right, b.bottom))


MAKERS = {
    "masked": masked,
    "rot90": lambda im, f: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
    "rot180": lambda im, f: cv2.rotate(im, cv2.ROTATE_180),
    "rot270": lambda im, f: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE),
    "tilt45": tilt45,
    "closeup": closeup,
    "small": small,
    **{f"partial_{side}": partial(side) for side in SIDES},
    "dark": dark,
    "backlit": backlit,
    "blurred": blurred,
}


def variant_ok(name: str, face: FaceDetection) -> bool:
    """Found (the find variants), or refused with the expected reason (or no face)."""
    if name == "tilt45":
        return face.found and "landmarks_unreliable" not in face.reasons
    if name in FIND_VARIANTS:
        return face.found
    if name == "small":  # found (it is then judged on its measured size), never no_face
        return face.found
    return not face.found or EXPECTED_REASON[name] in face.reasons


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def skin_tone(image: np.ndarray, settings: Settings) -> float:
    """ITA (degrees) of the face the face stage finds (its search and refined
    landmarks); ``nan`` without a face."""
    search = search_faces(image, get_detector(settings.face_detector),
                          settings.face_detect_max_side)
    if search.best is None:
        return float("nan")
    marks = face_mesh().refine(image, search.best.marks)
    return individual_typology_angle(face_regions(image, marks))


def old_too_dark(image: np.ndarray, face: FaceDetection) -> bool:
    """The rule before issue 15: mean BT.601 luma of the aligned 112 crop < 32."""
    crop = face_crop(image, face, 112)
    return float(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).mean()) < OLD_MIN_BRIGHTNESS


def exposure_verdicts(image: np.ndarray, settings: Settings, rng: np.random.Generator
                      ) -> list[tuple[bool, bool, bool]]:
    """(face found, dark by the old rule, ``too_dark``) at each of :data:`EXPOSURES`."""
    out = []
    for factor in EXPOSURES:
        shot = simulate_exposure(image, factor, rng)
        face = locate_face(shot, settings)
        out.append((face.found, face.found and old_too_dark(shot, face),
                    face.found and "too_dark" in face.reasons))
    return out


def print_exposure_table(rows: dict[str, list[list[tuple[bool, bool, bool]]]],
                         backlight: dict[str, list[float]]) -> None:
    groups = [name for name, _ in ITA_GROUPS] + ["unknown"]
    print("\nexposure by skin tone (ITA group of the image as it is): % refused as dark, "
          "old rule (mean crop luma < 32) -> too_dark now; [% no face found]")
    print(f"{'group':<13} {'n':>4}" + "".join(f"{f'x{f:g}':>22}" for f in EXPOSURES))
    for group in groups:
        faces = rows.get(group, [])
        if not faces:
            continue
        cells = []
        for i in range(len(EXPOSURES)):
            found = [v[i][0] for v in faces]
            old = [v[i][1] for v in faces]
            new = [v[i][2] for v in faces]
            cells.append(f"{100 * np.mean(old):5.1f} -> {100 * np.mean(new):5.1f} "
                         f"[{100 * (1 - np.mean(found)):4.1f}]")
        print(f"{group:<13} {len(faces):>4}" + "".join(f"{c:>22}" for c in cells))
    print("backlight (surround/skin luminance) of the live images by group: p50 / p99 / max")
    for group in groups:
        v = backlight.get(group, [])
        if v:
            print(f"  {group:<13} n={len(v):<5} {pct(v, 50):7.2f} {pct(v, 99):7.2f} "
                  f"{max(v):7.2f}")


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
    parser.add_argument("--exposure-every", type=int, default=2,
                        help="re-expose every N-th live image that passes every check")
    parser.add_argument("--no-exposure", action="store_true",
                        help="skip the exposure-by-skin-tone table")
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
    live_total = live_pass = passed = 0
    by_tone: dict[str, list[list[tuple[bool, bool, bool]]]] = collections.defaultdict(list)
    backlight_by_tone: dict[str, list[float]] = collections.defaultdict(list)
    rng = np.random.default_rng(15)
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
                if face.capture_ok and not args.no_exposure:
                    passed += 1
                    if passed % args.exposure_every == 0:
                        tone = ita_group(skin_tone(image, settings))
                        by_tone[tone].append(exposure_verdicts(image, settings, rng))
                        backlight_by_tone[tone].append(face.quality["backlight"])
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
        for name in ("small", *(f"partial_{side}" for side in SIDES), "dark", "backlit",
                     "blurred"):
            v = variant_measures[name]
            print(f"  {name:<14} " + "  ".join(
                f"{m} p5 {pct(v[m], 5):.3f} p50 {pct(v[m], 50):.3f} p95 {pct(v[m], 95):.3f}"
                for m in ("face_side", "edge_margin", "face_cut", "box_cut", "exposure",
                          "backlight", "blur")
                if v[m]))
    print(f"\ncapture checks on live images with a face: {live_pass} / {live_total} pass "
          f"({100 * live_pass / max(live_total, 1):.2f} %); reasons: "
          + (", ".join(f"{r} {c}" for r, c in live_reasons.most_common()) or "-"))
    print(f"{'measure':<15} {'p0.5':>9} {'p1':>9} {'p5':>9} {'p50':>9} {'p95':>9} "
          f"{'p99':>9} {'p99.5':>9}")
    for m in MEASURES:
        v = live_measures[m]
        print(f"{m:<15} " + " ".join(f"{pct(v, q):>9.3f}"
                                     for q in (0.5, 1, 5, 50, 95, 99, 99.5)))
    if by_tone:
        print_exposure_table(by_tone, backlight_by_tone)
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
