"""The shipped fusion can answer both ways, lets live people of every collection in,
and the default tests are the ones it recommends (issue 16: the shipped quality-only
subset's highest possible score was below its threshold, so the default job could never
answer ``live``).

Read from the repository's own model folders (the tests' out-of-fold score files beside
their cards), not from ``../shared``.
"""

from __future__ import annotations

import numpy as np
import pytest

from common.calibration import expit, log_odds
from common.config import PROJECT_ROOT
from common.modelfolder import read_model_folder
from common.registry import default_registry
from workers.fusion.train import default_score_file, load_score_table

MODELS = PROJECT_ROOT / "models"
#: Inputs are clipped to [1e-12, 1 − 1e-12] before the log-odds (common.fusion).
MAX_LOG_ODDS = float(log_odds(np.array([1 - 1e-12]))[0])


@pytest.fixture(scope="module")
def params() -> dict:
    return read_model_folder(MODELS / "fusion")["params"]


def test_every_subset_can_fall_on_both_sides_of_every_threshold(params) -> None:
    for key, model in params["subsets"].items():
        reach = sum(abs(w) for w in model["weights"].values()) * MAX_LOG_ODDS
        low, high = model["bias"] - reach, model["bias"] + reach
        for point, threshold in {"default": model["threshold"],
                                 **model.get("operating_points", {})}.items():
            z = float(log_odds(np.array([threshold]))[0])
            assert low < z < high, (key, point, threshold, low, high)


def test_live_images_of_every_collection_are_accepted_by_every_subset(params) -> None:
    tests = params["tests"]
    table = load_score_table({t: default_score_file(MODELS, t) for t in tests})
    for key, model in params["subsets"].items():
        subset = key.split("+")
        rows = table.present(subset)
        cols = [table.tests.index(t) for t in subset]
        weights = np.array([model["weights"][t] for t in subset])
        fused = expit(model["bias"] + log_odds(table.S[np.ix_(rows, cols)]) @ weights)
        live, colls = table.labels[rows] == 1, table.collections[rows]
        for collection in np.unique(colls[live]):
            accepted = fused[live & (colls == collection)] >= model["threshold"]
            assert accepted.mean() >= 0.5, (key, collection, float(accepted.mean()))


def test_the_default_tests_are_the_ones_the_fusion_recommends(params) -> None:
    assert sorted(default_registry().defaults) == sorted(params["recommended_tests"])
    assert set(params["recommended_tests"]) <= set(params["tests"])
