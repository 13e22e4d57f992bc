"""The fasnet model folder's prose: ``MODEL_CARD.md`` and the Apache-2.0 ``NOTICE``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.estimator import ModelInfo
from common.evaluation.loco_table import loco_table
from common.evaluation.report import EvaluationReport
from workers.fasnet.crop import BOX_MAPPINGS
from workers.fasnet.model import MODEL_FILE
from workers.fasnet.port import SOURCE, SOURCE_COMMIT, WEIGHT_FILES

#: How each variant is described in the tables.
VARIANT_LABELS = {
    "pair": "pair as the original combines it (mean of the two class-1 softmax values)",
    "v2": "MiniFASNetV2 alone (crop ×2.7)",
    "v1se": "MiniFASNetV1SE alone (crop ×4.0)",
    "head": "logistic head re-fitted on both embeddings (256-d)",
}


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _box_label(name: str) -> str:
    m = BOX_MAPPINGS[name]
    if m.kind == "square":
        return "face stage's square box"
    return (f"landmark box {m.width:.2f} × {m.height:.2f} eye–mouth distances "
            f"(`{name}`)")


def notice_text(variant: str, C: float | None) -> str:
    """The NOTICE the Apache License 2.0 (section 4) asks a redistribution to carry."""
    files = "\n".join(f"  - {w.name} (SHA-256 {w.sha256})" for w in WEIGHT_FILES)
    head = (f"- A logistic-regression head (C = {C}) fitted by this project on the two "
            "networks' 128-d embeddings, folded into one output unit (`p_live`)."
            if variant == "head" else
            f"- No weights were changed or added: `p_live` is the `{variant}` combination "
            "of the two networks' softmax outputs.")
    return f"""face-liveness: the `fasnet` test model (models/fasnet/model.tflite)

