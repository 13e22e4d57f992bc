"""The W-IQA classifier: same probabilities as scikit-learn's LDA, safe JSON persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from common.errors import ModelError
from common.estimator import ModelInfo
from workers.quality.model import QualityClassifier


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (200, 25)), rng.normal(0.6, 1.3, (200, 25))])
    X[:, 3] *= 1000  # features on wildly different scales, as the quality measures are
    y = np.r_[np.zeros(200, int), np.ones(200, int)]
    return X, y


def test_matches_sklearn_pipeline(blobs):
    X, y = blobs
    ours = QualityClassifier().fit(X, y)
    ref = make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="eigen",
                                                                       shrinkage="auto")).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-9)
    assert list(ours.classes_) == [0, 1]


def test_save_load_round_trip(tmp_path, blobs):
    X, y = blobs
    model = QualityClassifier(feature_names=tuple(f"f{i}" for i in range(25))).fit(X, y)
    model.info = ModelInfo(test="quality", name="wiqa-lda", version="t", threshold=0.42)
    path = model.save(tmp_path)
    doc = json.loads(path.read_text())
    assert doc["format"].endswith("QualityClassifier") and "state" not in doc
    assert set(doc["files"]) == {"weights.npz"}  # the fitted numbers, pinned by SHA-256
    loaded = QualityClassifier.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.info.threshold == 0.42 and loaded.feature_names == model.feature_names
    assert (loaded.predict(X) == (model.predict_proba(X)[:, 1] >= 0.42)).all()


def test_separates_the_classes(blobs):
    X, y = blobs
    p = QualityClassifier().fit(X, y).predict_proba(X)[:, 1]
    assert p[y == 1].mean() > p[y == 0].mean() + 0.3


def test_needs_both_classes(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="both"):
        QualityClassifier().fit(X[y == 1], y[y == 1])


def test_wrong_feature_count(blobs):
    X, y = blobs
    model = QualityClassifier().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict_proba(X[:, :10])


def test_load_errors(tmp_path, blobs):
    with pytest.raises(ModelError, match="no model file"):
        QualityClassifier.load(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a readable"):
        QualityClassifier.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"format": "os.system", "format_version": 1,
                                                     "files": {}}))
    with pytest.raises(ModelError, match="not"):
        QualityClassifier.load(tmp_path)
    X, y = blobs
    model = QualityClassifier().fit(X, y)
    model.scale_ = model.scale_[:3]
    model.save(tmp_path)
    with pytest.raises(ModelError, match="malformed"):
        QualityClassifier.load(tmp_path)


def test_a_tampered_weight_file_is_refused(tmp_path, blobs):
    X, y = blobs
    model = QualityClassifier().fit(X, y)
    model.save(tmp_path)
    other = QualityClassifier().fit(X[::-1] + 1.0, y[::-1])
    other.save(tmp_path / "other")
    (tmp_path / "weights.npz").write_bytes((tmp_path / "other/weights.npz").read_bytes())
    with pytest.raises(ModelError, match=r"weights.npz: SHA-256 .* does not match"):
        QualityClassifier.load(tmp_path)
    (tmp_path / "weights.npz").unlink()
    with pytest.raises(ModelError, match="missing"):
        QualityClassifier.load(tmp_path)
