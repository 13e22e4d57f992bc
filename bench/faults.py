"""Fault injection: a real ``liveness serve`` under load, one fault per scenario.

Starts ``liveness serve`` on free loopback ports with a Redis of its own (append-only
persistence in a temporary folder, supervised by serve), then for each scenario runs
:mod:`load` (4 clients, submitting from a few seconds before the fault until
``--after`` seconds after it ended) and injects one fault:

- ``kill-child``    SIGKILL one prefork child of the quality pool (an OOM kill);
- ``kill-pool``     SIGKILL the quality pool's main process (serve's supervisor restarts it);
- ``stop-pool``     stop the quality pool for ``--pause`` seconds, then start it again;
- ``restart-redis`` restart Redis (``supervisorctl restart``, as ``redis-cli shutdown``
                    and a restart);
- ``refuse-writes`` Redis up but refusing every write for ``--refusal`` seconds
                    (``min-replicas-to-write 1`` without a replica: ``NOREPLICAS``, as
                    ``MISCONF`` on a full disk or ``OOM`` would): submissions get 503,
                    the pools must survive and finish the jobs in flight;
- ``queue-bound``   stop the face pool and submit until the gateway answers 503
                    ``overloaded`` with ``Retry-After`` (``LIVENESS_MAX_QUEUE_DEPTH``),
                    then start it again.

Each prints accepted / done / failed / lost / 5xx and the decisions of the jobs that
finished. Every job submitted is the same image, so each faulted job is compared with
that image's decision without a fault (the warm-up's, which must be one and the same
for all its jobs): any other decision is one the fault caused. Deadlines are shortened
(visibility 10 s, job deadline 40 s) so that each scenario takes about a minute.
Loopback only, bounded in time.

Usage: python bench/faults.py [--scenarios kill-child,kill-pool,…] [--pause 60] [--after 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import LoadRun, http

from cli.processes import LogSink, ManagedProcess, free_port

SCENARIOS = ("kill-child", "kill-pool", "stop-pool", "restart-redis", "refuse-writes",
             "queue-bound")
API_KEY = "faults-" + os.urandom(8).hex()


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    pairs = [tuple(map(int, line.split())) for line in out.splitlines() if line.strip()]
    return [p for p, parent in pairs if parent == pid]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Service:
    """``liveness serve`` with its own Redis, driven through its supervisor."""

    def __init__(self, folder: Path, max_queue_depth: int) -> None:
        self.folder = folder
        self.port, redis_port = free_port(), free_port()
        self.redis_program = f"redis-{redis_port}"
        url = f"redis://127.0.0.1:{redis_port}/0"
        env = dict(os.environ, LIVENESS_REDIS_URL=url, LIVENESS_BROKER_URL=url,
                   LIVENESS_RESULT_BACKEND=url, LIVENESS_DEV_API_KEY=API_KEY,
                   LIVENESS_VISIBILITY_TIMEOUT_S="10", LIVENESS_JOB_DEADLINE_S="40",
                   LIVENESS_MAX_QUEUE_DEPTH=str(max_queue_depth),
                   LIVENESS_READ_RATE_LIMIT="100000/minute",
                   LIVENESS_RATE_LIMIT="100000/minute", PYTHONUNBUFFERED="1",
                   # The scenarios' jobs run the quality test only (the pools below): the
                   # figures of docs/reliability.md were measured so, and one test per job
                   # keeps the 2-core machine's faults, not its CPU, what is measured.
                   LIVENESS_DEFAULT_TESTS="quality")
        self.sink = LogSink(folder / "serve.log")
        self.process = ManagedProcess(
            "serve", [sys.executable, "-c", "from cli import main; main()", "serve",
                      "--port", str(self.port), "--data-dir", str(folder),
                      "--pools", "face,quality,fusion", "--concurrency", "1"],
            env, sink=self.sink)
        if not self.sink.wait_for("Ctrl-C stops everything", 180):
            raise RuntimeError(f"serve did not come up:\n{self.sink.tail()}")
        self.url = f"http://127.0.0.1:{self.port}"
        self.redis_url = url
        self.conf = folder / f"serve-{self.port}" / "supervisord.conf"

    def ctl(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c",
                               str(self.conf), *args], capture_output=True, text=True)
        return done.stdout.strip()

    def pid(self, program: str) -> int:
        return int(self.ctl("pid", program))

    def stop(self) -> None:
        self.process.proc.send_signal(signal.SIGINT)
        try:
            self.process.proc.wait(60)
        finally:
            self.process.stop()


#: Seconds into the load when the fault is injected.
FAULT_AT_S = {"refuse-writes": 2.0}
DEFAULT_FAULT_AT_S = 5.0


def load_seconds(scenario: str, pause_s: float, refusal_s: float, after_s: float) -> float:
    """How long the clients submit: until ``after_s`` past the end of the fault (a kill
    or restart counts 5 s for the process to come back)."""
    lasts = {"stop-pool": pause_s, "refuse-writes": refusal_s + 5}.get(scenario, 5.0)
    return FAULT_AT_S.get(scenario, DEFAULT_FAULT_AT_S) + lasts + after_s


def inject(service: Service, scenario: str, pause_s: float, log: list[str],
           refusal_s: float = 15.0) -> None:
    """Inject ``scenario``'s fault (runs in a thread while the load runs)."""
    time.sleep(FAULT_AT_S.get(scenario, DEFAULT_FAULT_AT_S))
    if scenario == "kill-child":
        pool = children(service.pid("quality"))
        os.kill(pool[0], signal.SIGKILL)
        log.append(f"SIGKILL quality pool child {pool[0]}")
    elif scenario == "kill-pool":
        pid = service.pid("quality")
        os.kill(pid, signal.SIGKILL)
        log.append(f"SIGKILL quality main process {pid}; the supervisor restarts it")
    elif scenario == "stop-pool":
        log.append(service.ctl("stop", "quality"))
        time.sleep(pause_s)
        log.append(service.ctl("start", "quality"))
    elif scenario == "restart-redis":
        log.append(service.ctl("restart", service.redis_program).replace("\n", "; "))
    elif scenario == "refuse-writes":
        import redis

        client = redis.Redis.from_url(service.redis_url)
        pools = ("face", "quality", "fusion")
        before = {pool: service.pid(pool) for pool in pools}
        client.config_set("min-replicas-to-write", 1)
        log.append(f"Redis refuses writes (NOREPLICAS) for {refusal_s:.0f} s")
        time.sleep(refusal_s)
        client.config_set("min-replicas-to-write", 0)
        time.sleep(5)
        restarted = [pool for pool in pools if service.pid(pool) != before[pool]]
        log.append(f"writes accepted again; pools that died and were restarted: "
                   f"{', '.join(restarted) or 'none'}")


