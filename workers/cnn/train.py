"""``liveness train cnn``: the whole CNN training run as one command.

1. Frozen-backbone features at each crop scale are cached; a standardised logistic
   probe is validated leave-one-collection-out on each scale and their combination, for
   the chosen backbone and every ``compare`` backbone (the card's baseline rows), and the
   seed's dense head on the chosen features.
2. With ``head="finetune"`` the last block of the backbone is fine-tuned per scale on
   cached, augmented activations (:mod:`workers.cnn.finetune`), validated
   leave-one-collection-out, then fitted on every collection for the median number of
   epochs early stopping chose; the scales are fused by their mean log-odds.
3. The shipped head (``head``) is written as one TFLite model with its Grad-CAM output
   (:mod:`workers.cnn.model`), its threshold at ``operating_point`` on the pooled
   leave-one-collection-out scores, the card and the plots.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.config import get_settings
from common.datasets import open_dataset
from common.errors import ModelError
from common.estimator import ModelInfo
from common.evaluation.loco_table import (
    at_shipped_threshold_metrics,
    loco_summary,
    loco_table,
    reports_at_threshold,
)
from common.evaluation.oof import FILE as OOF_FILE
from common.evaluation.oof import write_oof_scores
from common.evaluation.report import evaluate, write_report
from workers.cnn.backbones import get_backbone
from workers.cnn.features import (
    POOLINGS,
    SCALES,
    FeatureExtractor,
    cache_name,
    extract_features,
)
from workers.cnn.finetune import (
    SPLIT_LAYERS,
    FitConfig,
    extract_activations,
    fit_scale,
    loco_finetune,
    split_trunk,
)
from workers.cnn.model import (
    build_scoring_model,
    fold_standardised_logistic,
    save_model_folder,
)
from workers.cnn.probe import (
    fit_probe,
    loco_probe,
    loco_seed_head,
    summary_row,
    training_rows,
)
from workers.cnn.scratch import loco_scratch

CARD = "MODEL_CARD.md"
#: Heads ``train_cnn`` can ship; ``best`` ships whichever of the other two has the lower
#: leave-one-collection-out mean HTER.
HEADS = ("best", "finetune", "probe")


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def train_cnn(data_dirs: Sequence[Path], backbone_name: str, out: Path, cache_dir: Path,
              scales: Sequence[str] = SCALES, C: float = 0.01,
              operating_point: str = "eer", version: str | None = None,
              command: str = "", init: Path | None = None,
              seed_head_row: bool = True, compare: Sequence[str] = (), head: str = "probe",
              variants: int = 1, fit: FitConfig | None = None,
              scratch: Sequence[str] = (), pooling: str = "stages",
              balanced: bool = True, resolution_copies: int = 2) -> Path:
    """Train, validate and write ``out/`` (model.json, model.tflite, MODEL_CARD.md, plots).

    ``head``: ``"probe"`` (frozen backbone, logistic head), ``"finetune"`` (last block
    fine-tuned per scale with ``variants`` camera-chain copies of each image and a
    simulated recapture of each bona fide one; ``fit`` its hyper-parameters) or ``"best"``
    (both; ships the one with the lower leave-one-collection-out mean HTER).
    ``scratch``: backbones trained from random weights as comparison rows on the face
    scale (:mod:`workers.cnn.scratch`). ``pooling``: what the probe reads
    (:data:`workers.cnn.features.POOLINGS`; fine-tuning needs ``last``); ``balanced``:
    every (collection, label) group weighs the same in the probe
    (:func:`workers.cnn.probe.collection_balanced_weights`); ``resolution_copies``: the
    probe is also trained on that many lower-resolution copies of every image
    (:func:`common.augment.lower_resolution`; validated on the held-out collection's own
    images only). With ``stages`` the card also has the last-map rows, with ``balanced``
    the unweighted row, and with copies the row without them, of the chosen input.

    The card's table has every scale and their combination for the trained backbone and
    for each backbone in ``compare`` (frozen, same head), the seed's dense head on the
    shipped features (``seed_head_row``), and each backbone's latency per crop (compiled
    ``tf.function``, one core) and float32 size. Returns the card's path. Raises
    :class:`common.errors.ModelError` for an unknown backbone or missing weights,
    ``ValueError`` for an unknown scale or pooling, fine-tuning with ``stages`` or
    resolution copies, or a negative number of copies.
    """
    if resolution_copies < 0:
        raise ValueError(f"resolution_copies must be >= 0, got {resolution_copies}")
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
    if head != "probe" and pooling != "last":
        raise ValueError("fine-tuning serves the last map only: use pooling 'last' with "
                         f"head {head!r}")
    if head != "probe" and resolution_copies:
        raise ValueError("resolution copies train the probe: use --resolution-copies 0 with "
                         f"head {head!r} (fine-tuning has its own augmentation)")
    unknown = [s for s in scales if s not in SCALES]
    if unknown:
        raise ValueError(f"unknown scales {unknown}; choose from {SCALES}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")
    backbone = get_backbone(backbone_name)
    if head != "probe" and backbone.name not in SPLIT_LAYERS:
        raise ModelError(f"fine-tuning needs an ImageNet backbone ({', '.join(SPLIT_LAYERS)}); "
                         f"use --head probe for {backbone.name}")
    fit = fit or FitConfig()
    samples = []
    for path in data_dirs:
        dataset = open_dataset(path)
        samples += [(s, dataset) for s in dataset.samples()]
    extractor = FeatureExtractor(backbone, init, pooling)
    table = extract_features(samples, extractor, cache_dir / cache_name(backbone, pooling),
                             get_settings(), copies=resolution_copies, seed=fit.seed)
    copies = resolution_copies > 0
    rows: dict[str, tuple[object, str]] = {}  # label → (LOCO result, cost)
    chosen = "+".join(scales)
    cost_shipped = _cost(extractor)  # measured once: every row of this extractor shows it
    for name in [backbone.name, *[c for c in compare if c != backbone.name]]:
        # a compared backbone that names no stages is compared on its last map
        pool = pooling if get_backbone(name).stage_layers else "last"
        other = (extractor if name == backbone.name
                 else FeatureExtractor(get_backbone(name), pooling=pool))
        feats = table if name == backbone.name else extract_features(
            samples, other, cache_dir / cache_name(other.backbone, pool), get_settings())
        cost = cost_shipped if other is extractor else _cost(other)
        combos = [(s,) for s in SCALES] + [tuple(SCALES)]
        if name == backbone.name and tuple(scales) not in combos:
            combos.append(tuple(scales))
        with_copies = copies and name == backbone.name
        for combo in combos:
            rows[_label(name, combo, pool, balanced,
                        resolution_copies if with_copies else 0)] = (
                loco_probe(feats, combo, operating_point, C, balanced, with_copies), cost)
    result = rows[_label(backbone.name, scales, pooling, balanced, resolution_copies)][0]
    if copies:
        rows[_label(backbone.name, scales, pooling, balanced, 0)] = (
            loco_probe(table, scales, operating_point, C, balanced), cost_shipped)
    if balanced:
        rows[_label(backbone.name, scales, pooling, False, resolution_copies)] = (
            loco_probe(table, scales, operating_point, C, False, copies), cost_shipped)
    if pooling != "last":
        last = FeatureExtractor(backbone, init, "last")
        last_table = extract_features(samples, last, cache_dir / cache_name(backbone, "last"),
                                      get_settings())
        cost_last = _cost(last)
        for flag in dict.fromkeys((balanced, False)):
            rows[_label(backbone.name, scales, "last", flag)] = (
                loco_probe(last_table, scales, operating_point, C, flag), cost_last)
    if seed_head_row:
        rows[f"{_label(backbone.name, scales, pooling, False)}, seed dense head "
             "(1024-256-32)"] = (
            loco_seed_head(table, scales, operating_point), cost_shipped)
    if head != "probe":
        tuned, tuned_model, epochs = _finetune(samples, backbone, extractor, scales, cache_dir,
                                               operating_point, variants, fit, rows,
                                               cost_shipped)
    for name in scratch:  # the seeds' small networks, on the seeds' input: the face crop
        cost = _cost(FeatureExtractor(get_backbone(name)))
        for label, res in loco_scratch(samples, name, ["face"], cache_dir, get_settings(),
                                       operating_point, variants).items():
            rows[f"{name} from scratch + augmentation, {label}"] = (res, cost)
    chosen_by = ""
    if head == "best":
        head = "finetune" if _better(tuned, result) else "probe"
        chosen_by = "; shipped over the other head for its lower leave-one-collection-out HTER"
    if head == "finetune":
        result, model = tuned, tuned_model
        notes = (f"last block ({SPLIT_LAYERS[backbone.name]} on) fine-tuned per scale, "
                 f"{variants} camera chain(s) + simulated recapture, epochs {epochs}")
    else:
        X, y, fitted_collections = training_rows(table, scales, np.ones(len(table.y), bool),
                                                 copies)
        final = fit_probe(X, y, C, fitted_collections if balanced else None)
        weights, bias = fold_standardised_logistic(final)
        model = build_scoring_model(backbone, [extractor.trunk] * len(scales), scales,
                                    np.split(weights, len(scales)), bias)
        notes = ("frozen ImageNet backbone, "
                 + ("every stage's map pooled" if pooling == "stages" else "last map pooled")
                 + " + standardised logistic head"
                 + (", collection-balanced sample weights" if balanced else "")
                 + (f", trained with {resolution_copies} lower-resolution copies of every "
                    "image" if copies else ""))
    pooled = evaluate(result.oof, table.y, table.attack_types,
                      operating_point=operating_point)
    shipped = reports_at_threshold(result.oof, table.y, table.attack_types,
                                   table.collections, pooled.threshold)
    summary = loco_summary(result.per_collection, shipped)
    info = ModelInfo(
        test="cnn",
        name=f"{backbone.name}-{head}-{chosen}" + ("-stages" if pooling == "stages" else ""),
        version=version or dt.date.today().isoformat(),
        threshold=float(pooled.threshold),
        threshold_rule=f"{operating_point} on the pooled leave-one-collection-out scores",
        trained_on=[str(p) for p in data_dirs],
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        metrics={"validation": "leave-one-collection-out", "summary": summary,
                 "per_collection": {c: {"auc": r.auc, "eer": r.eer, "apcer": r.apcer_pooled,
                                        "bpcer": r.bpcer, "hter": r.hter}
                                    for c, r in result.per_collection.items()},
                 "per_collection_at_shipped_threshold": at_shipped_threshold_metrics(shipped)},
        notes=notes + chosen_by,
    )
    rng = np.random.default_rng(0)
    side = backbone.input_side
    check = [backbone.preprocess(rng.integers(0, 256, (2, side, side, 3), dtype=np.uint8))
             for _ in scales]
    save_model_folder(out, model, info, backbone, scales,
                      {"head": head, "C": C, "init": str(init or ""), "variants": variants,
                       "pooling": pooling, "balanced": balanced,
                       "resolution_copies": resolution_copies},
                      check_inputs=check)
    report_paths = write_report(pooled, out / "evaluation", f"cnn {info.name}: pooled "
                                "leave-one-collection-out scores", result.oof, table.y,
                                table.attack_types)
    write_oof_scores(out / "evaluation" / OOF_FILE, table.keys, table.collections, table.y,
                     table.attack_types, result.oof)
    card = out / CARD
    card.write_text(_card(info, backbone.name, backbone.initialisation, scales, rows, result,
                          shipped, command, report_paths, head))
    return card


def _label(backbone: str, scales: Sequence[str], pooling: str, balanced: bool,
           copies: int = 0) -> str:
    """The card's row name of a frozen probe."""
    return (f"{backbone} frozen, {'+'.join(scales)}"
            + (", every stage pooled" if pooling == "stages" else ", last map")
            + (", collection-balanced" if balanced else "")
            + (f", + {copies} lower-resolution copies" if copies else ""))


