"""The fleet, faulted: the compose stack (every pool its own container on its own
address) under load, one operator's fault per scenario — ``make fleet``.

Brings ``docker-compose.yml`` up as the compose project ``liveness-fleet`` with
``deploy/fleet/compose.fleet.yml`` (an internal network of its own, the gateway's port
published on 127.0.0.1 only), on the images ``make images`` built (``.cache/images.env``
names their base), with fresh secrets and one API key. It waits for ``/readyz``, checks
the network (internal: Docker's iptables rules drop whatever would leave it; the port on
loopback only),
then for each scenario submits jobs (the astronaut, the default tests) at ``--rate`` per
second from before the fault until 15 s after it ended (:class:`OpenLoad`) while a
thread injects the fault:

- ``steady``          no fault: the fault-free decision every other job is compared with;
- ``scale``           quality-only jobs at one quality container, then at three
                      (``--scale quality=3``): throughput before and after;
- ``kill-worker``     SIGKILL the fasnet container's main process (a crash, not a
                      ``docker stop``): its restart policy brings it back, the task it held
                      is redelivered after the visibility timeout;
- ``disconnect``      cut the cnn container off the network for ``--cut`` (60) seconds
                      (``docker network disconnect``), then reconnect it;
- ``restart-redis``   ``docker restart`` of Redis (append-only file on its volume);
- ``restart-gateway`` ``docker restart`` of the gateway.

Each prints and writes to ``docs/reliability.md`` (between the ``fleet`` markers):
accepted / done / failed / lost / 5xx other than 503, and decisions other than the
fault-free one. ``docker-compose down -v`` removes the containers, the networks and the
volume at the end, whatever happened. Traffic goes to 127.0.0.1 only (the driver) and
between the stack's containers (no route out of their network).

Usage: python bench/fleet.py [--scenarios steady,scale,…] [--rate 3] [--jobs 96] [--cut 60]
       [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.faults import caused_by_fault, decisions, fault_free_decision
from bench.load import LoadReport, LoadRun, http
from common.sealing import new_key as new_image_key
from gateway.auth import hash_key

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "liveness-fleet"
PORT = 18000
URL = f"http://127.0.0.1:{PORT}"
FILES = ("docker-compose.yml", "deploy/fleet/compose.fleet.yml")
SCENARIOS = ("steady", "scale", "kill-worker", "disconnect", "restart-redis", "restart-gateway")
FAULT_AT_S = 8.0
BEGIN, END = "<!-- fleet:begin -->", "<!-- fleet:end -->"


def run(*args: str, check: bool = True, both: bool = False) -> str:
    """A command's stdout (``both``: with its stderr, where Celery's logs go)."""
    done = subprocess.run(args, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if both else subprocess.PIPE, text=True,
                          cwd=ROOT)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout or '').strip()[-2000:]}")
    return done.stdout.strip()


class Fleet:
    """The compose project: up, down, its containers and its network."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.compose_cmd = run("bash", "deploy/ensure-docker.sh").split()
        images = ROOT / ".cache/images.env"
        if not images.is_file():
            raise SystemExit("no .cache/images.env: run `make images` first")
        self.api_key = "lk_fleet_" + secrets.token_hex(16)
        self.env_file = ROOT / ".cache/fleet.env"
        self.env_file.write_text(images.read_text() + "\n".join([
            f"LIVENESS_WEBHOOK_SECRET={secrets.token_urlsafe(32)}",
            f"LIVENESS_IMAGE_KEYS={new_image_key()}",
            f"LIVENESS_API_KEY_HASHES=fleet:{hash_key(self.api_key)}",
            # the driver is one key: per-key limits would measure the limiter, not the fleet
            "LIVENESS_RATE_LIMIT=100000/minute", "LIVENESS_READ_RATE_LIMIT=100000/minute",
            f"GATEWAY_HOST_PORT={PORT}", ""]))
        self.env_file.chmod(0o600)

    def compose(self, *args: str, check: bool = True) -> str:
        files = [x for f in FILES for x in ("-f", f)]
        return run(*self.compose_cmd, "-p", PROJECT, "--env-file", str(self.env_file),
                   *files, *args, check=check)

    def container(self, service: str) -> str:
        ids = run("docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}",
                  "--filter", f"label=com.docker.compose.service={service}").split()
        if not ids:
            raise RuntimeError(f"no running {service} container")
        return ids[0]

    @property
    def network(self) -> str:
        return f"{PROJECT}_default"

    def up(self, *extra: str) -> None:
        self.compose("up", "-d", "--no-build", *extra)

    def wait_ready(self, timeout_s: float = 300) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            status, _, _ = http("GET", f"{URL}/readyz", None, timeout=5)
            if status == 200:
                return time.monotonic() - start
            time.sleep(2)
        raise RuntimeError(f"/readyz not 200 after {timeout_s:.0f} s:\n"
                           + self.compose("ps", check=False))

    def down(self) -> None:
        if not self.keep:
            self.compose("down", "-v", "--remove-orphans", check=False)
        self.env_file.unlink(missing_ok=True)


