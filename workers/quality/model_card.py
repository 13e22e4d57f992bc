"""Train the shipped W-IQA model and write its model card from measured figures only."""

from __future__ import annotations

import datetime as dt
import platform
from collections import Counter
from pathlib import Path

import numpy as np
import sklearn

from common.estimator import ModelInfo
from common.evaluation.loco_table import (
    at_shipped_threshold_metrics,
    loco_summary,
    loco_table,
    reports_at_threshold,
)
from common.evaluation.oof import FILE as OOF_FILE
from common.evaluation.oof import write_oof_scores
from common.evaluation.report import EvaluationReport, combine_reports, write_report
from workers.quality.features import FEATURE_NAMES, WORKING_PIXELS
from workers.quality.model import QualityClassifier
from workers.quality.train import (
    CrossValidation,
    FeatureSet,
    leave_one_collection_out,
    load_features,
)

MODEL_NAME = "wiqa-lda"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f} %"


def data_table(features: FeatureSet) -> str:
    """Markdown table: samples per collection and label, attack types."""
    rows = Counter((s.collection, s.label) for s in features.samples)
    types: dict[str, set[str]] = {}
    for s in features.samples:
        if s.label == 0:
            types.setdefault(s.collection, set()).add(s.attack_type)
    lines = ["| collection | live | attack | attack types |", "|---|---:|---:|---|"]
    for coll in sorted({c for c, _ in rows}):
        lines.append(
            f"| {coll} | {rows[(coll, 1)]} | {rows[(coll, 0)]} | "
            f"{', '.join(sorted(types.get(coll, set()))) or '—'} |"
        )
    return "\n".join(lines)


def at_shipped_threshold(features: FeatureSet, cv: CrossValidation) -> dict[str, EvaluationReport]:
    """Each collection's out-of-fold scores at the shipped threshold (``cv.threshold``)."""
    return reports_at_threshold(cv.oof_scores, features.y, features.attack_types,
                                features.collections, cv.threshold)


def _pooled_table(p: EvaluationReport) -> str:
    head = (
        "| AUC | EER | APCER (max type) | BPCER | ACER "
        "| BPCER20 (APCER≤5 %) | BPCER100 (APCER≤1 %) |"
    )
    cells = [f"{p.auc:.3f}"] + [
        _pct(v) for v in (p.eer, p.apcer_max, p.bpcer, p.acer, p.bpcer20, p.bpcer100)
    ]
    return "\n".join([head, "|---:" * 7 + "|", "| " + " | ".join(cells) + " |"])


