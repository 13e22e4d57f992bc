"""``bench/collection_shift.py``: the folds keep neighbouring frames together, the
within-collection probe finds a cue that is there and not one that is not, and the
colour model is scored only on collections it was not fitted on."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from common.config import PROJECT_ROOT


@pytest.fixture(scope="module")
def shift():
    spec = importlib.util.spec_from_file_location("bench_collection_shift",
                                                  PROJECT_ROOT / "bench" / "collection_shift.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_file_number_is_the_last_number_of_the_name(shift) -> None:
    assert shift.file_number("replay_dev/live/psi_x15__live_102.png") == 102
    assert shift.file_number("spoof/frame.png") == -1


def test_consecutive_folds_keep_neighbouring_frames_in_one_fold(shift) -> None:
    labels = np.array([0] * 10 + [1] * 10)
    order = np.r_[np.arange(10)[::-1], np.arange(10)]
    fold = shift.consecutive_folds(labels, order, 5)
    for label in (0, 1):
        members = np.flatnonzero(labels == label)
        by_order = fold[members[np.argsort(order[members])]]
        assert by_order.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    with pytest.raises(ValueError, match="fewer than 5 folds"):
        shift.consecutive_folds(np.array([0, 0, 1, 1, 1, 1, 1]), np.arange(7), 5)


def test_within_collection_probe_finds_a_cue_only_where_there_is_one(shift) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 60)
    order = np.r_[np.arange(60), np.arange(60)]
    noise = rng.normal(size=(120, 8))
    cue = noise.copy()
    cue[:, 0] += 3.0 * labels
    assert shift.within_collection_auc(cue, labels, order) > 0.95
    assert abs(shift.within_collection_auc(noise, labels, order) - 0.5) < 0.2


def test_colour_model_is_scored_on_held_out_collections_only(shift) -> None:
    # In collections a, b and d bona fide images are redder (Cr); in c they are bluer
    # (Cb), a cue nowhere else. Held out, c is ranked by chance; had c been in the fit,
    # its own cue would rank it.
    rng = np.random.default_rng(1)
    means, labels, collections = [], [], []
    for name, channel in (("a", 1), ("b", 1), ("c", 2), ("d", 1)):
        for label in (0, 1):
            block = rng.normal(128.0, 1.0, size=(40, 3))
            block[:, channel] += 4.0 * label
            means.append(block)
            labels += [label] * 40
            collections += [name] * 40
    held_out = shift.held_out_colour_auc(np.vstack(means), np.array(labels),
                                         np.array(collections, dtype=object))
    assert min(held_out["a"], held_out["b"], held_out["d"]) > 0.9
    assert abs(held_out["c"] - 0.5) < 0.2


def test_auc_is_nan_with_one_label(shift) -> None:
    assert np.isnan(shift.auc(np.array([1, 1]), np.array([0.2, 0.4])))