def _better(a: Any, b: Any) -> bool:
    """Whether LOCO result ``a`` beats ``b``: lower mean HTER, then higher mean AUC."""
    sa, sb = summary_row(a), summary_row(b)
    return (round(sa["hter_mean"], 4), -sa["auc_mean"]) < (round(sb["hter_mean"], 4),
                                                          -sb["auc_mean"])


def _finetune(samples: list, backbone: Any, extractor: FeatureExtractor,
              scales: Sequence[str], cache_dir: Path, operating_point: str, variants: int,
              fit: FitConfig, rows: dict, cost: str) -> tuple[Any, Any, dict[str, int]]:
    """Fine-tune the last block per scale: leave-one-collection-out rows (added to
    ``rows``, with the backbone's measured ``cost``), then the final fit. Returns (the
    shipped LOCO result, the scoring model, the final epochs per scale)."""
    import keras

    split = SPLIT_LAYERS[backbone.name]
    prefix, suffix = split_trunk(extractor.model, split)
    acts = extract_activations(
        samples, backbone, prefix, scales,
        cache_dir / f"{backbone.name}-{split}-v{variants}-s{fit.seed}.h5", get_settings(),
        variants=variants, seed=fit.seed)
    start = suffix.get_weights()
    results, fold_epochs = loco_finetune(acts, {s: suffix for s in scales}, operating_point,
                                         fit)
    for name, res in results.items():
        rows[f"{backbone.name} fine-tuned last block + augmentation, {name}"] = (res, cost)
    trunks, weights, biases, epochs = [], [], [], {}
    for scale in scales:
        epochs[scale] = max(1, round(statistics.median(fold_epochs[scale])))
        model, _ = fit_scale(suffix, start, acts.A[scale], acts.y, None, fit, epochs[scale])
        w, b = model.get_layer("p_live").get_weights()
        tuned = keras.models.clone_model(suffix)
        tuned.set_weights(suffix.get_weights())
        inputs = keras.Input((backbone.input_side,) * 2 + (3,))
        trunks.append(keras.Model(inputs, tuned(prefix(inputs)), name=f"{scale}_trunk"))
        weights.append(w[:, 0] / len(scales))
        biases.append(float(b[0]))
    suffix.set_weights(start)
    scoring = build_scoring_model(backbone, trunks, scales, weights, float(np.mean(biases)))
    return results["+".join(scales)], scoring, epochs


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