def network_hygiene(fleet: Fleet) -> list[str]:
    """What the stack's network allows, read off Docker (no packet is sent anywhere)."""
    lines = []
    info = json.loads(run("docker", "network", "inspect", fleet.network))[0]
    lines.append(f"network {fleet.network}: internal={info['Internal']}, "
                 f"{len(info['Containers'])} containers on it")
    ports = run("docker", "port", fleet.container("gateway"))
    lines.append(f"gateway's published port: {ports.replace(chr(10), '; ')}")
    bridge = "br-" + info["Id"][:12]
    subnet = info["IPAM"]["Config"][0]["Subnet"]
    rules = run("iptables", "-S", "DOCKER-ISOLATION-STAGE-1", check=False).splitlines()
    drops = [r for r in rules if bridge in r and subnet in r and r.endswith("-j DROP")]
    lines.append(f"iptables drops what leaves {bridge} for anywhere outside {subnet} "
                 f"and what enters it from outside: {len(drops) == 2} ({len(drops)} rules)")
    edge = json.loads(run("docker", "network", "inspect", f"{PROJECT}_edge"))[0]
    names = sorted(c["Name"] for c in edge["Containers"].values())
    lines.append(f"network {PROJECT}_edge (published port only): {', '.join(names)}")
    return lines


def inject(fleet: Fleet, scenario: str, cut_s: float, log: list[str]) -> None:
    time.sleep(FAULT_AT_S)
    if scenario == "kill-worker":
        pid = run("docker", "inspect", "-f", "{{.State.Pid}}", fleet.container("fasnet"))
        run("kill", "-9", pid)
        log.append(f"SIGKILL fasnet container's main process (host pid {pid})")
        time.sleep(15)
        state = run("docker", "inspect", "-f", "{{.RestartCount}} {{.State.Status}}",
                    fleet.container("fasnet"), check=False)
        log.append(f"fasnet after 15 s: restarts, status = {state}")
    elif scenario == "disconnect":
        container = fleet.container("cnn")
        run("docker", "network", "disconnect", fleet.network, container)
        log.append(f"cnn container disconnected from {fleet.network} for {cut_s:.0f} s")
        time.sleep(cut_s)
        run("docker", "network", "connect", fleet.network, container)
        log.append("cnn container reconnected")
    elif scenario in ("restart-redis", "restart-gateway"):
        service = scenario.split("-", 1)[1]
        started = time.monotonic()
        run("docker", "restart", fleet.container(service))
        log.append(f"docker restart {service}: {time.monotonic() - started:.1f} s")


def load_seconds(scenario: str, cut_s: float) -> float:
    lasts = {"disconnect": cut_s, "kill-worker": 15.0}.get(scenario, 10.0)
    return FAULT_AT_S + lasts + 15.0


class OpenLoad(LoadRun):
    """Jobs submitted at a fixed rate for a while (an open loop: arrivals do not wait for
    earlier answers, as people in front of cameras do not), each then long-polled to its
    end. A refused submission (429/503, or no connection while the gateway restarts) is
    retried after its ``Retry-After`` for up to a minute; an accepted job that is not
    terminal ``drain_s`` after the last submission is **lost**."""

    def __init__(self, api_key: str, rate: float, duration_s: float) -> None:
        super().__init__(URL, api_key, 1, int(rate * duration_s), duration_s)
        self.rate = rate

    def run(self, drain_s: float = 300) -> LoadReport:
        start = time.monotonic()
        until = start + self.duration_s + drain_s
        with ThreadPoolExecutor(max_workers=64) as pool:
            for k in range(self.jobs):
                time.sleep(max(0.0, start + k / self.rate - time.monotonic()))
                pool.submit(self.one_job, time.monotonic() + 60, until)
        self.report.wall_s = time.monotonic() - start
        self.drain(0)  # what is still open was polled until `until`: lost
        return self.report


