"""``liveness batch DIR --server URL --api-key KEY --out results.csv``: a folder through a
running service, for back-office verification.

Built on the Python client (``clients/python``, :mod:`liveness_client`): each image is
submitted and waited for (long-poll) by one of ``--concurrency`` threads, with the
client's retries (429/503 with ``Retry-After``, lost connections; one idempotency key per
image, so a retry never makes two jobs). Rows are appended to the CSV as images finish —
the columns of ``liveness score --out`` (:func:`common.result.csv_row`) — so an
interrupted run continues where it stopped: images already scored in the CSV are
skipped, and its error rows are dropped and their images tried again. A closing
summary gives the counts per decision and per reason and the latency percentiles
(submission to result, as the client saw them).
"""

from __future__ import annotations

import csv
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import click
import numpy as np
from tqdm import tqdm

from cli.score import collect_files
from common.result import LivenessResult, csv_columns, csv_row, escape_formula


def done_paths(out: Path) -> tuple[set[str], list[str] | None]:
    """(the ``path`` cells of an existing CSV's scored rows, its header); empty and
    ``None`` when the file does not exist or is empty. Error rows (a timeout, an
    unreachable service, a refused file) are dropped from the file, so that their
    images are tried again."""
    if not out.is_file() or out.stat().st_size == 0:
        return set(), None
    with out.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    kept = [row for row in rows if row.get("decision") != "error"]
    if len(kept) < len(rows):
        temporary = out.with_name(out.name + ".tmp")
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)
        temporary.replace(out)
    return {row["path"] for row in kept if row.get("path")}, header or None


def job_row(path: str, job: Any, tests: Sequence[str], latency_s: float) -> dict[str, Any]:
    """The CSV row of a finished :class:`liveness_client.Job` (or an error row when it
    failed or expired)."""
    if job.status != "done" or job.decision is None:
        return csv_row(path, None, job.error or job.status, latency_s, tests)
    raw = {"score": job.score, "decision": job.decision, "threshold": job.threshold,
           "fusion": job.fusion, "reasons": list(job.reasons or ()),
           "face": _face_dict(job.face),
           "tests": {n: vars(d) for n, d in (job.tests_detail or {}).items()}}
    timings = job.timings or {}
    queued = float(timings.get("queued_s") or 0.0)
    seconds = float(timings.get("total_s") or latency_s) - queued
    return csv_row(path, LivenessResult.from_dict(raw), None, seconds, tests, queued)


def _face_dict(face: Any) -> dict[str, Any]:
    out = dict(vars(face))
    out["box"] = dict(vars(face.box))
    return out


def summary_lines(decisions: Counter, reasons: Counter, latencies: Sequence[float],
                  skipped: int) -> Iterator[str]:
    """The closing summary (module docstring)."""
    total = sum(decisions.values())
    yield (f"{total} image{'' if total == 1 else 's'} scored ({skipped} already in the "
           "CSV): "
           + ", ".join(f"{d} {n}" for d, n in decisions.most_common()))
    if reasons:
        yield "reasons: " + ", ".join(f"{r} {n}" for r, n in reasons.most_common())
    if latencies:
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
        yield (f"latency, submission to result: p50 {p50:.2f} s, p90 {p90:.2f} s, "
               f"p99 {p99:.2f} s, max {max(latencies):.2f} s")


@click.command("batch")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--server", required=True, envvar="LIVENESS_SERVER", show_envvar=True,
              help="The service's base URL, e.g. http://127.0.0.1:8000.")
@click.option("--api-key", required=True, envvar="LIVENESS_API_KEY", show_envvar=True,
              help="An API key of the service (liveness apikey).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="CSV to write; when it exists, the images already in it are skipped.")
@click.option("--tests", "test_names", default="", show_default="the service's defaults",
              help="Comma-separated tests to run.")
@click.option("--profile", default=None, help="Calibration profile for every image.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Images in flight at once.")
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(1),
              help="Seconds to wait for one image's result.")
def batch_command(inputs: tuple[str, ...], server: str, api_key: str, out: str,
                  test_names: str, profile: str | None, concurrency: int,
                  timeout: float) -> None:
    """Score the images of INPUTS (files or folders) through a running service."""
    try:
        from liveness_client import JobTimeoutError, LivenessClient, LivenessError
    except ImportError:
        raise click.ClickException("the Python client is not installed: pip install "
                                   "clients/python (make setup does)") from None
    import httpx

    paths, _ = collect_files(inputs)
    out_path = Path(out)
    seen, header = done_paths(out_path)
    todo = [p for p in paths if escape_formula(str(p)) not in seen]
    skipped = len(paths) - len(todo)
    tests = [t for t in test_names.split(",") if t] or None
    lock = threading.Lock()
    decisions: Counter = Counter()
    reasons: Counter = Counter()
    latencies: list[float] = []
    columns: list[str] | None = header or (csv_columns(tests) if tests else None)
    handle = out_path.open("a", newline="")
    writer: csv.DictWriter | None = (csv.DictWriter(handle, fieldnames=columns,
                                                    extrasaction="ignore")
                                     if columns else None)
    if writer is not None and header is None:
        writer.writeheader()

    def one(client: Any, path: Path) -> tuple[dict[str, Any], float]:
        start = time.monotonic()
        try:
            job = client.score(path, tests=tests, profile=profile, timeout=timeout)
        except LivenessError as exc:
            return csv_row(str(path), None, f"{exc.code}: {exc.message}",
                           time.monotonic() - start, tests or []), time.monotonic() - start
        except JobTimeoutError:
            return csv_row(str(path), None, f"timeout: no result within {timeout:g} s",
                           time.monotonic() - start, tests or []), time.monotonic() - start
        except (httpx.HTTPError, OSError) as exc:
            return csv_row(str(path), None, f"unreachable: {exc}", time.monotonic() - start,
                           tests or []), time.monotonic() - start
        latency = time.monotonic() - start
        return job_row(str(path), job, job.tests or (tests or []), latency), latency

    try:
        with LivenessClient(server, api_key) as client, \
                ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = [pool.submit(one, client, p) for p in todo]
            for future in tqdm(as_completed(futures), total=len(futures), desc="batch",
                               file=sys.stderr, disable=not todo):
                row, latency = future.result()
                with lock:
                    if writer is None:  # the first result names the service's default tests
                        names = [c[:-6] for c in row if c.endswith("_score")
                                 and c != "score_live"]
                        writer = csv.DictWriter(handle, fieldnames=csv_columns(names),
                                                extrasaction="ignore")
                        writer.writeheader()
                    writer.writerow(row)
                    handle.flush()
                    decisions[row["decision"]] += 1
                    reasons.update(r for r in str(row["reasons"]).split(";") if r)
                    if row["decision"] != "error":
                        latencies.append(latency)
    finally:
        handle.close()
    for line in summary_lines(decisions, reasons, latencies, skipped):
        click.echo(line, err=True)
    if decisions.get("error"):
        sys.exit(1)
