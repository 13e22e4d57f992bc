"""``bench/faults.py`` judges each faulted job against the same image's decision without
a fault (issue 15.18: it assumed ``live`` and reported every run as failed)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from common.config import PROJECT_ROOT


@pytest.fixture(scope="module")
def faults():
    sys.path.insert(0, str(PROJECT_ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("bench_faults",
                                                      PROJECT_ROOT / "bench" / "faults.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(PROJECT_ROOT / "bench"))


def test_a_fault_is_judged_against_the_fault_free_decision(faults) -> None:
    warm = {"done": 10, "decision:spoof": 10}
    assert faults.fault_free_decision(warm) == "spoof"
    # the shipped default answers spoof for the sample: no fault-caused decision here …
    assert faults.caused_by_fault({"done": 60, "decision:spoof": 60}, "spoof") == 0
    # … and a job the fault turned into live, or retry, is one
    assert faults.caused_by_fault({"decision:spoof": 58, "decision:live": 1,
                                   "decision:retry": 1, "failed:no_worker": 2}, "spoof") == 2
    with pytest.raises(ValueError, match="no single fault-free decision"):
        faults.fault_free_decision({"decision:live": 5, "decision:spoof": 5})
    with pytest.raises(ValueError):
        faults.fault_free_decision({"failed:no_worker": 3})
