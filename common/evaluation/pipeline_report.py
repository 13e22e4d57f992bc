"""Score labelled datasets through the full in-process pipeline and write an ISO report.

This measures what a deployment decides (face location, every test, fusion, the
shipped threshold), unlike the training-time validation which measures one test.
"""

from __future__ import annotations

import csv
import dataclasses
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from common.config import get_settings
from common.datasets import open_dataset
from common.errors import LivenessError
from common.evaluation.report import evaluate, write_report
from common.imageio import decode_image

_STATE: dict[str, Any] = {}


def _init_worker(test_names: tuple[str, ...], models_dir: str | None) -> None:
    import cv2

    from common.pipeline import fusion_for, load_tests

    cv2.setNumThreads(1)
    settings = get_settings()
    if models_dir:
        settings = dataclasses.replace(settings, models_dir=Path(models_dir))
    _STATE["settings"] = settings
    _STATE["tests"] = load_tests(test_names, settings)
    _STATE["fusion"] = fusion_for(settings)


def _score_bytes(data: bytes) -> dict[str, Any] | None:
    from common.pipeline import score_image

    try:
        image = decode_image(data, _STATE["settings"])
        return score_image(image, _STATE["tests"], _STATE["settings"],
                           _STATE["fusion"]).to_dict()
    except LivenessError:
        return None


def score_datasets(data_dirs: Sequence[Path], test_names: tuple[str, ...],
                   models_dir: Path | None, jobs: int | None = None
                   ) -> tuple[list[Any], list[dict[str, Any] | None]]:
    """Run the in-process pipeline on every sample of ``data_dirs`` (``jobs`` processes):
    (samples, results as ``LivenessResult.to_dict()``, ``None`` for an unreadable image)."""
    samples, payload_sources = [], []
    for path in data_dirs:
        dataset = open_dataset(path)
        for sample in dataset.samples():
            samples.append(sample)
            payload_sources.append((dataset, sample))
    payloads = (ds.read_bytes(s) for ds, s in payload_sources)
    jobs = jobs or os.cpu_count() or 1
    init_args = (test_names, str(models_dir) if models_dir else None)
    if jobs == 1:
        _init_worker(*init_args)
        results = [_score_bytes(p) for p in tqdm(payloads, total=len(samples), desc="evaluating")]
    else:
        with ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),  # no fork under live threads
            initializer=_init_worker,
            initargs=init_args,
        ) as pool:
            results = list(tqdm(pool.map(_score_bytes, payloads, chunksize=4),
                                total=len(samples), desc="evaluating"))
    return samples, results


def evaluate_datasets(
    data_dirs: Sequence[Path],
    test_names: tuple[str, ...],
    models_dir: Path | None,
    out: Path,
    jobs: int | None = None,
) -> dict[str, Path]:
    """Run the pipeline on every sample; write report files and a per-image CSV."""
    samples, results = score_datasets(data_dirs, test_names, models_dir, jobs)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "scores.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "collection", "label", "attack_type", "score_live", "decision",
                         "face_found", "reasons", *[f"{t}_score" for t in test_names]])
        for sample, result in zip(samples, results, strict=True):
            tests = (result or {}).get("tests", {})
            writer.writerow([
                sample.key, sample.collection, sample.label, sample.attack_type,
                "" if result is None else result["score"],
                "error" if result is None else result["decision"],
                "" if result is None else result["face_found"],
                "" if result is None else ";".join(result.get("reasons", ())),
                *[(tests.get(t) or {}).get("score", "") for t in test_names],
            ])
    ok = [i for i, r in enumerate(results) if r is not None and r["score"] is not None]
    scores = np.array([results[i]["score"] for i in ok], dtype=float)
    labels = np.array([samples[i].label for i in ok], dtype=int)
    types = np.array([samples[i].attack_type for i in ok])
    thresholds = {results[i]["threshold"] for i in ok}
    threshold = thresholds.pop() if len(thresholds) == 1 else 0.5
    report = evaluate(scores, labels, types, threshold=threshold)
    skipped = len(samples) - len(ok)
    found = np.mean([results[i]["face_found"] for i in ok]) if ok else 0.0
    retry = {
        name: np.mean([results[i]["decision"] == "retry" for i in ok
                       if samples[i].is_live == (name == "bona fide")] or [0.0])
        for name in ("bona fide", "attack")
    }
    paths = write_report(
        report, out, f"Liveness pipeline ({', '.join(test_names)}) on "
        f"{', '.join(p.name for p in data_dirs)}", scores, labels, types,
        extra_sections={"Run": f"{len(samples)} images, {skipped} not scorable; "
                               f"face found in {100 * found:.1f} % of scored images; "
                               f"decision retry (capture not judgeable) for "
                               f"{100 * retry['bona fide']:.1f} % of the bona fide and "
                               f"{100 * retry['attack']:.1f} % of the attack images (the "
                               f"figures above score every image regardless)."},
    )
    paths["csv"] = csv_path
    return paths