This folder contains a conversion of two pretrained models of Silent-Face-Anti-Spoofing
by Minivision (https://github.com/{SOURCE}, commit {SOURCE_COMMIT}),
Copyright Minivision, licensed under the Apache License, Version 2.0 (LICENSE beside
this file):

{files}

Changes made by this project:
- Format conversion: the PyTorch state dicts were read without PyTorch, rebuilt as
  Keras networks (NCHW weights transposed to NHWC) and converted to one TensorFlow Lite
  model holding both networks; outputs reproduce the original code's reference
  softmax values within 1e-4.
{head}
"""


def _comparison(results: Mapping[tuple[str, str], Any], best: tuple[str, str]) -> list[str]:
    lines = ["| box mapping | variant | mean AUC | worst AUC | mean EER | mean APCER | "
             "mean BPCER | mean HTER |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for (box, variant), result in results.items():
        s = result.summary()
        mark = "**" if (box, variant) == best else ""
        lines.append(f"| {mark}{box}{mark} | {mark}{variant}{mark} | {s['auc_mean']:.3f} | "
                     f"{s['auc_min']:.3f} | {_pct(s['eer_mean'])} | {_pct(s['apcer_mean'])} | "
                     f"{_pct(s['bpcer_mean'])} | {_pct(s['hter_mean'])} |")
    return lines


def card_text(info: ModelInfo, params: Mapping[str, Any],
              results: Mapping[tuple[str, str], Any], best: tuple[str, str],
              pooled: EvaluationReport, shipped: Mapping[str, EvaluationReport],
              agreement: Mapping[str, Mapping[str, float]],
              cost: Mapping[str, float], command: str, report_paths: Mapping[str, Path],
              n_images: int, n_no_face: int) -> str:
    """``MODEL_CARD.md`` of the shipped fasnet model."""
    box, variant = best
    result = results[best]
    s = info.metrics["summary"]
    n_coll = len(result.per_collection)
    lines = [
        f"# Model card: fasnet `{info.name}` {info.version}",
        "",
        "Minivision's pretrained **MiniFASNetV2** (crop 2.7 × the face box) and "
        "**MiniFASNetV1SE** (crop 4.0 ×), 80 × 80 BGR input, from "
        f"[{SOURCE}](https://github.com/{SOURCE}) commit {SOURCE_COMMIT}, "
        "**Apache License 2.0** (`LICENSE`; what we changed: `NOTICE`). Ported to Keras "
        "from the state dicts without PyTorch and served as one TFLite model by LiteRT.",
        "",
        "## What is known and not known about the training data",
        "",
        "- Known: Minivision trained both networks on their own collection of live "
        "captures and print and screen-replay attacks, which they describe only as large "
        "and varied (many people, devices and lighting conditions); the networks' three "
        "classes are one bona fide (class 1) and two kinds of attack (0, 2).",
        "- Not known: the collection is not published — its size, people (age, sex, skin "
        "tone), capture devices, attack instruments, consent and licence, which attack "
        "each of classes 0 and 2 stands for, and whether any image of `../shared/data` "
        "or of its source repositories was in it (unlikely: they are small GitHub "
        "collections, but it cannot be excluded). Nothing about 3D masks is claimed; "
        "none of our collections has one.",
        "- Every figure below is therefore out-of-sample for the networks: the pretrained "
        f"weights saw none of the {n_coll} collections. Only the threshold"
        + (" and the re-fitted head" if variant == "head" else "")
        + " are fitted here, leave-one-collection-out.",
        "",
        f"## Leave-one-collection-out on {n_coll} collections ({n_images} images)",
        "",
        "Each collection is held out in turn; its threshold (EER) is chosen on the other "
        "collections' scores — for the head, on their own leave-one-collection-out scores "
        "(nested), so neither head nor threshold saw the held-out collection. AUC and "
        "EER need no threshold. Variants: "
        + "; ".join(f"`{k}` = {v}" for k, v in VARIANT_LABELS.items()) + ".",
        "",
        *_comparison(results, best),
        "",
        f"Shipped: **{variant}** on the **{_box_label(box)}** — the highest mean "
        "leave-one-collection-out AUC, then the highest worst-collection AUC.",
        "",
        f"Per held-out collection (`{info.name}`): APCER (worst attack type), BPCER and "
        "HTER at the threshold chosen without it, then APCER, BPCER and ACER at the one "
        f"threshold the model ships with ({info.threshold:.4f}). Mean AUC "
        f"**{s['auc_mean']:.3f}** (worst {s['auc_min']:.3f}), mean EER "
        f"**{_pct(s['eer_mean'])}**; at the shipped threshold mean APCER "
        f"{_pct(s['shipped_apcer_mean'])}, BPCER {_pct(s['shipped_bpcer_mean'])}, ACER "
        f"{_pct(s['shipped_acer_mean'])}.",
        "",
        loco_table(result.per_collection, shipped, info.threshold),
        "",
        f"Shipped threshold **{info.threshold:.4f}** ({info.threshold_rule}); on those "
        f"pooled held-out scores it gives APCER {_pct(pooled.apcer_pooled)} "
        f"(per attack type: " + ", ".join(f"{k} {_pct(v)}"
                                          for k, v in pooled.apcer_per_type.items())
        + f"), BPCER {_pct(pooled.bpcer)}, ACER {_pct(pooled.acer)}, pooled AUC "
        f"{pooled.auc:.3f}. The service fuses this test's score with the others "
        "(`models/fusion/`); this threshold is the test's own verdict.",
        "",
        "## The face box",
        "",
        "The original crops around a RetinaFace-style detector's box; this test uses the "
        "face stage's detection (no second detection), mapped to such a box. On the "
        "reference cases' source images (original boxes known), each mapping's agreement "
        "with the original — mean IoU of the boxes, mean |ΔP(live)| of the pair against "
        "the original's output:",
        "",
        "| mapping | IoU with the original box | mean abs. difference in P(live) |",
        "|---|---:|---:|",
    ]
    for name, a in agreement.items():
        lines.append(f"| {name} | {a['iou_mean']:.3f} | {a['p_live_abs_diff_mean']:.4f} |")
    if not agreement:
        lines.append("| (the reference images were not among the data) | | |")
    lines += [
        "",
        f"{n_no_face} of the {n_images} images had no face found: their crops are around "
        "the whole image's centred square (the service answers `retry` for them anyway).",
        "",
        "## Model",
        "",
        "- Inputs `crop_2_7`, `crop_4_0`: float32 (N, 80, 80, 3), **BGR 0–255** (no "
        "scaling), Minivision's crop procedure (`workers/fasnet/crop.py`); a face the face "
        "stage found turned by 90/180/270° is cropped upright.",
        "- Outputs: `p_live` (N, 1), the shipped variant's P(live); `softmax_v2`, "
        "`softmax_v1se` (N, 3); `embedding_v2`, `embedding_v1se` (N, 128), each network's "
        "embedding **after** its BatchNorm1d (`bn`), the vector its classifier reads.",
        "- Reference: the 24 crops of the original code's reference outputs are "
        "reproduced within "
        f"{info.metrics['reference_max_abs_error']['keras']:.1e} (Keras port) and "
        f"{info.metrics['reference_max_abs_error']['tflite']:.1e} (the shipped TFLite "
        "model); `tests/unit/test_fasnet_port.py` checks it.",
        f"- Served by LiteRT: {cost['ms']:.1f} ms per face (both networks, batch 1, one "
        f"thread, crops excluded; measured by the trainer), `{MODEL_FILE}` "
        f"{cost['mb']:.1f} MB. `python bench/fasnet.py` measures the whole test.",
        "",
        f"Reproduce: `{command}`" if command else "",
        "",
        "Plots of the pooled held-out scores: "
        + ", ".join(f"`evaluation/{p.name}`" for k, p in report_paths.items() if k != "json")
        + "; held-out score per image (for the fusion): `evaluation/oof_scores.csv`.",
        "",
    ]
    return "\n".join(lines)