def decisions(outcomes: dict[str, int]) -> dict[str, int]:
    """``{"decision:live": 3, "done": 3, …}`` → ``{"live": 3}``."""
    return {k.split(":", 1)[1]: n for k, n in outcomes.items() if k.startswith("decision:")}


def fault_free_decision(warm_up: dict[str, int]) -> str:
    """The one decision every warm-up job (the same image, no fault) got; ``ValueError``
    when there is none or more than one (then nothing can be compared)."""
    seen = decisions(warm_up)
    if len(seen) != 1:
        raise ValueError(f"the warm-up gave no single fault-free decision: {seen}")
    return next(iter(seen))


def caused_by_fault(outcomes: dict[str, int], baseline: str) -> int:
    """Jobs that finished with another decision than the fault-free ``baseline``."""
    return sum(n for decision, n in decisions(outcomes).items() if decision != baseline)


def queue_bound(service: Service, log: list[str]) -> dict[str, object]:
    """Fill the face queue past the bound; the gateway must answer 503 with Retry-After."""
    log.append(service.ctl("stop", "face"))
    run = LoadRun(service.url, API_KEY, 1, 1, 1)
    accepted, refused = [], None
    for _ in range(200):
        status, headers, raw = http("POST", f"{service.url}/v1/jobs", API_KEY, run.body)
        if status == 202:
            accepted.append(json.loads(raw)["id"])
        else:
            refused = (status, headers.get("Retry-After"), json.loads(raw)["error"]["code"])
            break
    log.append(f"{len(accepted)} accepted, then {refused}")
    log.append(service.ctl("start", "face"))
    end = time.monotonic() + 180
    outcomes: dict[str, int] = {}
    lost = 0
    for job_id in accepted:
        job = run.poll(job_id, end)
        key = "lost" if job is None else (job["status"] if job["status"] != "done"
                                          else f"decision:{job['decision']}")
        lost += job is None
        outcomes[key] = outcomes.get(key, 0) + 1
    return {"accepted": len(accepted), "refused": refused, "outcomes": outcomes, "lost": lost}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--pause", type=float, default=60, help="stop-pool pause, seconds")
    parser.add_argument("--refusal", type=float, default=15,
                        help="refuse-writes: seconds Redis refuses writes")
    parser.add_argument("--jobs", type=int, default=5000,
                        help="at most this many jobs per scenario")
    parser.add_argument("--after", type=float, default=10,
                        help="seconds the load goes on after the fault ended")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    folder = Path(tempfile.mkdtemp(prefix="liveness-faults-"))
    print(f"starting liveness serve (logs in {folder}) …", file=sys.stderr)
    service = Service(folder, max_queue_depth=30)
    failed = False
    try:
        warm = LoadRun(service.url, API_KEY, 1, 10, 60).run(60)
        print(f"warm-up (no fault): {dict(warm.outcomes)}")
        if warm.lost:
            raise SystemExit(f"the warm-up lost jobs: {warm.lost}")
        try:
            baseline = fault_free_decision(warm.outcomes)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        print(f"fault-free decision of the image: {baseline}")
        for scenario in scenarios:
            log: list[str] = []
            if scenario == "queue-bound":
                result = queue_bound(service, log)
                wrong = caused_by_fault(result["outcomes"], baseline)
                ok = (result["lost"] == 0 and result["refused"] is not None
                      and result["refused"][0] == 503 and bool(result["refused"][1])
                      and not wrong)
                print(f"{scenario}: {result}\n  decisions other than the fault-free "
                      f"{baseline!r}: {wrong}\n  fault: {'; '.join(log)}")
                failed |= not ok
                continue
            # The clients submit from before the fault until --after seconds past its
            # end, so jobs are in flight whenever the fault strikes.
            run = LoadRun(service.url, API_KEY, clients=4, jobs=args.jobs,
                          duration_s=load_seconds(scenario, args.pause, args.refusal,
                                                  args.after))
            fault = threading.Thread(target=inject, args=(service, scenario, args.pause, log,
                                                          args.refusal))
            fault.start()
            report = run.run(drain_s=180)
            fault.join()
            wrong = caused_by_fault(report.outcomes, baseline)
            print(f"{scenario}:")
            for line in report.lines():
                print("  " + line)
            print(f"  decisions other than the fault-free {baseline!r} (caused by the "
                  f"fault): {wrong}")
            print(f"  fault: {'; '.join(log)}")
            died = [line for line in log
                    if "were restarted:" in line and not line.endswith("none")]
            failed |= bool(report.lost or report.server_errors or wrong or died)
    finally:
        service.stop()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
