"""Fit the NIQE and BIQI models used by the no-reference quality measures.

Run from the repository root::

    .venv/bin/python -m workers.quality.fit_nr_models

The published models were fitted on photographs we cannot ship (NIQE) and on the
LIVE IQA database with human scores (BIQI). We refit both, deterministically, from
the natural photographs that ship inside the scikit-image wheel (no download):

* NIQE: the sharp 96x96 patches (sharpness > 0.75 x the image's sharpest patch, the
  reference code's rule) of the FIT_IMAGES, on two patch grids (offset 0 and 48 px),
  give the pristine multivariate Gaussian.
* BIQI: each FIT_IMAGE, plus random crops of it, is distorted at 9 graded strengths
  per class (JPEG, JPEG2000, white noise, Gaussian blur, a fast-fading stand-in);
  the target is a logarithmic function of the strength scaled to 0 (pristine) ..
  100 (strongest level), like a DMOS. Stage 1 is a multinomial logistic
  regression on the distorted images, stage 2 one RBF SVR per class on that class
  plus the undistorted images (target 0). Hyper-parameters are chosen by
  leave-one-image-out cross-validation (Spearman correlation of BIQI with target).

HELD_OUT images are never used here; the unit tests check the models on them.
Results go to ``workers/quality/params/{niqe,biqi}.json`` (numbers only).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pywt
from skimage import data as skdata

from workers.quality.measures import biqi, niqe

PARAMS_DIR = Path(__file__).resolve().parent / "params"
SEED = 20140201
FIT_IMAGES = (
    "astronaut",
    "camera",
    "coffee",
    "rocket",
    "coins",
    "brick",
    "grass",
    "gravel",
    "motorcycle_left",
)
HELD_OUT = ("chelsea",)
NIQE_SHARPNESS_THRESHOLD = 0.75
NIQE_GRID_OFFSETS = (0, niqe.PATCH_SIZE // 2)
BIQI_CROPS_PER_IMAGE = 2

# Distortion strengths, mildest first, and the target scale of each class.
JPEG_QUALITIES = (90, 70, 50, 35, 25, 18, 12, 8, 5)
JP2K_RATIOS = (8, 15, 25, 40, 60, 90, 140, 220, 350)
NOISE_SIGMAS = (2, 4, 7, 11, 16, 22, 30, 40, 55)
BLUR_SIGMAS = (0.6, 0.9, 1.3, 1.8, 2.5, 3.4, 4.5, 6.0, 8.0)
FF_LEVELS = (
    (10, 0.05),
    (12, 0.1),
    (15, 0.15),
    (18, 0.2),
    (22, 0.3),
    (27, 0.4),
    (33, 0.5),
    (40, 0.6),
    (50, 0.7),
)  # (JPEG2000 ratio, fraction of lost detail blocks)
FF_BLOCK = 16  # coefficients per side of a "packet" of wavelet detail coefficients


def _log_scale(value: float, lo: float, hi: float) -> float:
    return 100.0 * min(max(math.log(value / lo) / math.log(hi / lo), 0.0), 1.0)


def jpeg_target(quality: int) -> float:
    return _log_scale(95.0 / quality, 1.0, 95.0 / 5.0)


def jp2k_target(ratio: float) -> float:
    return _log_scale(ratio, 4.0, 400.0)


def noise_target(sigma: float) -> float:
    return _log_scale(1.0 + sigma / 3.0, 1.0, 1.0 + 60.0 / 3.0)


def blur_target(sigma: float) -> float:
    return _log_scale(1.0 + sigma, 1.0, 9.0)


def ff_target(ratio: float, loss: float) -> float:
    return min(100.0, jp2k_target(ratio) + 50.0 * loss)


def load_grey(name: str) -> np.ndarray:
    """A scikit-image sample photograph as a grey uint8 image (no download)."""
    rgb = skdata.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skdata, name)()
    if rgb.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)
    return rgb


# --- distortions (uint8 grey in, uint8 grey out) ---------------------------------


def jpeg(grey: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def jpeg2000(grey: np.ndarray, ratio: float) -> np.ndarray:
    """OpenCV's JPEG2000 codec at about ``ratio``:1 (its rate parameter is x1000)."""
    rate = max(1, round(1000.0 / ratio))
    ok, buf = cv2.imencode(".jp2", grey, [cv2.IMWRITE_JPEG2000_COMPRESSION_X1000, rate])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def white_noise(grey: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = grey.astype(np.float64) + rng.normal(0.0, sigma, grey.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def gaussian_blur(grey: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(grey, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)


def fast_fading(
    grey: np.ndarray, ratio: float, loss: float, rng: np.random.Generator
) -> np.ndarray:
    """Stand-in for LIVE's fast-fading class: JPEG2000, then lost packets.

    LIVE sent JPEG2000 bit streams over a Rayleigh fading channel; we compress with
    JPEG2000 and zero random FF_BLOCK x FF_BLOCK blocks of wavelet detail coefficients
    (probability ``loss``), which leaves the local blur/ringing of missing packets.
    """
    base = jpeg2000(grey, ratio).astype(np.float64)
    coeffs = pywt.wavedec2(base, "bior4.4", level=4, mode="periodization")
    for details in coeffs[1:]:
        for band in details:
            for r in range(0, band.shape[0], FF_BLOCK):
                for c in range(0, band.shape[1], FF_BLOCK):
                    if rng.random() < loss:
                        band[r : r + FF_BLOCK, c : c + FF_BLOCK] = 0.0
    out = pywt.waverec2(coeffs, "bior4.4", mode="periodization")[: grey.shape[0], : grey.shape[1]]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def distortion_series(
    grey: np.ndarray, rng: np.random.Generator
) -> Iterator[tuple[str, int, float, np.ndarray]]:
    """(class, level, target, image) for every class and strength, mildest first."""
    for i, q in enumerate(JPEG_QUALITIES):
        yield "jpeg", i, jpeg_target(q), jpeg(grey, q)
    for i, r in enumerate(JP2K_RATIOS):
        yield "jpeg2000", i, jp2k_target(r), jpeg2000(grey, r)
    for i, s in enumerate(NOISE_SIGMAS):
        yield "white_noise", i, noise_target(s), white_noise(grey, s, rng)
    for i, s in enumerate(BLUR_SIGMAS):
        yield "gaussian_blur", i, blur_target(s), gaussian_blur(grey, s)
    for i, (r, p) in enumerate(FF_LEVELS):
        yield "fast_fading", i, ff_target(r, p), fast_fading(grey, r, p, rng)


BIQI_CLASSES = ("jpeg", "jpeg2000", "white_noise", "gaussian_blur", "fast_fading")


# --- NIQE ------------------------------------------------------------------------


def fit_niqe(names: tuple[str, ...] = FIT_IMAGES) -> dict[str, Any]:
    """Pristine MVG from the sharp patches of the fitting images."""
    selected = []
    for name in names:
        grey = load_grey(name).astype(np.float32)
        for off in NIQE_GRID_OFFSETS:
            feats, sharpness = niqe.patch_features(grey[off:, off:])
            keep = sharpness > NIQE_SHARPNESS_THRESHOLD * sharpness.max()
            selected.append(feats[keep])
    feats = np.vstack(selected)
    return {
        "model": "niqe",
        "version": niqe.MODEL_VERSION,
        "feature_names": niqe.feature_names(),
        "mu": feats.mean(axis=0).tolist(),
        "cov": np.cov(feats, rowvar=False).tolist(),
        "fitted_on": {
            "images": [f"skimage.data.{n}" for n in names],
            "held_out": [f"skimage.data.{n}" for n in HELD_OUT],
            "patch_size": niqe.PATCH_SIZE,
            "grid_offsets_px": list(NIQE_GRID_OFFSETS),
            "sharpness_threshold": NIQE_SHARPNESS_THRESHOLD,
            "n_patches": int(feats.shape[0]),
            "note": "pristine set = natural photographs in the scikit-image wheel, "
            "not the 125-image set of the published NIQE model",
        },
    }


# --- BIQI ------------------------------------------------------------------------


def biqi_dataset(
    names: tuple[str, ...] = FIT_IMAGES, crops: int = BIQI_CROPS_PER_IMAGE, seed: int = SEED
) -> dict[str, np.ndarray]:
    """Features, class index (-1 = undistorted), target and image group of every sample."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[np.ndarray, int, float, int, int]] = []
    for group, name in enumerate(names):
        full = load_grey(name)
        views = [full]
        h, w = full.shape
        for _ in range(crops):
            ch, cw = (int(s * rng.uniform(0.6, 0.9)) for s in (h, w))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            views.append(np.ascontiguousarray(full[y : y + ch, x : x + cw]))
        for view in views:
            rows.append((biqi.wavelet_features(view.astype(np.float32)), -1, 0.0, group, -1))
            for cls, level, target, img in distortion_series(view, rng):
                feats = biqi.wavelet_features(img.astype(np.float32))
                rows.append((feats, BIQI_CLASSES.index(cls), target, group, level))
    return {
        "features": np.array([r[0] for r in rows]),
        "label": np.array([r[1] for r in rows]),
        "target": np.array([r[2] for r in rows]),
        "group": np.array([r[3] for r in rows]),
        "level": np.array([r[4] for r in rows]),
    }


def _fit_biqi_parts(
    z: np.ndarray, label: np.ndarray, target: np.ndarray, clf_c: float, svr: dict[str, float]
) -> tuple[Any, list[Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVR

    distorted = label >= 0
    clf = LogisticRegression(C=clf_c, max_iter=5000)
    clf.fit(z[distorted], label[distorted])
    regs = []
    for k in range(len(BIQI_CLASSES)):
        sel = (label == k) | (label == -1)
        reg = SVR(kernel="rbf", C=svr["C"], epsilon=svr["epsilon"], gamma=svr["gamma"])
        regs.append(reg.fit(z[sel], target[sel]))
    return clf, regs


def _predict_biqi(clf: Any, regs: list[Any], z: np.ndarray) -> np.ndarray:
    q = np.stack([r.predict(z) for r in regs], axis=1)  # sklearn SVR (fitting only)
    return (clf.predict_proba(z) * q).sum(axis=1)


def _cross_validate(
    ds: dict[str, np.ndarray], clf_c: float, svr: dict[str, float]
) -> dict[str, float]:
    """Leave-one-image-out: Spearman of BIQI vs target, class accuracy, RMSE."""
    from scipy.stats import spearmanr

    z_all = biqi.model_inputs(ds["features"])
    preds = np.empty(len(z_all))
    correct = []
    for g in np.unique(ds["group"]):
        test = ds["group"] == g
        mean, scale = z_all[~test].mean(0), z_all[~test].std(0)
        z = (z_all - mean) / scale
        clf, regs = _fit_biqi_parts(z[~test], ds["label"][~test], ds["target"][~test], clf_c, svr)
        preds[test] = _predict_biqi(clf, regs, z[test])
        dist = test & (ds["label"] >= 0)
        correct.append(clf.predict(z[dist]) == ds["label"][dist])  # sklearn (fitting only)
    rho = spearmanr(preds, ds["target"]).statistic
    rmse = float(np.sqrt(np.mean((preds - ds["target"]) ** 2)))
    accuracy = float(np.concatenate(correct).mean())
    return {"spearman": float(rho), "rmse": rmse, "class_accuracy": accuracy}


def fit_biqi(ds: dict[str, np.ndarray], log: Callable[[str], None] = print) -> dict[str, Any]:
    import sklearn

    grid_c = (0.1, 1.0, 10.0)
    grid_svr = [
        {"C": c, "epsilon": e, "gamma": g}
        for c in (30.0, 100.0, 300.0)
        for e in (2.0, 5.0)
        for g in (0.02, 0.05, 0.1)
    ]
    best: tuple[float, float, dict[str, float], dict[str, float]] | None = None
    for clf_c in grid_c:
        for svr in grid_svr:
            cv = _cross_validate(ds, clf_c, svr)
            log(f"  C_clf={clf_c:<5} svr={svr} -> {cv}")
            if best is None or cv["spearman"] > best[0]:
                best = (cv["spearman"], clf_c, svr, cv)
    assert best is not None
    _, clf_c, svr, cv = best
    log(f"best: C_clf={clf_c} svr={svr} {cv}")

    z_raw = biqi.model_inputs(ds["features"])
    mean, scale = z_raw.mean(0), z_raw.std(0)
    z = (z_raw - mean) / scale
    clf, regs = _fit_biqi_parts(z, ds["label"], ds["target"], clf_c, svr)
    regressors = {
        name: {
            "type": "rbf_svr",
            "gamma": float(reg.gamma),
            "intercept": float(reg.intercept_[0]),
            "dual_coef": reg.dual_coef_[0].tolist(),
            "support_vectors": reg.support_vectors_.tolist(),
        }
        for name, reg in zip(BIQI_CLASSES, regs, strict=True)
    }
    return {
        "model": "biqi",
        "version": biqi.MODEL_VERSION,
        "classes": list(BIQI_CLASSES),
        "feature_names": biqi.feature_names(),
        "model_inputs": "9 GGD shapes; log10 variance ratios level1/level3 and "
        f"level2/level3 per orientation; log10 level-3 variances (variance + {biqi.VAR_FLOOR:g})",
        "scaler": {"mean": mean.tolist(), "scale": scale.tolist()},
        "classifier": {
            "type": "multinomial_logistic",
            "C": clf_c,
            "coef": clf.coef_.tolist(),
            "intercept": clf.intercept_.tolist(),
        },
        "regressors": regressors,
        "fitted_on": {
            "images": [f"skimage.data.{n}" for n in FIT_IMAGES],
            "held_out": [f"skimage.data.{n}" for n in HELD_OUT],
            "views_per_image": 1 + BIQI_CROPS_PER_IMAGE,
            "n_samples": len(ds["target"]),
            "distortions": {
                "jpeg": {
                    "opencv_quality": list(JPEG_QUALITIES),
                    "target": "100 ln(95/q) / ln(95/5)",
                },
                "jpeg2000": {
                    "compression_ratio": list(JP2K_RATIOS),
                    "target": "100 ln(r/4) / ln(100)",
                },
                "white_noise": {"sigma": list(NOISE_SIGMAS), "target": "100 ln(1 + s/3) / ln(21)"},
                "gaussian_blur": {"sigma": list(BLUR_SIGMAS), "target": "100 ln(1 + s) / ln(9)"},
                "fast_fading": {
                    "jp2k_ratio_and_loss": [list(x) for x in FF_LEVELS],
                    "block": FF_BLOCK,
                    "target": "min(100, jpeg2000 target + 50 loss)",
                },
            },
            "undistorted_target": 0.0,
            "cross_validation": {"scheme": "leave-one-image-out", **cv},
            "seed": SEED,
            "scikit_learn": sklearn.__version__,
            "note": "synthetic distortions with strength-derived targets, not LIVE DMOS",
        },
    }


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PARAMS_DIR, help="output folder")
    parser.add_argument("--only", choices=("niqe", "biqi"), help="fit one model only")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    if args.only in (None, "niqe"):
        t0 = time.perf_counter()
        model = fit_niqe()
        _write_json(args.out / "niqe.json", model)
        n = model["fitted_on"]["n_patches"]
        print(f"NIQE: {n} pristine patches, {time.perf_counter() - t0:.1f} s")
    if args.only in (None, "biqi"):
        t0 = time.perf_counter()
        ds = biqi_dataset()
        print(f"BIQI: {len(ds['target'])} samples in {time.perf_counter() - t0:.1f} s")
        _write_json(args.out / "biqi.json", fit_biqi(ds))
        print(f"BIQI fitted in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
