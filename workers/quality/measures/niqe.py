"""Natural Image Quality Evaluator (NIQE).

Mittal, Soundararajan & Bovik, "Making a completely blind image quality analyzer",
IEEE SPL 20(3) 2013. The image is split into 96x96 patches; each patch is described
by 18 natural-scene statistics of its MSCN coefficients (7x7 Gaussian window,
sigma 7/6) at each of 2 scales, i.e. 36 numbers:

* GGD fit of the MSCN coefficients: shape alpha and variance sigma^2;
* AGGD fit of the products of horizontally, vertically and (both) diagonally
  neighbouring coefficients: shape, mean, left and right scale (4 x 4).

A multivariate Gaussian (mu, Sigma) fitted to the patches of pristine images is the
model of naturalness; the quality of a test image is the distance between that
model and the MVG of the test image's patches,

    D = sqrt((mu_p - mu_t)^T ((Sigma_p + Sigma_t) / 2)^+ (mu_p - mu_t)),

0 = as natural as the pristine set, larger = worse.

Differences from the published model, on purpose and documented:

* The published model was fitted on 125 pristine photographs (not redistributable
  with this project). Ours is fitted by ``workers.quality.fit_nr_models`` on the
  natural photographs shipped inside the scikit-image wheel (list and patch count in
  ``params/niqe.json``), so absolute values are not comparable with published NIQE
  figures; the ranking behaviour (pristine < distorted, growing with distortion)
  is what the liveness features rely on.
* The MSCN coefficients of the pristine *and* test images use the GGD fit
  (alpha, sigma^2) that the paper describes; the reference MATLAB code uses an
  AGGD fit there. Neighbour products wrap along the row-major flattened patch
  rather than with MATLAB's circshift (same number of edge-straddling pairs; see
  ``_scale_features``). Borders are replicated instead of zero-padded, and the half
  scale is a 2x2 area average instead of MATLAB's bicubic imresize.
* Images smaller than a patch use one patch as large as the image allows.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from common.errors import ModelError
from workers.quality.measures.nss import aggd_fit, ggd_fit, mscn, pad_to_min_size

PATCH_SIZE = 96
N_FEATURES = 36
PARAMS_PATH = Path(__file__).resolve().parent.parent / "params" / "niqe.json"
MODEL_VERSION = 1

# (row, column) neighbour offsets of the pairwise products: H, V, D1, D2
_PAIRS = ("h", "v", "d1", "d2")


def feature_names() -> list[str]:
    """Names of the 36 patch features, in order."""
    names = []
    for scale in (1, 2):
        names += [f"s{scale}_mscn_alpha", f"s{scale}_mscn_var"]
        for pair in _PAIRS:
            names += [f"s{scale}_{pair}_{p}" for p in ("alpha", "mean", "beta_l", "beta_r")]
    return names


def _patches(x: np.ndarray, p: int) -> np.ndarray:
    """(n_patches, p, p) view-copy of the non-overlapping p x p tiles of x (top-left grid)."""
    nby, nbx = x.shape[0] // p, x.shape[1] // p
    tiles = x[: nby * p, : nbx * p].reshape(nby, p, nbx, p).transpose(0, 2, 1, 3)
    return tiles.reshape(nby * nbx, p, p)


def _scale_features(tiles: np.ndarray) -> np.ndarray:
    """18 features per patch from MSCN tiles of shape (n, p, p)."""
    n, p, _ = tiles.shape
    flat = tiles.reshape(n, p * p)
    prod, abs_buf = np.empty_like(flat), np.empty_like(flat)  # scratch reused below
    mask_buf = np.empty(flat.shape, dtype=bool)
    cols = list(ggd_fit(flat, abs_out=abs_buf))
    # Neighbour products along the row-major flattened patch, wrapping at its end:
    # shift 1 = horizontal, p = vertical, p + 1 = diagonal, p - 1 = anti-diagonal.
    # About p of the p*p pairs per patch straddle the patch edge, as many as the
    # circshift wrap-around of the reference MATLAB code (not the same pairs).
    for shift in (1, p, p + 1, p - 1):
        np.multiply(flat[:, :-shift], flat[:, shift:], out=prod[:, :-shift])
        np.multiply(flat[:, -shift:], flat[:, :shift], out=prod[:, -shift:])
        cols.extend(aggd_fit(prod, abs_out=abs_buf, mask_out=mask_buf))
    return np.stack(cols, axis=1)


def _features_and_sigma(grey: np.ndarray, patch_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The (n_patches, 36) features, the scale-1 local std map and the patch side used."""
    x = pad_to_min_size(np.asarray(grey, dtype=np.float32), 16)
    h, w = x.shape
    # patch as large as allowed (even, so the half scale tiles exactly)
    p = min(patch_size, h - h % 2, w - w % 2)
    x = np.ascontiguousarray(x[: (h // p) * p, : (w // p) * p])
    coeffs, sigma = mscn(x)
    feats1 = _scale_features(_patches(coeffs, p))
    half = cv2.resize(x, (x.shape[1] // 2, x.shape[0] // 2), interpolation=cv2.INTER_AREA)
    coeffs2, _ = mscn(half)
    feats2 = _scale_features(_patches(coeffs2, p // 2))
    return np.hstack([feats1, feats2]), sigma, p


def patch_features(grey: np.ndarray, patch_size: int = PATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """NIQE features of every patch and its sharpness.

    Returns ``(features, sharpness)`` of shapes (n_patches, 36) and (n_patches,);
    sharpness is the patch's mean local standard deviation (the criterion NIQE
    uses to keep only the sharp patches of pristine images when fitting).
    """
    feats, sigma, p = _features_and_sigma(grey, patch_size)
    # block means of sigma, in the same (row-major) patch order
    grid = (sigma.shape[1] // p, sigma.shape[0] // p)
    sharpness = cv2.resize(sigma, grid, interpolation=cv2.INTER_AREA)
    return feats, sharpness.ravel().astype(np.float64)


def mvg_distance(
    mu_ref: np.ndarray, cov_ref: np.ndarray, mu_test: np.ndarray, cov_test: np.ndarray
) -> float:
    """NIQE distance between two multivariate Gaussians (pseudo-inverse of the mean cov).

    The pristine covariance is positive definite and the test one semi-definite, so
    their mean is invertible: a linear solve gives the pseudo-inverse's value (to
    rounding) at a tenth of the cost of its SVD, which stays as the fallback for a
    singular matrix.
    """
    diff = mu_ref - mu_test
    cov = (cov_ref + cov_test) / 2.0
    try:
        weighted = np.linalg.solve(cov, diff)
    except np.linalg.LinAlgError:
        weighted = np.linalg.pinv(cov) @ diff
    return float(np.sqrt(max(float(diff @ weighted), 0.0)))


@cache
def load_model(path: Path = PARAMS_PATH) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The pristine MVG ``(mu, cov, metadata)`` stored by ``fit_nr_models``."""
    try:
        data = json.loads(Path(path).read_text())
        if data.get("model") != "niqe" or data.get("version") != MODEL_VERSION:
            raise ModelError(f"{path}: not a NIQE model of version {MODEL_VERSION}")
        mu = np.asarray(data["mu"], dtype=np.float64)
        cov = np.asarray(data["cov"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot load NIQE model {path}: {exc}") from exc
    if mu.shape != (N_FEATURES,) or cov.shape != (N_FEATURES, N_FEATURES):
        raise ModelError(f"{path}: NIQE model has wrong shapes {mu.shape}, {cov.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(cov).all()):
        raise ModelError(f"{path}: NIQE model holds non-finite numbers")
    return mu, cov, data


def natural_image_quality_evaluator(grey: np.ndarray) -> float:
    """NIQE of a grey image (2-D, 0..255): 0 = natural, larger = more distorted."""
    mu_ref, cov_ref, _ = load_model()
    feats = _features_and_sigma(grey, PATCH_SIZE)[0]  # sharpness is for fitting only
    mu = feats.mean(axis=0)
    cov = np.cov(feats, rowvar=False) if feats.shape[0] > 1 else np.zeros_like(cov_ref)
    return mvg_distance(mu_ref, cov_ref, mu, cov)
