"""Timing helpers shared by the benchmarks (not a benchmark itself).

- :func:`median_ms`: the median wall time of a call, after one untimed warm-up call;
- :func:`fresh_process_seconds`: run a Python snippet in a new interpreter (the project
  on its path) and read the seconds it prints last — for load times that must include
  the imports;
- :func:`scorer_load_seconds`: that, for a test's scorer: imports, model folder, face
  stage and the first score of scikit-image's astronaut.
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


SCORER_LOAD_SNIPPET = """
import os, time
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
start = time.perf_counter()
from pathlib import Path
from skimage import data
from common.faces import locate_face
from {module} import {cls}
test = {cls}.from_dir(Path({folder!r}))
image = data.astronaut()
test.score(image, locate_face(image))
print(time.perf_counter() - start)
"""


def scorer_load_seconds(scorer: str, folder: Path) -> float:
    """Seconds a fresh interpreter takes to import ``scorer`` (``"module:Class"``), load
    its model folder and score the astronaut once (face stage included)."""
    module, cls = scorer.split(":")
    return fresh_process_seconds(SCORER_LOAD_SNIPPET.format(module=module, cls=cls,
                                                            folder=str(folder)))