#: How the card names each crop scale.
SCALE_TEXT = {"face": "`face` (the aligned face crop at context 1.6)",
              "frame": "`frame` (the whole image)"}


def _card(info: ModelInfo, backbone: str, init: str, scales: Sequence[str], rows: dict,
          result: object, shipped: dict, command: str, report_paths: dict[str, Path],
          head: str) -> str:
    lines = [
        f"# Model card: cnn `{info.name}` {info.version}",
        "",
        "**For evaluation and demonstration only.** Trained on "
        + ", ".join(f"`{p}`" for p in info.trained_on)
        + (" (the licences of the data apply: `../shared/data`'s NUAA is for non-commercial "
           "research, its small replay and webcam collections carry no licence)."
           if any("nuaa" in str(p).lower() for p in info.trained_on)
           else " (the licences of the data apply)."),
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
    s = info.metrics["summary"]
    lines += ["", f"Shipped: **{info.name}**.", "",
              f"Per held-out collection ({info.name}; {len(shipped)} collections): APCER "
              "(worst attack type), BPCER and HTER at the threshold chosen on the other "
              "collections, then APCER, BPCER and ACER at the one threshold the model ships "
              f"with ({info.threshold:.4f}, chosen on the pooled out-of-fold scores). Mean AUC "
              f"**{s['auc_mean']:.3f}** (worst {s['auc_min']:.3f}), mean EER "
              f"**{_pct(s['eer_mean'])}**, mean HTER **{_pct(s['hter_mean'])}**; at the shipped "
              f"threshold mean APCER {_pct(s['shipped_apcer_mean'])}, BPCER "
              f"{_pct(s['shipped_bpcer_mean'])}, ACER {_pct(s['shipped_acer_mean'])}.", "",
              loco_table(result.per_collection, shipped,  # type: ignore[attr-defined]
                         info.threshold)]
    lines += [
        "",
        "## Model",
        "",
        f"- Backbone: `{backbone}` ({init}); crop scales: "
        + ", ".join(SCALE_TEXT[s] for s in scales) + ".",
        ("- Head: per scale, the last block fine-tuned on cached activations of the served "
         "view, camera-chain copies (defocus, gamma, colour cast, rescale, noise, JPEG) and "
         "a simulated print/screen recapture of each bona fide image (an attack), "
         "class-balanced, early-stopped on held-out collections; the scales fused by their "
         f"mean log-odds ({info.notes})." if head == "finetune" else
         "- Head: frozen trunk, global average pooling of each scale, a standardised L2 "
         f"logistic regression folded into one linear unit per pooled map ({info.notes})."),
        "- Served as `model.tflite` by LiteRT (no TensorFlow in the serving image), with "
        "the class-activation map of each scale (every pooled map's share of the log-odds "
        "on the last map's grid) as a second output (`explain=true`).",
        f"- Threshold {info.threshold:.4f}: {info.threshold_rule}.",
        "",
        "The full comparison — two scales, fine-tuning with augmentation, the from-scratch "
        "rows — is in `COMPARISON.md` (`make compare-cnn`).",
        "",
        f"Reproduce: `{command}`" if command else "",
        "",
        "Plots of the pooled out-of-fold scores: "
        + ", ".join(f"`evaluation/{p.name}`" for k, p in report_paths.items() if k != "json"),
        "",
    ]
    return "\n".join(lines)
