"""Blind Image Quality Index (BIQI).

Moorthy & Bovik, "A two-step framework for constructing blind image quality
indices", IEEE SPL 17(5) 2010. The image is decomposed by a 3-level Daubechies 9/7
wavelet transform (PyWavelets' 'bior4.4' filters); a zero-mean generalised Gaussian
is fitted to each of the 9 detail sub-bands, giving 18 features (shape alpha and
variance sigma^2 per sub-band). Stage 1 estimates the probability p_i that the image
suffers from distortion i (JPEG, JPEG2000, white noise, Gaussian blur, fast fading);
stage 2 predicts a quality q_i per distortion; BIQI = sum_i p_i q_i, on a DMOS-like
scale: about 0 for a pristine image, larger = worse (roughly up to 100).

Differences from the published model, on purpose and documented:

* The published BIQI was trained on the LIVE IQA database (human DMOS), which this
  project does not have. Our stage-1 classifier (multinomial logistic regression)
  and stage-2 regressors (one RBF support-vector regressor per class) were fitted
  by ``workers.quality.fit_nr_models`` on distortions we generated from the natural
  photographs inside the scikit-image wheel; the target "DMOS" is a monotone
  (logarithmic) function of the distortion strength scaled to 0..100, not a human
  opinion score (details and the image list in ``params/biqi.json``). The
  published model used LIBSVM SVC/SVR instead of the logistic stage 1.
* The JPEG2000 distortions come from OpenCV's JPEG2000 encoder; "fast fading"
  (LIVE: JPEG2000 bit streams sent over a fading channel) is simulated by
  JPEG2000 compression followed by zeroing random blocks of wavelet detail
  coefficients (lost packets).
* The wavelet transform is computed with OpenCV filters (whole-sample symmetric
  borders, same filters and phase as PyWavelets in its interior) for speed.

So absolute BIQI values are not comparable with published figures; the measure
keeps the behaviour the liveness features need: it grows with distortion strength.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from common.errors import ModelError
from workers.quality.measures.nss import ggd_from_moments, pad_to_min_size

N_LEVELS = 3
N_FEATURES = 18
PARAMS_PATH = Path(__file__).resolve().parent.parent / "params" / "biqi.json"
MODEL_VERSION = 1
# Variances enter the models as log10(var + VAR_FLOOR): they span decades.
VAR_FLOOR = 1e-3

# CDF 9/7 analysis filters (the non-zero taps of pywt.Wavelet('bior4.4').dec_lo/dec_hi);
# both are symmetric, so OpenCV's correlation equals the convolution.
_LO = np.array(
    [
        0.03782845550726404,
        -0.023849465019556843,
        -0.11062440441843718,
        0.37740285561283066,
        0.8526986790088938,
        0.37740285561283066,
        -0.11062440441843718,
        -0.023849465019556843,
        0.03782845550726404,
    ],
    dtype=np.float32,
)
_HI = np.array(
    [
        -0.06453888262869706,
        0.04068941760916406,
        0.41809227322161724,
        -0.7884856164055829,
        0.41809227322161724,
        0.04068941760916406,
        -0.06453888262869706,
    ],
    dtype=np.float32,
)
_BORDER = cv2.BORDER_REFLECT_101


def _filter_rows(x: np.ndarray, kernel: np.ndarray, phase: int) -> np.ndarray:
    """Filter along axis 1 and keep every second column starting at ``phase``."""
    out = cv2.filter2D(x, -1, kernel.reshape(1, -1), borderType=_BORDER)
    return np.ascontiguousarray(out[:, phase::2])


def _filter_cols(x: np.ndarray, kernel: np.ndarray, phase: int) -> np.ndarray:
    """Filter along axis 0 and keep every second row starting at ``phase``."""
    out = cv2.filter2D(x, -1, kernel.reshape(-1, 1), borderType=_BORDER)
    return out[phase::2]


def dwt97(grey: np.ndarray, levels: int = N_LEVELS) -> list[tuple[np.ndarray, ...]]:
    """Detail sub-bands (H, V, D) of a ``levels``-level 9/7 DWT, finest level first.

    Same naming and phase as ``pywt.wavedec2(x, 'bior4.4', mode='periodization')``:
    H = low-pass along rows (axis 1), high-pass along columns; lowpass outputs are the
    even samples, high-pass outputs the odd ones.
    """
    x = np.ascontiguousarray(grey, dtype=np.float32)
    details = []
    for _ in range(levels):
        low = _filter_rows(x, _LO, 0)
        high = _filter_rows(x, _HI, 1)
        h = _filter_cols(low, _HI, 1)
        v = _filter_cols(high, _LO, 0)
        d = _filter_cols(high, _HI, 1)
        x = np.ascontiguousarray(_filter_cols(low, _LO, 0))
        details.append((h, v, d))
    return details


def feature_names() -> list[str]:
    """Names of the 18 features, in order: 9 shapes, then 9 variances."""
    bands = [f"l{lv}_{o}" for lv in range(1, N_LEVELS + 1) for o in ("h", "v", "d")]
    return [f"{b}_alpha" for b in bands] + [f"{b}_var" for b in bands]


def wavelet_features(grey: np.ndarray) -> np.ndarray:
    """The 18 BIQI features: GGD (alpha, sigma^2) of each detail sub-band."""
    # 3 levels of a 9-tap filter need a few pixels per side at the coarsest level
    x = pad_to_min_size(np.asarray(grey, dtype=np.float32), 32)
    bands = [b for level in dwt97(x) for b in level]
    mean_sq = np.array([cv2.norm(b, cv2.NORM_L2SQR) / b.size for b in bands])
    mean_abs = np.array([cv2.norm(b, cv2.NORM_L1) / b.size for b in bands])
    alpha, var = ggd_from_moments(mean_sq, mean_abs)
    return np.concatenate([alpha, var])


def model_inputs(features: np.ndarray) -> np.ndarray:
    """Map raw features (..., 18) to the models' inputs.

    The 9 shapes, the log10 variances of the coarsest level, and for levels 1 and 2
    the log10 ratio of their variance to the level-3 variance of the same orientation
    (global contrast cancels; the ratios carry the blur/noise spectrum tilt). Chosen
    over plain log variances by leave-one-image-out cross-validation.
    """
    f = np.asarray(features, dtype=np.float64)
    log_var = np.log10(f[..., 9:] + VAR_FLOOR)
    coarse = log_var[..., 6:9]
    return np.concatenate(
        [f[..., :9], log_var[..., 0:3] - coarse, log_var[..., 3:6] - coarse, coarse], axis=-1
    )


class BiqiModel:
    """Stage 1 (softmax classifier) and stage 2 (RBF SVRs) from stored numbers."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.metadata = data
        self.classes: list[str] = list(data["classes"])
        k = len(self.classes)
        self.mean = np.asarray(data["scaler"]["mean"], dtype=np.float64)
        self.scale = np.asarray(data["scaler"]["scale"], dtype=np.float64)
        clf = data["classifier"]
        self.coef = np.asarray(clf["coef"], dtype=np.float64)
        self.intercept = np.asarray(clf["intercept"], dtype=np.float64)
        self.svrs = []
        for name in self.classes:
            reg = data["regressors"][name]
            sv = np.asarray(reg["support_vectors"], dtype=np.float64)
            dual = np.asarray(reg["dual_coef"], dtype=np.float64)
            if sv.ndim != 2 or sv.shape[1] != N_FEATURES or dual.shape != (sv.shape[0],):
                raise ValueError(f"regressor {name!r} has wrong shapes")
            self.svrs.append((sv, dual, float(reg["gamma"]), float(reg["intercept"])))
        shapes_ok = (
            self.mean.shape == self.scale.shape == (N_FEATURES,)
            and self.coef.shape == (k, N_FEATURES)
            and self.intercept.shape == (k,)
        )
        if not shapes_ok:
            raise ValueError("scaler/classifier arrays have wrong shapes")
        numbers = [self.mean, self.scale, self.coef, self.intercept]
        numbers += [a for sv, dual, _, _ in self.svrs for a in (sv, dual)]
        if not all(np.isfinite(a).all() for a in numbers) or (self.scale <= 0).any():
            raise ValueError("non-finite or invalid numbers")

    def standardise(self, features: np.ndarray) -> np.ndarray:
        return (model_inputs(features) - self.mean) / self.scale

    def probabilities(self, z: np.ndarray) -> np.ndarray:
        """Stage 1: P(distortion class) for standardised inputs z (n, 18)."""
        logits = z @ self.coef.T + self.intercept
        logits -= logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=-1, keepdims=True)

    def class_qualities(self, z: np.ndarray) -> np.ndarray:
        """Stage 2: per-class quality predictions (n, n_classes)."""
        out = np.empty((z.shape[0], len(self.svrs)))
        for i, (sv, dual, gamma, intercept) in enumerate(self.svrs):
            d2 = (z * z).sum(1)[:, None] - 2.0 * z @ sv.T + (sv * sv).sum(1)[None, :]
            out[:, i] = np.exp(-gamma * np.maximum(d2, 0.0)) @ dual + intercept
        return out

    def predict_quality(self, features: np.ndarray) -> np.ndarray:
        """BIQI = sum_i p_i q_i for raw feature rows (n, 18)."""
        z = self.standardise(np.atleast_2d(features))
        return (self.probabilities(z) * self.class_qualities(z)).sum(axis=1)


@cache
def load_model(path: Path = PARAMS_PATH) -> BiqiModel:
    """The BIQI model stored by ``fit_nr_models`` (read once per process)."""
    try:
        data = json.loads(Path(path).read_text())
        if data.get("model") != "biqi" or data.get("version") != MODEL_VERSION:
            raise ModelError(f"{path}: not a BIQI model of version {MODEL_VERSION}")
        return BiqiModel(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot load BIQI model {path}: {exc}") from exc


def blind_image_quality_index(grey: np.ndarray) -> float:
    """BIQI of a grey image (2-D, 0..255): about 0 = pristine, larger = worse."""
    return float(load_model().predict_quality(wavelet_features(grey))[0])