def train_and_document(
    data_dirs: list[Path],
    out: Path,
    cache_dir: Path | None,
    jobs: int | None,
    operating_point: str,
    version: str | None,
    command: str,
    augment: bool = True,
) -> Path:
    """Validate leave-one-collection-out, fit on everything, save model + card + plots."""
    features = load_features(data_dirs, cache_dir, jobs, augment=augment)
    cv = leave_one_collection_out(features, operating_point)
    model = QualityClassifier(feature_names=FEATURE_NAMES).fit(
        *features.training_rows(np.arange(len(features.samples)))
    )
    now = dt.datetime.now(dt.UTC)
    pooled = cv.pooled
    shipped = at_shipped_threshold(features, cv)
    model.info = ModelInfo(
        test="quality",
        name=MODEL_NAME,
        version=version or now.strftime("%Y.%m.%d"),
        threshold=float(cv.threshold),
        threshold_rule=f"{operating_point} on the pooled leave-one-collection-out scores",
        trained_on=[str(d) for d in data_dirs],
        created=now.isoformat(timespec="seconds"),
        metrics={
            "validation": "leave-one-collection-out",
            "summary": loco_summary(cv.per_fold, shipped),
            "pooled": pooled.to_dict(),
            "per_collection": {k: v.to_dict() for k, v in cv.per_fold.items()},
            "per_collection_at_shipped_threshold": at_shipped_threshold_metrics(shipped),
        },
        notes="Research/evaluation use only: trained on non-commercial research data.",
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save(out)
    scored = ~np.isnan(cv.oof_scores)
    write_report(
        pooled,
        out / "validation",
        "W-IQA, leave-one-collection-out (pooled out-of-fold scores)",
        cv.oof_scores[scored],
        features.y[scored],
        features.attack_types[scored],
        extra_sections={"Per held-out collection": combine_reports(cv.per_fold)},
    )
    write_oof_scores(out / "validation" / OOF_FILE, features.keys, features.collections,
                     features.y, features.attack_types, cv.oof_scores)
    card = out / "MODEL_CARD.md"
    card.write_text(_card_text(model, features, cv, shipped, command))
    return card


def _augment_text(features: FeatureSet) -> str:
    if features.aug_y is None:
        return "the images as they are (no augmentation)."
    n_sim = int((features.aug_y == 0).sum() - (features.y == 0).sum())
    return (
        f"{len(features.aug_y)} augmented rows (`common/augment.py`): every image once "
        f"through a random capture chain (rescale, sensor noise, JPEG), plus {n_sim} simulated "
        "print/screen recaptures of the live images, labelled attack. The original images "
        "are not fitted on directly; they are what the validation scores."
    )


def _card_text(model: QualityClassifier, features: FeatureSet, cv: CrossValidation,
               shipped: dict[str, EvaluationReport], command: str) -> str:
    info = model.info
    assert info is not None
    p = cv.pooled
    weights = sorted(zip(FEATURE_NAMES, model.coef_, strict=True), key=lambda t: -abs(t[1]))
    top = ", ".join(f"{n} ({w:+.2f})" for n, w in weights[:8])
    s = loco_summary(cv.per_fold, shipped)
    nan = float("nan")
    n_collections = len(set(features.collections))
    return f"""# Model card — W-IQA quality test (`{info.name}` {info.version})

**Research and evaluation use only.** The training data is licensed for non-commercial
research (NUAA) or carries no licence (the small replay and webcam collections). Do not
deploy this model to make security decisions about real people without retraining it on
data you are licensed to use and validating it on your own cameras and attacks.

## Headline: leave-one-collection-out (unseen people, cameras, screens, printers)
Each of the {n_collections} collections was held out in turn; the model was fitted on the
others and its threshold chosen on *their* scores ({cv.operating_point}), then applied
unchanged to the held-out collection (APCER, BPCER, HTER). This is the figure to expect
on a new deployment, and it is far from the figures of a random split. The last three
columns are the held-out scores at the one threshold the model ships with
({info.threshold:.4f}, chosen on the pooled out-of-fold scores).

Over held-out collections: mean AUC **{s.get("auc_mean", nan):.3f}** (worst
{s.get("auc_min", nan):.3f}), mean EER **{_pct(s.get("eer_mean", nan))}**, mean HTER
**{_pct(s.get("hter_mean", nan))}**; at the shipped threshold mean APCER
{_pct(s.get("shipped_apcer_mean", nan))}, BPCER {_pct(s.get("shipped_bpcer_mean", nan))},
ACER {_pct(s.get("shipped_acer_mean", nan))}.

{loco_table(cv.per_fold, shipped, info.threshold)}

Pooled out-of-fold scores of all collections ({p.n_bona_fide} bona fide,
{sum(p.n_attacks.values())} attacks), at the shipped threshold {info.threshold:.4f}
(fitted at {cv.operating_point} on these same pooled scores — so the APCER/BPCER
pair below is optimistic by construction; EER, AUC and BPCER@APCER are threshold-free):

{_pooled_table(p)}

APCER per attack type: {", ".join(f"{k} {_pct(v)}" for k, v in p.apcer_per_type.items())}.
Plots: [ROC](validation/roc.png), [DET](validation/det.png),
[score histograms](validation/scores.png);
full report: [validation/report.md](validation/report.md).

## Model
- Test: `quality` — the 25 image-quality measures of Galbally, Marcel & Fierrez (IEEE TIP
  2014) of the whole image against its Gaussian-blurred copy (5×5, σ from the kernel
  size), computed after resizing to a working size of {WORKING_PIXELS} pixels (aspect kept)
  so that every camera resolution is compared on one scale.
- Training rows: {_augment_text(features)}
- Classifier: standardised features → scikit-learn `LinearDiscriminantAnalysis(solver="eigen",
  shrinkage="auto")`; output P(live) = logistic of the LDA log-odds.
- Largest weights (standardised units): {top}.
- Threshold: {info.threshold:.4f} ({info.threshold_rule}).
- Files: `model.json` and `weights.npz` (numbers only, pinned by SHA-256; loading cannot
  run code). Created {info.created} with
  scikit-learn {sklearn.__version__}, Python {platform.python_version()}.

## Training data
{data_table(features)}

{features.skipped} unusable images were skipped. Sources and licences: see the data sets'
own README (NUAA Photograph Imposter Database, Tan et al. ECCV 2010 — non-commercial
research; the replay and webcam collections — public repositories without a licence).
Not covered: 3D masks, high-quality video replays on large screens, makeup, partial
attacks, and any camera or printer not in the table above.

## Reproduce
```
{command}
```
Every figure in this card is written by that command (`workers/quality/model_card.py`).

## Known limits
- The no-reference measures BIQI and NIQE use models fitted on scikit-image's sample
  photographs with generated distortions, not the published LIVE-trained models.
- The quality test judges the whole image: framing, background and camera processing
  matter as much as the face. Fuse it with the face-based tests.
"""
