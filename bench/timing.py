"""Timing helpers shared by the benchmarks (not a benchmark itself).

- :func:`median_ms`: the median wall time of a call, after one untimed warm-up call;
- :func:`fresh_process_seconds`: run a Python snippet in a new interpreter (the project
  on its path) and read the seconds it prints last — for load times that must include
  the imports.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of ``repeat`` calls of ``fn`` (one warm-up call first)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def fresh_process_seconds(snippet: str) -> float:
    """Run ``snippet`` with ``python -c`` in the project root and return the float on the
    last line it printed. ``CalledProcessError`` when it fails."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True,
                         env=env, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])
