"""Why does one collection fail when held out: no signal in its images, or a shift?

A collection whose held-out AUC stays low for every test can be hard in two ways: its
bona fide and attack images carry nothing the features can tell apart, or they do, but
the cue that separates them points the other way in the collections a model learns
from (then no model trained on those can rank it, and a threshold rule cannot help).
For one ``--collection`` of the ``--data`` folders this script prints:

1. **Held out**: each shipped test's and the fusion's out-of-fold AUC on the collection
   (the ``oof_scores.csv`` beside each model card: scores from models fitted without it),
   over all its images and over those the face stage accepts (``face.usable``: the
   images the service decides on; the others answer ``retry`` whatever the score).
2. **Inside the collection**: the AUC of a logistic regression fitted on the collection
   alone, on the CNN test's backbone features (EfficientNet-Lite0, every stage
   average-pooled, the whole image at 224 px: what the shipped head reads), scored in
   ``--folds`` folds of consecutive file numbers per label, so near-duplicate frames of
   one recording stay in one fold. A high figure says the features hold a cue inside
   the collection.
3. **Colour cast**: per collection, the AUC of the whole image's mean luma (Y) and
   chroma (Cr, Cb; ITU-R BT.601 YCrCb at 224 px) for bona fide against attack — a screen
   replay's colour cast is one such cue — and the leave-one-collection-out AUC of a
   collection-balanced logistic regression on those means: on the collection, and its
   mean and worst over all collections (a cue that orders one collection by chance
   ranks others the wrong way).

AUC: bona fide positive (1.0 = every bona fide image above every attack; 0.5 = chance;
below 0.5 = the cue runs the other way). Figures are measured, nothing is fitted to
the collection except in section 2.

Usage: python bench/collection_shift.py --data ../shared/data/nuaa_train [--data ...]
           --collection psi_lestari15 [--models models] [--folds 5]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from common.datasets import open_dataset
from common.errors import DatasetError, ImageError, ModelError
from common.evaluation import metrics
from common.evaluation.oof import FILE, read_oof_scores
from common.faces import FaceDetection, locate_face
from workers.cnn.probe import collection_balanced_weights

#: The out-of-fold score files of the shipped tests and the fusion, under ``--models``.
OOF_FILES = {"cnn": f"cnn/evaluation/{FILE}", "fasnet": f"fasnet/evaluation/{FILE}",
             "quality": f"quality/validation/{FILE}", "fusion": f"fusion/evaluation/{FILE}"}
#: Side (px) every image is resized to for the backbone and the colour means.
SIDE = 224
COLOUR_NAMES = ("Y", "Cr", "Cb")


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """:func:`common.evaluation.metrics.auc` (bona fide, label 1, positive), NaN instead
    of an error when only one label is present."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    return metrics.auc(scores, labels)


def file_number(key: str) -> int:
    """The last number in a sample key's file name (frame order), −1 when there is none."""
    found = re.findall(r"(\d+)", Path(key).stem)
    return int(found[-1]) if found else -1


def consecutive_folds(labels: np.ndarray, order: np.ndarray, folds: int) -> np.ndarray:
    """Fold index (N,) int: within each label, the samples sorted by ``order`` are cut
    into ``folds`` consecutive runs (near-duplicate neighbours share a fold).

    Raises ``ValueError`` when a label has fewer than ``folds`` samples."""
    labels, order = np.asarray(labels), np.asarray(order)
    fold = np.zeros(len(labels), int)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < folds:
            raise ValueError(f"label {label} has {len(members)} samples, fewer than {folds} folds")
        for k, run in enumerate(np.array_split(members[np.argsort(order[members], kind="stable")],
                                               folds)):
            fold[run] = k
    return fold


def within_collection_auc(features: np.ndarray, labels: np.ndarray, order: np.ndarray,
                          folds: int = 5, C: float = 0.1) -> float:
    """AUC of a standardised logistic regression (``C``) on ``features`` (N, D) scored
    out of fold over :func:`consecutive_folds`."""
    fold = consecutive_folds(labels, order, folds)
    scores = np.zeros(len(labels))
    for k in range(folds):
        train = fold != k
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
        model.fit(features[train], labels[train])
        scores[~train] = model.decision_function(features[~train])
    return auc(labels, scores)


def colour_means(rgb: np.ndarray) -> np.ndarray:
    """Mean Y, Cr, Cb (float64, (3,), 0–255) of an RGB uint8 image resized to SIDE."""
    small = cv2.resize(rgb, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb).reshape(-1, 3).mean(axis=0)


def held_out_colour_auc(means: np.ndarray, labels: np.ndarray,
                        collections: np.ndarray) -> dict[str, float]:
    """Leave-one-collection-out AUC per collection of a collection-balanced logistic
    regression on the colour means (N, 3), each fitted on every other collection."""
    out = {}
    for held_out in sorted(set(collections.tolist())):
        train = collections != held_out
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        model.fit(means[train], labels[train], logisticregression__sample_weight=
                  collection_balanced_weights(collections[train], labels[train]))
        out[held_out] = auc(labels[~train], model.decision_function(means[~train]))
    return out