def one_run(fleet: Fleet, rate: float, duration_s: float) -> LoadReport:
    return OpenLoad(fleet.api_key, rate, duration_s).run()


def capacity_run(fleet: Fleet, jobs: int) -> LoadReport:
    """As many quality-only jobs as 8 clients get through (a closed loop): capacity."""
    return LoadRun(URL, fleet.api_key, 8, jobs, 600, ["quality"]).run(drain_s=300)


def seconds_per_task(fleet: Fleet, job_ids: list[str]) -> dict[str, float]:
    """Median seconds each test took per task (``timings.tests_s``) over ``job_ids``."""
    seen: dict[str, list[float]] = {}
    for job_id in job_ids[:24]:
        status, _, raw = http("GET", f"{URL}/v1/jobs/{job_id}", fleet.api_key)
        if status == 200:
            for test, seconds in (json.loads(raw).get("timings") or {}).get(
                    "tests_s", {}).items():
                if seconds:
                    seen.setdefault(test, []).append(float(seconds))
    return {test: statistics.median(values) for test, values in sorted(seen.items())}


#: The task whose run time is a pool's service time (fusion's deadline sweeps and webhook
#: deliveries are not per job).
POOL_TASKS = {"face": "liveness.face.locate", "quality": "liveness.quality.score",
              "cnn": "liveness.cnn.score", "fasnet": "liveness.fasnet.score",
              "depth3d": "liveness.depth3d.score", "fusion": "liveness.fusion.finalize"}
#: KEDA's target: one replica per this many seconds of queued work.
TARGET_WAIT_S = 2.0


def pool_task_seconds(fleet: Fleet) -> dict[str, float]:
    """Median run time of each pool's task, as its Celery worker logged it (``Task … succeeded
    in …s``: the whole task, store reads and writes included), over this run."""
    medians = {}
    for pool, task in POOL_TASKS.items():
        logs = run("docker", "logs", fleet.container(pool), check=False, both=True)
        times = [float(m) for m in re.findall(re.escape(task) + r"\[[^\]]*\] succeeded in "
                                               r"([0-9.]+)s", logs)]
        if times:
            medians[pool] = statistics.median(times)
    return medians


def scenario_row(name: str, report: LoadReport, wrong: int | str, note: str) -> str:
    failed = sum(n for k, n in report.outcomes.items() if k.startswith("failed"))
    return (f"| {name} | {len(report.accepted)} | {report.outcomes.get('done', 0)} | {failed} "
            f"| {len(report.lost)} | {report.server_errors} | "
            f"{report.statuses.get(503, 0)} | {report.statuses.get(0, 0)} | {wrong} | {note} |")


