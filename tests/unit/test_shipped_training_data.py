"""The shipped quality and cnn models were trained — and validated leave-one-collection-
out — on the data sets `make train-quality` / `make train-cnn` name (issue 16: the webcam
frames joined the training data, and `replay_dev` dropped a collection), and their
out-of-fold score files, which the fusion trainer joins, cover the same collections.

Read from the repository's model folders and Makefile, not from ``../shared``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from common.config import PROJECT_ROOT
from common.evaluation.oof import read_oof_scores
from common.modelfolder import read_model_folder

MODELS = PROJECT_ROOT / "models"
OOF = {"quality": MODELS / "quality" / "validation" / "oof_scores.csv",
       "cnn": MODELS / "cnn" / "evaluation" / "oof_scores.csv"}


def _makefile_sets() -> list[str]:
    text = (PROJECT_ROOT / "Makefile").read_text()
    match = re.search(r"^TRAIN_DATA\s*:=\s*\$\(foreach set,([^,]+),", text, re.MULTILINE)
    assert match, "the Makefile names its training sets in TRAIN_DATA"
    return match.group(1).split()


@pytest.mark.parametrize("test", sorted(OOF))
def test_the_shipped_model_was_trained_on_the_makefiles_sets(test: str) -> None:
    info = read_model_folder(MODELS / test)["info"]
    assert [Path(p).name for p in info["trained_on"]] == _makefile_sets()


@pytest.mark.parametrize("test", sorted(OOF))
def test_every_collection_was_held_out_and_scored(test: str) -> None:
    info = read_model_folder(MODELS / test)["info"]
    oof = read_oof_scores(OOF[test])
    assert np.isfinite(oof.scores).all()
    collections = set(oof.collections)
    assert set(info["metrics"]["per_collection"]) == collections
    assert set(info["metrics"]["per_collection_at_shipped_threshold"]) == collections
    for name in collections:  # both classes in every held-out collection
        assert set(oof.labels[oof.collections == name]) == {0, 1}, name


def test_the_quality_and_cnn_score_files_cover_the_same_collections() -> None:
    quality, cnn = (read_oof_scores(OOF[t]) for t in ("quality", "cnn"))
    assert set(quality.collections) == set(cnn.collections)
    # an image either test could not read is the only difference the fusion may meet
    assert len(set(quality.keys) ^ set(cnn.keys)) <= 0.01 * len(cnn.keys)