def backbone_features(images: list[tuple[np.ndarray, FaceDetection]],
                      cnn_folder: Path) -> np.ndarray:
    """Features (N, D) float32 of the "frame" view (the whole image; RGB uint8 images
    with their face) from the backbone and pooling the CNN model in ``cnn_folder``
    names (``model.json`` params)."""
    from common.modelfolder import read_model_folder
    from workers.cnn.backbones import get_backbone
    from workers.cnn.features import FeatureExtractor, crop_at_scale

    params = read_model_folder(cnn_folder).get("params", {})
    backbone = get_backbone(params.get("backbone", "efficientnet_lite0"))
    extractor = FeatureExtractor(backbone, pooling=params.get("pooling", "stages"))
    side = backbone.input_side
    return extractor(np.stack([crop_at_scale(image, face, "frame", side)
                               for image, face in images]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="a dataset folder (repeat for each set; the collections come "
                             "from its TSV's collection column)")
    parser.add_argument("--collection", required=True,
                        help="the collection to explain, e.g. psi_lestari15")
    parser.add_argument("--models", type=Path, default=Path("models"),
                        help="the model folders whose out-of-fold scores and CNN "
                             "backbone are used (default: models)")
    parser.add_argument("--folds", type=int, default=5,
                        help="folds of consecutive frames per label inside the "
                             "collection (default: 5)")
    args = parser.parse_args()
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    cv2.setNumThreads(1)

    keys, labels, collections, means, images = [], [], [], [], []
    unreadable = 0
    for root in args.data:
        try:
            dataset = open_dataset(root)
            samples = dataset.samples()
        except DatasetError as exc:
            parser.error(str(exc))
        for sample in samples:
            try:
                image = dataset.read_image(sample)
            except (DatasetError, ImageError):
                unreadable += 1
                continue
            keys.append(f"{dataset.name}/{sample.key}")
            labels.append(int(sample.label))
            collections.append(sample.collection)
            means.append(colour_means(image))
            if sample.collection == args.collection:
                images.append((keys[-1], int(sample.label), image))
    if not images:
        parser.error(f"no image of collection {args.collection!r} in the --data folders; "
                     f"they hold {', '.join(sorted(set(collections))) or 'none'}")
    y, coll, colour = np.array(labels), np.array(collections, dtype=object), np.array(means)
    mine = coll == args.collection
    print(f"{args.collection}: {int(y[mine].sum())} bona fide, {int((~y[mine].astype(bool)).sum())}"
          f" attack presentations; {len(set(collections))} collections, {len(y)} images"
          f" ({unreadable} unreadable, left out)")

    faces = [locate_face(image) for _, _, image in images]
    usable = {key: face.usable for (key, _, _), face in zip(images, faces, strict=True)}
    print(f"\n1. held out (out-of-fold scores); face stage accepts {sum(usable.values())}"
          f" of {len(usable)}")
    print(f"{'test':8s} {'AUC all':>8s} {'AUC accepted':>13s}")
    for name, rel in OOF_FILES.items():
        path = args.models / rel
        if not path.exists():
            print(f"{name:8s} (no {path})")
            continue
        oof = read_oof_scores(path)
        rows = [i for i, k in enumerate(oof.keys) if k in usable and not np.isnan(oof.scores[i])]
        kept = [i for i in rows if usable[oof.keys[i]]]
        print(f"{name:8s} {auc(oof.labels[rows], oof.scores[rows]):8.3f} "
              f"{auc(oof.labels[kept], oof.scores[kept]):13.3f}")

    own_y = np.array([label for _, label, _ in images])
    order = np.array([file_number(key) for key, _, _ in images])
    try:
        features = backbone_features([(image, face) for (_, _, image), face
                                      in zip(images, faces, strict=True)], args.models / "cnn")
    except ModelError as exc:
        parser.error(f"the CNN model folder: {exc}")
    try:
        inside = within_collection_auc(features, own_y, order, args.folds)
    except ValueError as exc:
        parser.error(f"--collection {args.collection}: {exc}")
    print(f"\n2. inside the collection ({args.folds} consecutive folds per label): backbone "
          f"features AUC {inside:.3f}")

    print("\n3. colour cast: AUC of each mean per collection (bona fide positive)")
    print(f"{'collection':28s} " + " ".join(f"{n:>5s}" for n in COLOUR_NAMES))
    for name in sorted(set(collections)):
        rows = coll == name
        cells = " ".join(f"{auc(y[rows], colour[rows, j]):5.2f}" for j in range(3))
        print(f"{name:28s} {cells}{'  <-' if name == args.collection else ''}")
    held_out = held_out_colour_auc(colour, y, coll)
    worst = min(held_out, key=held_out.__getitem__)
    print(f"colour means fitted on the other collections (leave-one-collection-out): "
          f"AUC on {args.collection} {held_out[args.collection]:.3f}; over all "
          f"{len(held_out)} collections mean {np.nanmean(list(held_out.values())):.3f}, "
          f"worst {held_out[worst]:.3f} ({worst})")


if __name__ == "__main__":
    main()