def write_doc(rows: list[str], notes: list[str]) -> None:
    doc = ROOT / "docs/reliability.md"
    text = doc.read_text()
    body = "\n".join([
        BEGIN,
        f"Measured by `make fleet` (`bench/fleet.py`) on {time.strftime('%Y-%m-%d')}: the "
        "compose stack on one 2-core VM, every pool in its own container; jobs (the "
        "astronaut, the default tests) submitted at a fixed rate from before each fault "
        "until 15 s after it ended, each long-polled to its end; the scale rows are "
        "capacity runs (8 clients, quality-only jobs, as fast as they are answered).",
        "",
        "| scenario | accepted | done | failed | lost | 5xx other than 503 | 503 (Retry-After) "
        "| connections refused (retried) | decisions other than the fault-free one "
        "| what happened |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows, "", *[f"- {n}" for n in notes], END])
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: body, text,
                      flags=re.S)
    else:
        text += "\n## The fleet: containers, scaled and faulted\n\n" + body + "\n"
    doc.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--rate", type=float, default=3.0,
                        help="jobs submitted per second while a scenario runs")
    parser.add_argument("--jobs", type=int, default=96,
                        help="jobs of each capacity run of the scale scenario")
    parser.add_argument("--cut", type=float, default=60.0, help="seconds cut off the network")
    parser.add_argument("--keep", action="store_true", help="leave the stack up at the end")
    args = parser.parse_args()
    chosen = [s for s in args.scenarios.split(",") if s]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    if os.geteuid() != 0:
        print("fleet: SIGKILLing a container's process and starting dockerd need root",
              file=sys.stderr)
    fleet = Fleet(args.keep)
    rows, notes = [], []
    per_task: dict[str, float] = {}
    try:
        fleet.compose("down", "-v", "--remove-orphans", check=False)  # a previous run's
        fleet.up()
        print(f"fleet: ready after {fleet.wait_ready():.0f} s")
        notes.extend(network_hygiene(fleet))
        for line in notes:
            print("  " + line)
        steady = one_run(fleet, args.rate, 20)
        baseline = fault_free_decision(dict(steady.outcomes))
        print("steady:", *steady.lines(), sep="\n  ")
        rows.append(scenario_row("steady (no fault)", steady, 0,
                                 f"fault-free decision: {baseline}"))
        per_task = seconds_per_task(fleet, steady.accepted)
        # a few depth3d jobs, so that its pool has a service time too
        LoadRun(URL, fleet.api_key, 2, 24, 120, ["depth3d"]).run(drain_s=120)
        for scenario in chosen:
            if scenario == "steady":
                continue
            if scenario == "scale":
                before = capacity_run(fleet, args.jobs)
                per_task.update(seconds_per_task(fleet, before.accepted))
                fleet.up("--scale", "quality=3")
                fleet.wait_ready()
                after = capacity_run(fleet, args.jobs)
                fleet.up("--scale", "quality=1")
                speed = [len(r.latencies) / max(r.wall_s, 1e-9) for r in (before, after)]
                print(f"scale: {speed[0]:.2f} → {speed[1]:.2f} jobs/s")
                for label, report in (("quality ×1", before), ("quality ×3", after)):
                    rows.append(scenario_row(
                        f"scale: {label}, quality-only jobs", report, "—",
                        f"{len(report.latencies) / max(report.wall_s, 1e-9):.2f} jobs/s"))
                continue
            log: list[str] = []
            thread = threading.Thread(target=inject, args=(fleet, scenario, args.cut, log),
                                      daemon=True)
            thread.start()
            report = one_run(fleet, args.rate, load_seconds(scenario, args.cut))
            thread.join()
            fleet.up()  # whatever the fault left stopped comes back, as an operator would
            wrong = caused_by_fault(dict(report.outcomes), baseline)
            print(f"{scenario}:", *log, *report.lines(), sep="\n  ")
            rows.append(scenario_row(scenario, report, wrong, "; ".join(log)))
            fleet.wait_ready()
        decided = {k: v for k, v in decisions(dict(steady.outcomes)).items()}
        notes.append(f"fault-free decisions of the steady run: {decided}")
        notes.append("median seconds per task of each test (its score, one process, "
                     "`timings.tests_s`): " + ", ".join(
                         f"{t} {s * 1000:.0f} ms ({1 / s:.0f} tasks/s per pod)"
                         for t, s in per_task.items() if s > 0))
        service = pool_task_seconds(fleet)
        notes.append(
            f"median run time of each pool's task (its worker's log, Redis reads and writes "
            f"included) and the KEDA target it gives, one replica per {TARGET_WAIT_S:.0f} s "
            "of queued work (`listLength` = ⌊2 s / run time⌋; deploy/README.md): " + ", ".join(
                f"{pool} {sec * 1000:.1f} ms → {max(1, int(TARGET_WAIT_S / sec))}"
                for pool, sec in service.items()))
    finally:
        logs = fleet.compose("logs", "--no-color", "--tail", "200", check=False)
        (ROOT / ".cache/fleet-logs.txt").write_text(logs)
        fleet.down()
    write_doc(rows, notes)
    print("fleet: written to docs/reliability.md; container logs in .cache/fleet-logs.txt")


if __name__ == "__main__":
    main()
