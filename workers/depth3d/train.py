"""``liveness train depth3d``: reconstruct, choose, validate and write ``models/depth3d/``.

1. **Reconstruct.** The face stage runs once on every image of the datasets (cached) and
   the ``mesh`` backend reconstructs each face (cached; :mod:`workers.depth3d.table`).
2. **Choose the volume side** per classifier (VoxNet on the occupancy volume, the depth
   net on the depth map and the mesh signals) among ``sides`` by a grouped validation:
   collections split into ``select_folds`` groups, each held out in turn, each fold
   trained on ``select_rows`` of its images (:func:`workers.depth3d.evaluate.grouped_cv`);
   the higher mean AUC wins among the sides whose classifier runs within
   ``max_classifier_ms`` per face (LiteRT, one thread: :func:`classifier_ms`), which
   leaves the reconstruction its share of the test's 20 ms budget; sides over it are not
   validated unless ``validate_over_budget``.
3. **Validate leave-one-collection-out** each classifier at its side
   (:func:`workers.depth3d.evaluate.loco`) and ship the one that generalises best (higher
   mean AUC, then worst-collection AUC, then lower HTER); its threshold is the
   ``operating_point`` of the pooled held-out scores.
4. **Write** the classifier fitted on every collection as TFLite (checked against
   Keras), the reference face, ``model.json``, the card, the held-out scores
   (``evaluation/oof_scores.csv``, for the fusion) and the plots.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from common.config import get_settings
from common.datasets.facetable import load_samples, locate_faces
from common.estimator import ModelInfo
from common.evaluation.loco import LocoResult, better
from common.evaluation.loco_table import (
    at_shipped_threshold_metrics,
    loco_summary,
    reports_at_threshold,
)
from common.evaluation.oof import FILE as OOF_FILE
from common.evaluation.oof import write_oof_scores
from common.evaluation.report import evaluate, write_report
from workers.depth3d.card import card_text
from workers.depth3d.evaluate import (
    TrainingConfig,
    depth_maps,
    features,
    fit_classifier,
    grouped_cv,
    loco,
)
from workers.depth3d.model import MODEL_FILE, Depth3dRunner, save_model_folder
from workers.depth3d.networks import KINDS
from workers.depth3d.signals import SIGNALS
from workers.depth3d.table import mesh_points

CARD = "MODEL_CARD.md"


def train_depth3d(data_dirs: Sequence[Path], out: Path, cache_dir: Path,
                  kinds: Sequence[str] = KINDS, sides: Sequence[int] = (32, 64),
                  epochs: dict[str, int] | None = None, select_folds: int = 3,
                  select_rows: int | None = 1500, max_classifier_ms: float = 10.0,
                  validate_over_budget: bool = False,
                  operating_point: str = "eer", version: str | None = None,
                  command: str = "", jobs: int = 1,
                  log: Callable[[str], None] = print) -> Path:
    """Steps 1–4 of the module docstring; returns the card's path. ``ValueError`` for
    an unknown kind or a side below 16."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or any(s < 16 for s in sides):
        raise ValueError(f"kinds must be among {KINDS} and sides ≥ 16, got {kinds} {sides}")
    epochs = {"voxnet": 3, "depthnet": 8, **(epochs or {})}
    started = time.perf_counter()
    table = load_samples(data_dirs)
    faces = locate_faces(table, cache_dir, get_settings(), jobs)
    image_points, points = mesh_points(table, faces, cache_dir, jobs)
    y, types, cols = table.y, table.attack_types, table.collections
    maps: dict[int, np.ndarray] = {}  # depth maps per side, computed once (a minute each)

    def depth_at(side: int) -> np.ndarray:
        if side not in maps:
            maps[side] = depth_maps(points, side)
        return maps[side]

    selection: dict[str, dict[str, float]] = {}
    chosen: dict[str, TrainingConfig] = {}
    for kind in kinds:
        best = None
        for side in sides:
            config = TrainingConfig(kind, side, epochs[kind])
            serve_ms = classifier_ms(config)
            if serve_ms > max_classifier_ms and not validate_over_budget:
                selection[config.name] = {"classifier_ms": serve_ms, "over_budget": True}
                log(f"select {config.name}: {serve_ms:.1f} ms per face served, over the "
                    f"{max_classifier_ms} ms budget: not validated")
                continue
            t0 = time.perf_counter()
            figures = grouped_cv(config, points, image_points, y, cols, select_folds,
                                 select_rows, depth_at(side))
            figures["seconds"] = time.perf_counter() - t0
            figures["classifier_ms"] = serve_ms
            selection[config.name] = figures
            log(f"select {config.name}: AUC mean {figures['auc_mean']:.3f} worst "
                f"{figures['auc_min']:.3f} ({figures['seconds']:.0f} s to validate; "
                f"{serve_ms:.1f} ms per face served)")
            if serve_ms > max_classifier_ms:
                continue  # over the speed budget: reported, never chosen
            if best is None or figures["auc_mean"] > selection[best.name]["auc_mean"]:
                best = config
        if best is None:
            raise ValueError(f"no side of {kind} classifies within {max_classifier_ms} ms")
        chosen[kind] = best
    results: dict[str, LocoResult] = {}
    for config in chosen.values():
        results[config.name] = loco(config, points, image_points, y, types, cols,
                                    operating_point, depth_at(config.side))
        s = results[config.name].summary()
        log(f"loco {config.name}: AUC mean {s['auc_mean']:.3f} worst {s['auc_min']:.3f}")
    best_name = next(iter(results))
    for name, result in results.items():
        if better(result, results[best_name]):
            best_name = name
    config = next(c for c in chosen.values() if c.name == best_name)
    result = results[best_name]
    valid = np.isfinite(result.oof)
    pooled = evaluate(result.oof[valid], y[valid], types[valid], operating_point=operating_point)
    shipped = reports_at_threshold(result.oof, y, types, cols, pooled.threshold)
    rows = np.all(np.isfinite(points.reshape(len(points), -1)), axis=1)
    depth, sig, reference = features(points, image_points, rows, config.side,
                                     depth_at(config.side))
    model = fit_classifier(config, depth[rows], sig[rows], y[rows])
    info = ModelInfo(
        test="depth3d",
        name=f"mesh-{config.name}",
        version=version or dt.date.today().isoformat(),
        threshold=float(pooled.threshold),
        threshold_rule=f"{operating_point} on the pooled leave-one-collection-out scores",
        trained_on=[str(p) for p in data_dirs],
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        metrics={
            "validation": "leave-one-collection-out (network and reference face fitted "
                          "on the other collections)",
            "summary": loco_summary(result.per_collection, shipped),
            "per_collection": {c: {"auc": r.auc, "eer": r.eer, "apcer": r.apcer_pooled,
                                   "bpcer": r.bpcer, "hter": r.hter,
                                   "threshold": result.thresholds[c]}
                               for c, r in result.per_collection.items()},
            "per_collection_at_shipped_threshold": at_shipped_threshold_metrics(shipped),
            "side_selection": selection,
            "comparison": {name: r.summary() for name, r in results.items()},
        },
        notes=f"{config.kind} on {config.side}² depth maps of the Face Mesh reconstruction, "
              f"{config.epochs} epochs, {int(rows.sum())} images",
    )
    params = {"backend": "mesh", "kind": config.kind, "side": config.side,
              "epochs": config.epochs, "signals": list(SIGNALS),
              "max_classifier_ms": max_classifier_ms, "select_folds": select_folds,
              "select_rows": select_rows}
    check = {"depth": depth[rows][:8], "signals": sig[rows][:8]}
    save_model_folder(out, model, reference, info, params,
                      check if config.kind == "depthnet" else {"depth": check["depth"]})
    cost = _cost(Depth3dRunner(out / MODEL_FILE), config.side)
    report_paths = write_report(pooled, out / "evaluation",
                                f"depth3d {info.name}: pooled leave-one-collection-out scores",
                                result.oof[valid], y[valid], types[valid])
    write_oof_scores(out / "evaluation" / OOF_FILE, table.keys, cols, y, types, result.oof)
    card = out / CARD
    card.write_text(card_text(info, params, selection, results, best_name, pooled, shipped,
                              cost, command, report_paths, n_images=len(table.keys),
                              n_reconstructed=int(rows.sum()),
                              minutes=(time.perf_counter() - started) / 60))
    return card


def classifier_ms(config: TrainingConfig, repeat: int = 20) -> float:
    """Median ms per face of ``config``'s classifier (untrained weights: the cost does
    not depend on them) converted to TFLite and run by LiteRT, one thread, batch 1."""
    from workers.depth3d.model import tflite_bytes
    from workers.depth3d.networks import build_classifier

    n = len(SIGNALS)
    model = build_classifier(config.kind, config.side, np.zeros(n), np.ones(n), config.seed)
    return _cost(Depth3dRunner(tflite_bytes(model)), config.side, repeat)["classifier_ms"]


def _cost(runner: Depth3dRunner, side: int, repeat: int = 50) -> dict[str, float]:
    """Median ms of the classifier alone (LiteRT, one thread, batch 1)."""
    depth = np.full((1, side, side), 0.2, np.float32)
    sig = np.zeros((1, len(SIGNALS)), np.float32)
    runner(depth, sig)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        runner(depth, sig)
        times.append(time.perf_counter() - t0)
    return {"classifier_ms": 1000 * statistics.median(times)}
