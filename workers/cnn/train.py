"""``liveness train cnn``: cache frozen-backbone features at each crop scale, validate the
head leave-one-collection-out, fit it on everything, write the model folder and card.

This is the first stage of the issue's recipe (a head on cached features of an
ImageNet-initialised backbone); fine-tuning the last blocks with capture-chain
augmentation is the next stage and is not built yet (see the model card).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.config import get_settings
from common.datasets import open_dataset
from common.estimator import ModelInfo
from common.evaluation.report import evaluate, write_report
from workers.cnn.backbones import get_backbone
from workers.cnn.features import SCALES, FeatureExtractor, extract_features
from workers.cnn.model import (
    build_scoring_model,
    fold_standardised_logistic,
    save_model_folder,
)
from workers.cnn.probe import loco_probe, loco_seed_head, probe_model, summary_row

CARD = "MODEL_CARD.md"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def train_cnn(data_dirs: Sequence[Path], backbone_name: str, out: Path, cache_dir: Path,
              scales: Sequence[str] = SCALES, C: float = 0.01,
              operating_point: str = "eer", version: str | None = None,
              command: str = "", init: Path | None = None,
              seed_head_row: bool = True, compare: Sequence[str] = ()) -> Path:
    """Train, validate and write ``out/`` (model.json, model.tflite, MODEL_CARD.md, plots).

    The card's table has every scale and their combination for the trained backbone and
    for each backbone in ``compare`` (frozen, same head), the seed's dense head on the
    shipped features (``seed_head_row``), and each backbone's latency per crop (compiled
    ``tf.function``, one core) and float32 size. Returns the card's path. Raises
    :class:`common.errors.ModelError` for an unknown backbone or missing weights,
    ``ValueError`` for an unknown scale.
    """
    unknown = [s for s in scales if s not in SCALES]
    if unknown:
        raise ValueError(f"unknown scales {unknown}; choose from {SCALES}")
    backbone = get_backbone(backbone_name)
    samples = []
    for path in data_dirs:
        dataset = open_dataset(path)
        samples += [(s, dataset) for s in dataset.samples()]
    extractor = FeatureExtractor(backbone, init)
    table = extract_features(samples, extractor, cache_dir / f"{backbone.name}.h5",
                             get_settings())
    rows: dict[str, tuple[object, str]] = {}  # label → (LOCO result, cost)
    chosen = "+".join(scales)
    for name in [backbone.name, *[c for c in compare if c != backbone.name]]:
        other = extractor if name == backbone.name else FeatureExtractor(get_backbone(name))
        feats = table if name == backbone.name else extract_features(
            samples, other, cache_dir / f"{name}.h5", get_settings())
        cost = _cost(other)
        combos = [(s,) for s in SCALES] + [tuple(SCALES)]
        if name == backbone.name and tuple(scales) not in combos:
            combos.append(tuple(scales))
        for combo in combos:
            label = f"{name} frozen, {'+'.join(combo)}"
            rows[label] = (loco_probe(feats, combo, operating_point, C), cost)
    result = rows[f"{backbone.name} frozen, {chosen}"][0]
    if seed_head_row:
        rows[f"{backbone.name} frozen, {chosen}, seed dense head (1024-256-32)"] = (
            loco_seed_head(table, scales, operating_point), _cost(extractor))
    pooled = evaluate(result.oof, table.y, table.attack_types,
                      operating_point=operating_point)
    final = probe_model(C).fit(np.concatenate([table.X[s] for s in scales], axis=1),
                               table.y)  # type: ignore[attr-defined]
    weights, bias = fold_standardised_logistic(final)
    model = build_scoring_model(backbone, extractor.model, scales, weights, bias)
    summary = summary_row(result)
    info = ModelInfo(
        test="cnn",
        name=f"{backbone.name}-probe-{chosen}",
        version=version or dt.date.today().isoformat(),
        threshold=float(pooled.threshold),
        threshold_rule=f"{operating_point} on the pooled leave-one-collection-out scores",
        trained_on=[str(p) for p in data_dirs],
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        metrics={"validation": "leave-one-collection-out", "summary": summary,
                 "per_collection": {c: {"auc": r.auc, "eer": r.eer, "apcer": r.apcer_pooled,
                                        "bpcer": r.bpcer, "hter": r.hter}
                                    for c, r in result.per_collection.items()}},
        notes="frozen ImageNet backbone + standardised logistic head (no fine-tuning yet)",
    )
    rng = np.random.default_rng(0)
    side = backbone.input_side
    check = [backbone.preprocess(rng.integers(0, 256, (2, side, side, 3), dtype=np.uint8))
             for _ in scales]
    save_model_folder(out, model, info, backbone, scales, {"C": C, "init": str(init or "")},
                      check_inputs=check)
    report_paths = write_report(pooled, out / "evaluation", f"cnn {info.name}: pooled "
                                "leave-one-collection-out scores", result.oof, table.y,
                                table.attack_types)
    card = out / CARD
    card.write_text(_card(info, backbone.name, backbone.initialisation, rows, result, command,
                          report_paths))
    return card


def _cost(extractor: FeatureExtractor, repeat: int = 10) -> str:
    """Median ms per crop (batch 1, this process's threads) and float32 MB of a backbone."""
    side = extractor.backbone.input_side
    crop = np.zeros((1, side, side, 3), np.uint8)
    extractor(crop)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        extractor(crop)
        times.append(time.perf_counter() - start)
    params = extractor.model.count_params()  # type: ignore[attr-defined]
    return f"{1000 * statistics.median(times):.1f} ms, {params * 4 / 1e6:.1f} MB"


def _card(info: ModelInfo, backbone: str, init: str, rows: dict, result: object,
          command: str, report_paths: dict[str, Path]) -> str:
    lines = [
        f"# Model card: cnn `{info.name}` {info.version}",
        "",
        "**For evaluation and demonstration only.** Trained on `../shared/data` (NUAA: "
        "non-commercial research licence; the small replay collections carry no licence).",
        "",
        "## Leave-one-collection-out (each collection held out in turn; head and threshold "
        "fitted on the others)",
        "",
        "| backbone, input | mean AUC | worst AUC | mean EER | mean APCER | mean BPCER | "
        "mean HTER | per crop, size |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, (res, cost) in rows.items():
        s = summary_row(res)
        lines.append(f"| {name} | {s['auc_mean']:.3f} | {s['auc_min']:.3f} "
                     f"| {_pct(s['eer_mean'])} | {_pct(s['apcer_mean'])} | "
                     f"{_pct(s['bpcer_mean'])} | {_pct(s['hter_mean'])} | {cost} |")
    lines += ["", f"Shipped: **{info.name}**.", "",
              f"Per held-out collection ({info.name}):", "",
              "| collection | AUC | EER | APCER | BPCER | HTER |", "|---|---:|---:|---:|---:|---:|"]
    for coll, r in result.per_collection.items():  # type: ignore[attr-defined]
        lines.append(f"| {coll} | {r.auc:.3f} | {_pct(r.eer)} | {_pct(r.apcer_pooled)} | "
                     f"{_pct(r.bpcer)} | {_pct(r.hter)} |")
    lines += [
        "",
        "## Model",
        "",
        f"- Backbone: `{backbone}` ({init}), frozen; global average pooling of each crop "
        "scale the model uses (`face`: the aligned face crop at context 1.6; `frame`: the "
        "whole image; several are concatenated); a standardised L2 logistic regression "
        "folded into one sigmoid unit; served as `model.tflite` by LiteRT.",
        f"- Threshold {info.threshold:.4f}: {info.threshold_rule}.",
        "- Not yet done: fine-tuning of the last blocks with capture-chain augmentation, the "
        "from-scratch comparison rows (ResNet50, MobileNetV2-0.35@96, LivenessNet@32) and "
        "Grad-CAM explanations.",
        "",
        f"Reproduce: `{command}`" if command else "",
        "",
        "Plots of the pooled out-of-fold scores: "
        + ", ".join(f"`evaluation/{p.name}`" for k, p in report_paths.items() if k != "json"),
        "",
    ]
    return "\n".join(lines)
