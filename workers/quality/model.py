"""The W-IQA classifier: standardised quality features → shrinkage LDA (Galbally et al. 2014).

Fitting uses scikit-learn (``StandardScaler`` + ``LinearDiscriminantAnalysis`` with
``solver='eigen', shrinkage='auto'``, i.e. Ledoit–Wolf shrinkage). A binary LDA is a
linear score passed through the logistic function, so the fitted state is just a
mean, a scale, a weight vector and a bias: that is what is saved (JSON) and what
``predict_proba`` evaluates, after fitting and after loading alike.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from scipy.special import expit
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from common.estimator import LivenessEstimator


class QualityClassifier(LivenessEstimator):
    """Live-vs-attack LDA over the 25 image-quality features."""

    test_name: ClassVar[str] = "quality"

    def __init__(self, shrinkage: str | float = "auto", feature_names: tuple[str, ...] = ()):
        self.shrinkage = shrinkage
        self.feature_names = tuple(feature_names)
        self.info = None

    def fit(self, X: Any, y: Any) -> Self:
        X, y = check_X_y(X, y, dtype=np.float64)
        if set(np.unique(y)) != {0, 1}:
            raise ValueError("training needs both live (1) and attack (0) samples")
        scaler = StandardScaler().fit(X)
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=self.shrinkage)
        lda.fit(scaler.transform(X), y)
        self.mean_ = scaler.mean_
        self.scale_ = scaler.scale_
        self.coef_ = lda.coef_.ravel().astype(np.float64)
        self.intercept_ = float(lda.intercept_[0])
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """The LDA log-odds of live vs attack."""
        check_is_fitted(self, "coef_")
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got {X.shape[1]}")
        return ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def predict_proba(self, X: Any) -> np.ndarray:
        p_live = expit(self.decision_function(X))
        return np.column_stack([1.0 - p_live, p_live])

    def _to_arrays(self) -> dict[str, Any]:
        check_is_fitted(self, "coef_")
        return {
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
        }

    def _from_arrays(self, state: dict[str, Any]) -> None:
        self.mean_ = np.asarray(state["mean"], dtype=np.float64)
        self.scale_ = np.asarray(state["scale"], dtype=np.float64)
        self.coef_ = np.asarray(state["coef"], dtype=np.float64)
        self.intercept_ = float(state["intercept"])
        n = self.coef_.shape[0]
        if self.mean_.shape != (n,) or self.scale_.shape != (n,) or not np.all(self.scale_ > 0):
            raise ValueError("mean/scale/coef shapes disagree or a scale is not positive")
        if self.feature_names and len(self.feature_names) != n:
            raise ValueError("feature_names and coef lengths differ")
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = n
