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
    colls = np.array([samples[i].collection for i in ok], dtype=object)
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
    sections = {"Run": f"{len(samples)} images, {skipped} not scorable; "
                       f"face found in {100 * found:.1f} % of scored images; "
                       f"decision retry (capture not judgeable, or a score inside the "
                       f"retry band) for {100 * retry['bona fide']:.1f} % of the bona fide "
                       f"and {100 * retry['attack']:.1f} % of the attack images (the "
                       f"figures above score every image regardless)."}
    sections.update(_breakdown([results[i] for i in ok], scores, labels, types, colls,
                               report, test_names, out))
    paths = write_report(
        report, out, f"Liveness pipeline ({', '.join(test_names)}) on "
        f"{', '.join(p.name for p in data_dirs)}", scores, labels, types,
        extra_sections=sections,
    )
    paths["reliability"] = out / "reliability.png"
    paths["scores_by_collection"] = out / "scores_by_collection.png"
    paths["csv"] = csv_path
    return paths


def _breakdown(results: list[dict[str, Any]], scores: np.ndarray, labels: np.ndarray,
               types: np.ndarray, colls: np.ndarray, fused: Any,
               test_names: Sequence[str], out: Path) -> dict[str, str]:
    """The report's extra sections: each test and the fusion pooled and per collection
    (each at its shipped threshold), calibration (reliability diagram, ECE) and latency.
    Writes ``reliability.png`` and ``scores_by_collection.png`` into ``out``."""
    from common.evaluation.calibration import expected_calibration_error, reliability_diagram
    from common.evaluation.report import combine_reports

    sections: dict[str, str] = {}
    pooled = {"fused": fused}
    per_test: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = {}
    for name in test_names:
        rows = [(i, r["tests"][name]) for i, r in enumerate(results)
                if (r["tests"].get(name) or {}).get("score") is not None]
        if not rows:
            continue
        idx = np.array([i for i, _ in rows])
        s = np.array([o["score"] for _, o in rows], float)
        t = float(rows[0][1].get("threshold") or 0.5)
        per_test[name] = (idx, s, labels[idx], t)
        if len(np.unique(labels[idx])) == 2:
            pooled[name] = evaluate(s, labels[idx], types[idx], threshold=t)
    sections["Each test and the fusion, pooled (at each one's shipped threshold)"] = (
        combine_reports(pooled))
    attack_names = sorted({t for r in pooled.values() for t in r.apcer_per_type})
    rows = ["| evaluation | " + " | ".join(attack_names) + " |",
            "|---|" + "---:|" * len(attack_names)]
    for name, r in pooled.items():
        cells = [f"{100 * r.apcer_per_type[t]:.2f} %" if t in r.apcer_per_type else "–"
                 for t in attack_names]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    sections["APCER per attack type, pooled (each at its shipped threshold)"] = (
        "\n".join(rows) + "\n")
    for name, (idx, s, y, t) in {"fused": (np.arange(len(scores)), scores, labels,
                                           fused.threshold), **per_test}.items():
        named = {}
        for coll in sorted(set(colls[idx])):
            m = colls[idx] == coll
            if len(np.unique(y[m])) == 2:
                named[str(coll)] = evaluate(s[m], y[m], types[idx][m], threshold=t)
        if named:
            sections[f"{name}: per collection"] = combine_reports(named)
    probability = np.array([r.get("probability") if r.get("probability") is not None
                            else r["score"] for r in results], float)
    calibrated = any(r.get("probability") is not None for r in results)
    reliability_diagram(out / "reliability.png", {
        ("calibrated probability" if calibrated else "fused score"): (probability, labels)})
    sections["Calibration"] = (
        f"Expected calibration error of the {'calibrated probability' if calibrated else ''}"
        f"{'' if calibrated else 'fused score read as a probability'}: "
        f"{expected_calibration_error(probability, labels):.3f} (10 equal-width bins); "
        "reliability diagram: `reliability.png`. Scores per collection: "
        "`scores_by_collection.png`.")
    _plot_by_collection(out / "scores_by_collection.png", scores, labels, colls,
                        fused.threshold)
    seconds = np.array([r.get("seconds") or 0.0 for r in results], float)
    lines = ["| stage | median ms | p95 ms |", "|---|---:|---:|",
             f"| whole pipeline (face stage, tests, fusion) | "
             f"{1000 * np.median(seconds):.1f} | {1000 * np.percentile(seconds, 95):.1f} |"]
    for name in test_names:
        t = [r["tests"][name].get("seconds") for r in results
             if (r["tests"].get(name) or {}).get("seconds") is not None]
        if t:
            lines.append(f"| {name} | {1000 * np.median(t):.1f} | "
                         f"{1000 * np.percentile(t, 95):.1f} |")
    sections["Latency (this machine, the evaluation's processes)"] = "\n".join(lines) + "\n"
    return sections


def _plot_by_collection(path: Path, scores: np.ndarray, labels: np.ndarray,
                        colls: np.ndarray, threshold: float) -> None:
    """Score histograms of bona fide and attack presentations, one panel per collection."""
    from matplotlib.figure import Figure

    names = sorted(set(colls))
    cols = min(4, len(names)) or 1
    rows = (len(names) + cols - 1) // cols or 1
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows), dpi=90)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    bins = np.linspace(0, 1, 26)
    for ax, name in zip(axes, names, strict=False):
        m = colls == name
        for label, colour, text in ((1, "tab:green", "bona fide"), (0, "tab:red", "attack")):
            ax.hist(scores[m & (labels == label)], bins=bins, color=colour, alpha=0.55,
                    label=text)
        ax.axvline(threshold, color="k", ls="--", lw=1)
        ax.set_title(str(name), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
