"""Benchmark and measurement: the colour-flash challenge check (common/challenge).

1. Speed: median milliseconds of ``check_challenge`` on 8 frames simulated from
   scikit-image's astronaut (per-frame face detection, colour measures, fit, and the
   face_recognition identity comparison), one thread.
2. Chance: how often a recording lit by *another* random sequence correlates with a
   new one at or above the threshold (the replay pass rate the palette and the length
   allow), over 100,000 pairs of sequences.
3. With ``--data DIR`` (repeatable): outcomes on frames **simulated** from the bona fide
   images of each collection (``common.challenge.simulate``; up to ``--per-collection``
   images each with one face and room visible behind it), one table per dataset: live
   people at several screen-to-room light ratios and camera behaviours (BPCER: share
   not passed, and how many of those were told ``spoof``), and three attacks (APCER:
   share passed): a replay of a recording lit by another sequence, a stream not lit by
   the screen, a software tint that follows the sequence. No real screen was filmed:
   these are figures of the simulation, not of real devices.

Usage: python bench/challenge.py [--repeat N] [--data DIR ...] [--per-collection N]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from skimage import data

from bench.timing import median_ms
from common.challenge import new_colours
from common.challenge.check import check_challenge
from common.challenge.reflectance import background_mask, expected_pattern
from common.challenge.simulate import Conditions, simulate_capture
from common.config import get_settings
from common.datasets.facetable import load_samples
from common.faces import locate_face
from common.faces.detectors import get_detector

#: name → (conditions, what the frames show): "live", "replay" (another sequence),
#: "unlit" (no screen light), "tint" (the whole frame follows the sequence).
SCENARIOS: dict[str, tuple[Conditions, str]] = {
    "live, screen/room 0.02": (Conditions(screen_ratio=0.02), "live"),
    "live, screen/room 0.05": (Conditions(screen_ratio=0.05), "live"),
    "live, screen/room 0.1": (Conditions(screen_ratio=0.1), "live"),
    "live, screen/room 0.2": (Conditions(screen_ratio=0.2), "live"),
    "live, 0.1, white balance undoes half": (Conditions(screen_ratio=0.1,
                                                        white_balance=0.5), "live"),
    "live, 0.1, moves 8 px": (Conditions(screen_ratio=0.1, jitter_px=8), "live"),
    "live, 0.1, noisy (σ 6, JPEG 60)": (Conditions(screen_ratio=0.1, noise=6.0,
                                                   jpeg_quality=60), "live"),
    "attack: replay of another session": (Conditions(screen_ratio=0.1), "replay"),
    "attack: stream not lit by the screen": (Conditions(screen_ratio=0.0), "unlit"),
    "attack: software tint following it": (Conditions(screen_ratio=0.1), "tint"),
}


def chance_pass_rate(length: int, threshold: float, pairs: int = 100_000) -> float:
    """Share of pairs of random sequences whose expected patterns correlate >= threshold."""
    rng = random.Random(7)
    hits = 0
    for _ in range(pairs):
        a, b = (expected_pattern(new_colours(length, rng)) for _ in range(2))
        hits += (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()) >= threshold
    return hits / pairs


def _usable_faces(table, detector, per_collection: int):  # type: ignore[no-untyped-def]
    """(dataset, collection, image, detection box, face stage box) of bona fide images
    with one face and room visible behind it."""
    settings = get_settings()
    taken: Counter[str] = Counter()
    for i in np.flatnonzero(table.y == 1):
        collection = str(table.collections[i])
        if taken[collection] >= per_collection:
            continue
        image = table.read_image(i)
        faces = detector.detect(image)
        if len(faces) != 1 or background_mask(faces[0].box, image.shape).mean() < 0.02:
            continue
        face = locate_face(image, settings)
        if not face.found:
            continue
        taken[collection] += 1
        yield table.keys[i].split("/", 1)[0], collection, image, faces[0].box, face.box


def measure(data_dirs: list[Path], per_collection: int) -> None:
    settings = get_settings()
    detector = get_detector(settings.face_detector)
    table = load_samples(data_dirs)
    rng = np.random.default_rng(0)
    sequences = random.Random(0)
    outcomes: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    collections: dict[str, set[str]] = defaultdict(set)
    images: Counter[str] = Counter()
    for dataset, collection, image, box, face_box in _usable_faces(table, detector,
                                                                    per_collection):
        collections[dataset].add(collection)
        images[dataset] += 1
        for name, (conditions, kind) in SCENARIOS.items():
            colours = new_colours(settings.challenge_length, sequences)
            shown = (new_colours(settings.challenge_length, sequences) if kind == "replay"
                     else colours)
            frames = simulate_capture(image, box, shown, conditions, rng,
                                      uniform_light=kind == "tint")
            check = check_challenge(image, face_box, frames, colours, detector, settings)
            outcomes[dataset][name][check.reason or "passed"] += 1
    for dataset, table_rows in outcomes.items():
        print(f"\n{dataset}: simulated captures of {images[dataset]} bona fide images from "
              f"{len(collections[dataset])} collections ({per_collection} at most each), one "
              "random sequence per capture")
        print(f"{'scenario':40s} {'passed':>7s} {'spoof':>6s} {'retry':>6s}  reasons")
        for name, counts in table_rows.items():
            total = sum(counts.values())
            spoof = sum(n for r, n in counts.items() if r.startswith("challenge_failed"))
            passed = counts["passed"]
            rest = ", ".join(f"{r} {n}" for r, n in counts.most_common() if r != "passed")
            print(f"{name:40s} {100 * passed / total:6.1f}% {100 * spoof / total:5.1f}% "
                  f"{100 * (total - passed - spoof) / total:5.1f}%  {rest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--data", type=Path, action="append", default=[])
    parser.add_argument("--per-collection", type=int, default=8)
    args = parser.parse_args()
    settings = get_settings()
    detector = get_detector(settings.face_detector)
    image = data.astronaut()
    face = locate_face(image, settings)
    box = detector.detect(image)[0].box
    colours = new_colours(settings.challenge_length, random.Random(1))
    frames = simulate_capture(image, box, colours, Conditions(), np.random.default_rng(1))
    check = check_challenge(image, face.box, frames, colours, detector, settings)
    ms = median_ms(lambda: check_challenge(image, face.box, frames, colours, detector,
                                           settings), args.repeat)
    detect_ms = median_ms(lambda: [detector.detect(f) for f in frames], args.repeat)
    print(f"check of {len(frames)} frames of {image.shape[1]}×{image.shape[0]} px: "
          f"{ms:.1f} ms median ({detect_ms:.1f} ms of it face detection; outcome "
          f"{check.outcome})")
    length, threshold = settings.challenge_length, settings.challenge_min_correlation
    print(f"a recording lit by another random sequence of {length} colours correlates "
          f">= {threshold} with a new one in {100 * chance_pass_rate(length, threshold):.2f} % "
          "of pairs")
    if args.data:
        measure(args.data, args.per_collection)


if __name__ == "__main__":
    main()
