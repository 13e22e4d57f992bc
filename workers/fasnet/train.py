"""``liveness train fasnet``: port, convert, evaluate and write ``models/fasnet/``.

1. **Port.** Both weight files (SHA-256-pinned, :mod:`workers.fasnet.port`) become Keras
   networks (:mod:`workers.fasnet.network`); each must reproduce the original code's 24
   reference softmax vectors within 1e-4, or training stops.
2. **Evaluate.** The face stage runs once on every image of the datasets (cached); each
   box mapping (:data:`workers.fasnet.crop.BOX_MAPPINGS`) gives both networks' softmax
   and embedding (cached); each variant — the pair as the original combines it, each
   network alone, and a logistic head re-fitted on the two embeddings — is validated
   leave-one-collection-out (:mod:`workers.fasnet.evaluate`).
3. **Choose and ship.** The (box mapping, variant) with the highest mean
   leave-one-collection-out AUC, then the highest worst-collection AUC, ships: a head
   is refitted on every collection; the threshold is the ``operating_point`` (EER by
   default) of the pooled held-out scores. The model is converted to TFLite (outputs
   checked against Keras and against the reference outputs) and written with
   ``model.json``, the weights' LICENSE, a NOTICE, the card, the held-out scores
   (``evaluation/oof_scores.csv``, for the fusion) and plots.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from common.config import get_settings
from common.errors import ModelError
from common.estimator import ModelInfo
from common.evaluation.loco_table import (
    at_shipped_threshold_metrics,
    loco_summary,
    reports_at_threshold,
)
from common.evaluation.oof import FILE as OOF_FILE
from common.evaluation.oof import write_oof_scores
from common.evaluation.report import evaluate, write_report
from workers.fasnet.card import card_text, notice_text
from workers.fasnet.crop import BOX_MAPPINGS, SCALES, BoxMapping, fasnet_crops
from workers.fasnet.evaluate import LocoResult, better, head_model, loco_fixed, loco_head
from workers.fasnet.model import (
    MODEL_FILE,
    VARIANTS,
    FasnetRunner,
    build_scoring_model,
    fold_standardised_logistic,
    save_model_folder,
)
from workers.fasnet.port import (
    REFERENCE_SUBDIR,
    SOURCE,
    SOURCE_COMMIT,
    WEIGHT_FILES,
    port_networks,
    reference_cases,
)
from workers.fasnet.table import SampleTable, load_samples, locate_faces, network_outputs

CARD = "MODEL_CARD.md"
#: The reference tolerance the port must meet (the weights' README: 1e-4).
REFERENCE_TOLERANCE = 1e-4
#: The images of ``../shared/data`` the original's reference crops were cut from (found
#: by cropping every image of the same size with the reference box: pixel-identical
#: crops), by reference case: they give the original detector's box on real images.
REFERENCE_SOURCES = {
    "case00": "nuaa_train/live/nuaa__live_0001_00_00_01_0.jpg",
    "case01": "nuaa_train/live/nuaa__live_0001_00_00_01_109.jpg",
    "case02": "nuaa_train/live/nuaa__live_0001_00_00_01_12.jpg",
    "case03": "nuaa_train/spoof/nuaa__spoof_0001_00_00_01_0.jpg",
    "case04": "nuaa_train/spoof/nuaa__spoof_0001_00_00_01_111.jpg",
    "case05": "nuaa_train/spoof/nuaa__spoof_0001_00_00_01_125.jpg",
    "case06": "replay_extra/live/psi_balveer__dataset_real_0.webp",
    "case08": "replay_extra/live/psi_balveer__dataset_real_10.webp",
    "case09": "replay_extra/spoof/psi_balveer__dataset_fake_0.webp",
    "case10": "replay_extra/spoof/psi_balveer__dataset_fake_1.webp",
    "case11": "replay_extra/spoof/psi_balveer__dataset_fake_10.webp",
}


def reference_batches(weights_dir: Path) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """The reference cases and their crops as two float32 (12, 80, 80, 3) BGR batches
    (scale 2.7 cases for V2, scale 4.0 cases for V1SE, in file order)."""
    cases = reference_cases(weights_dir)
    batches = []
    for weight in WEIGHT_FILES:
        crops = [cv2.imread(str(Path(weights_dir) / REFERENCE_SUBDIR / c["crop"]))
                 for c in cases if c["model"] == weight.name]
        batches.append(np.stack(crops).astype(np.float32))
    return cases, batches


def check_reference(softmax: Sequence[np.ndarray], cases: list[dict[str, Any]],
                    what: str) -> float:
    """The largest difference of ``softmax`` (per network, rows in reference order)
    from the reference softmax vectors; raises :class:`ModelError` above 1e-4."""
    worst = 0.0
    for weight, got in zip(WEIGHT_FILES, softmax, strict=True):
        expected = np.array([c["softmax"] for c in cases if c["model"] == weight.name])
        worst = max(worst, float(np.abs(np.asarray(got) - expected).max()))
    if worst > REFERENCE_TOLERANCE:
        raise ModelError(f"{what} differs from the original's reference softmax by "
                         f"{worst:.3g} (> {REFERENCE_TOLERANCE})")
    return worst


def variant_scores(outputs: dict[str, np.ndarray], variant: str) -> np.ndarray:
    """P(live) of a pretrained variant (``pair``, ``v2``, ``v1se``) from the cached
    outputs (N,)."""
    if variant == "pair":
        return (outputs["softmax_v2"][:, 1] + outputs["softmax_v1se"][:, 1]) / 2.0
    return outputs[f"softmax_{variant}"][:, 1]


def embeddings(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """The two embeddings side by side (N, 256): V2's, then V1SE's."""
    return np.concatenate([outputs["embedding_v2"], outputs["embedding_v1se"]], axis=1)


def box_agreement(table: SampleTable, faces: Sequence[Any], networks: Sequence[Any],
                  weights_dir: Path, mappings: Sequence[BoxMapping]
                  ) -> dict[str, dict[str, float]]:
    """Per mapping, on the reference cases' source images present in ``table``: the
    mean IoU of its box with the original detector's and the mean |ΔP(live)| of the pair
    against the original's reference output. Empty when none is present."""
    cases = {c["crop"][:6]: c for c in reference_cases(weights_dir) if c["scale"] == 2.7}
    live = {}
    for c in reference_cases(weights_dir):
        live.setdefault(c["crop"][:6], []).append(c["softmax"][1])
    index = {k: i for i, k in enumerate(table.keys)}
    rows = [(case, index[key]) for case, key in REFERENCE_SOURCES.items()
            if key in index and faces[index[key]] is not None]
    if not rows:
        return {}
    out = {}
    for mapping in mappings:
        ious, deltas = [], []
        for case, i in rows:
            image, face = table.read_image(i), faces[i]
            ours = mapping.box(face, int(face.rotation) % 360, image.shape)
            ious.append(_iou(ours, cases[case]["box_xywh"]))
            crops = [c.astype(np.float32)[None] for c in fasnet_crops(image, face, mapping)]
            p = np.mean([float(np.asarray(net(x, training=False)[0])[0, 1])
                         for net, x in zip(networks, crops, strict=True)])
            deltas.append(abs(p - float(np.mean(live[case]))))
        out[mapping.name] = {"iou_mean": float(np.mean(ious)),
                             "p_live_abs_diff_mean": float(np.mean(deltas)), "images": len(rows)}
    return out


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    w = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    h = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def train_fasnet(data_dirs: Sequence[Path], out: Path, weights_dir: Path, cache_dir: Path,
                 C: float = 0.1, mappings: Sequence[str] = tuple(BOX_MAPPINGS),
                 variants: Sequence[str] = VARIANTS, operating_point: str = "eer",
                 version: str | None = None, command: str = "", jobs: int = 1) -> Path:
    """Port, evaluate, choose and write ``out/`` (module docstring); returns the card.

    Raises :class:`common.errors.ModelError` for missing or altered weight files or a
    port that misses the reference outputs, ``ValueError`` for an unknown mapping or
    variant.
    """
    unknown = [m for m in mappings if m not in BOX_MAPPINGS] + \
        [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown box mappings / variants {unknown}: choose from "
                         f"{tuple(BOX_MAPPINGS)} / {VARIANTS}")
    networks = port_networks(weights_dir)
    cases, batches = reference_batches(weights_dir)
    keras_error = check_reference(
        [np.asarray(net(b, training=False)[0]) for net, b in zip(networks, batches,
                                                                 strict=True)],
        cases, "the Keras port")
    table = load_samples(data_dirs)
    faces = locate_faces(table, cache_dir, get_settings(), jobs)
    chosen_maps = [BOX_MAPPINGS[m] for m in mappings]
    outputs = network_outputs(table, faces, chosen_maps, networks, cache_dir)
    results: dict[tuple[str, str], LocoResult] = {}
    for mapping in chosen_maps:
        for variant in variants:
            o = outputs[mapping.name]
            results[(mapping.name, variant)] = (
                loco_head(embeddings(o), table.y, table.attack_types, table.collections, C,
                          operating_point, n_jobs=jobs) if variant == "head" else
                loco_fixed(variant_scores(o, variant), table.y, table.attack_types,
                           table.collections, operating_point))
    best = next(iter(results))
    for key, result in results.items():
        if better(result, results[best]):
            best = key
    box, variant = best
    result = results[best]
    head = None
    if variant == "head":
        X = embeddings(outputs[box])
        valid = np.all(np.isfinite(X), axis=1)
        head = fold_standardised_logistic(
            head_model(C).fit(X[valid], table.y[valid]))  # type: ignore[attr-defined]
    valid = np.isfinite(result.oof)
    pooled = evaluate(result.oof[valid], table.y[valid], table.attack_types[valid],
                      operating_point=operating_point)
    shipped = reports_at_threshold(result.oof, table.y, table.attack_types,
                                   table.collections, pooled.threshold)
    summary = loco_summary(result.per_collection, shipped)
    agreement = box_agreement(table, faces, networks, weights_dir, chosen_maps)
    info = ModelInfo(
        test="fasnet",
        name=f"minifasnet-{variant}-{box}",
        version=version or dt.date.today().isoformat(),
        threshold=float(pooled.threshold),
        threshold_rule=f"{operating_point} on the pooled leave-one-collection-out scores",
        trained_on=[str(p) for p in data_dirs] if variant == "head" else [],
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        metrics={
            "validation": "leave-one-collection-out (the pretrained networks saw none of "
                          "these collections)",
            "summary": summary,
            "per_collection": {c: {"auc": r.auc, "eer": r.eer, "apcer": r.apcer_pooled,
                                   "bpcer": r.bpcer, "hter": r.hter,
                                   "threshold": result.thresholds[c]}
                               for c, r in result.per_collection.items()},
            "per_collection_at_shipped_threshold": at_shipped_threshold_metrics(shipped),
            "comparison": {f"{m}/{v}": r.summary() for (m, v), r in results.items()},
            "box_agreement_with_original": agreement,
            "reference_max_abs_error": {"keras": keras_error},
        },
        notes=(f"{SOURCE} {SOURCE_COMMIT} (Apache-2.0), format conversion"
               + (f"; logistic head (C={C}) fitted on the 256-d embeddings of "
                  f"{len(table.keys)} images" if head else "; no fitted weights")),
    )
    params = {"variant": variant, "box": box, "scales": list(SCALES), "input_side": 80,
              "input": "BGR float32 0-255", "C": C if head else None,
              "weights": {w.name: w.sha256 for w in WEIGHT_FILES}}
    model = build_scoring_model(networks, variant, head)
    save_model_folder(out, model, info, params, check_inputs=batches)
    runner = FasnetRunner(out / MODEL_FILE)
    served = runner.run(batches)
    info.metrics["reference_max_abs_error"]["tflite"] = check_reference(
        [served["softmax_v2"], served["softmax_v1se"]], cases, "the converted model")
    cost = _cost(runner, out / MODEL_FILE)
    (out / "LICENSE").write_bytes((Path(weights_dir) / "LICENSE").read_bytes())
    (out / "NOTICE").write_text(notice_text(variant, C if head else None))
    report_paths = write_report(pooled, out / "evaluation",
                                f"fasnet {info.name}: pooled leave-one-collection-out scores",
                                result.oof[valid], table.y[valid], table.attack_types[valid])
    write_oof_scores(out / "evaluation" / OOF_FILE, table.keys, table.collections, table.y,
                     table.attack_types, result.oof)
    card = out / CARD
    card.write_text(card_text(info, params, results, best, pooled, shipped, agreement, cost,
                              command,
                              report_paths, n_images=len(table.keys),
                              n_no_face=sum(1 for f in faces if f is not None and not f.found)))
    return card


def _cost(runner: FasnetRunner, path: Path, repeat: int = 50) -> dict[str, float]:
    """Median ms of one face's two crops through the served model (LiteRT, one thread,
    batch 1) and the file's size in MB."""
    crops = [np.random.default_rng(0).uniform(0, 255, (1, 80, 80, 3)).astype(np.float32)
             for _ in range(2)]
    runner(crops)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        runner(crops)
        times.append(time.perf_counter() - start)
    return {"ms": 1000 * statistics.median(times), "mb": path.stat().st_size / 1e6}

