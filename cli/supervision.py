"""``liveness serve``'s supervision: its processes run under supervisord.

Supervising processes is not what this project exists for, so it uses supervisor
(http://supervisord.org, maintained, BSD-style licence) rather than a loop of its own:
:class:`Supervisor` writes a ``supervisord.conf`` for the programs (Redis when serve
starts one, the gateway, one Celery worker per pool) and runs ``supervisord -n`` as
its child. supervisord

- restarts a program that exits (``autorestart``); one that dies again within
  ``startsecs`` is retried with a growing delay (1 s, 2 s, 3 s …, ``startretries``),
  and says so in its log (``exited: quality (terminated by SIGKILL; not expected)``,
  ``spawned: 'quality' with pid …``), which serve prints with a ``supervisor`` prefix;
- stops every program's whole process group on exit (``stopasgroup``/``killasgroup``),
  so Ctrl-C leaves no gunicorn or Celery child behind.

Each program's output goes to its own file under the run folder; serve prints it line by
line with the program's name as prefix. Compose and Kubernetes use their own restart
policies instead (``restart: unless-stopped``, Deployments).
"""

from __future__ import annotations

import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cli.processes import ManagedProcess


@dataclass(frozen=True)
class Program:
    """One supervised program: its name, command line and start order (lower first)."""

    name: str
    argv: Sequence[str]
    priority: int = 100
    #: File-creation mask of the program (octal string, e.g. ``"077"``), or inherited.
    umask: str | None = None


class LogTail(threading.Thread):
    """Follows a log file (from its start, waiting for it to appear) line by line."""

    def __init__(self, path: Path, sink: Callable[[str], None]) -> None:
        super().__init__(name=f"tail-{path.name}", daemon=True)
        self.path, self.sink = path, sink
        self._done = threading.Event()

    def run(self) -> None:
        while not self.path.exists():
            if self._done.wait(0.1):
                return
        with self.path.open(errors="replace") as handle:
            partial = ""
            while True:
                chunk = handle.readline()
                if chunk:
                    partial += chunk
                    if partial.endswith("\n"):
                        self.sink(partial.rstrip("\n"))
                        partial = ""
                elif self._done.wait(0.1):
                    return

    def stop(self) -> None:
        self._done.set()
        self.join(2.0)


class Supervisor:
    """supervisord running ``programs``, with their logs under ``run_dir``."""

    def __init__(self, programs: Sequence[Program], run_dir: Path, env: dict[str, str],
                 sink_for: Callable[[str], Callable[[str], None]], cwd: Path,
                 start_retries: int = 10) -> None:
        self.programs = list(programs)
        #: Restarts of a program that dies within ``startsecs`` before supervisord gives
        #: up on it (``FATAL``).
        self.start_retries = start_retries
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.sink_for = sink_for
        self.cwd = cwd
        self.process: ManagedProcess | None = None
        self._tails: list[LogTail] = []

    @property
    def config_path(self) -> Path:
        return self.run_dir / "supervisord.conf"

    def config_text(self) -> str:
        """The ``supervisord.conf`` (see the module docstring for the choices)."""
        lines = [
            "[supervisord]",
            "nodaemon=true",
            f"logfile={self.run_dir / 'supervisord.log'}",
            "logfile_maxbytes=10MB",
            "loglevel=info",
            f"pidfile={self.run_dir / 'supervisord.pid'}",
            f"directory={self.cwd}",
            "",
            "[unix_http_server]",
            f"file={self.run_dir / 'supervisor.sock'}",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.run_dir / 'supervisor.sock'}",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
        ]
        for program in self.programs:
            command = " ".join(shlex.quote(a).replace("%", "%%") for a in program.argv)
            lines += [
                f"[program:{program.name}]",
                f"command={command}",
                f"directory={self.cwd}",
                f"priority={program.priority}",
                *([f"umask={program.umask}"] if program.umask else []),
                "autostart=true",
                "autorestart=true",
                "startsecs=3",
                f"startretries={self.start_retries}",
                "stopsignal=TERM",
                "stopwaitsecs=15",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={self.run_dir / (program.name + '.log')}",
                "stdout_logfile_maxbytes=50MB",
                "stdout_logfile_backups=1",
                "",
            ]
        return "\n".join(lines)

    def start(self) -> None:
        """Write the config, start supervisord and follow every log."""
        self.config_path.write_text(self.config_text())
        for name in ["supervisor", *(p.name for p in self.programs)]:
            path = self.run_dir / ("supervisord.log" if name == "supervisor" else f"{name}.log")
            path.unlink(missing_ok=True)
            tail = LogTail(path, self.sink_for(name))
            tail.start()
            self._tails.append(tail)
        # supervisord's own log is followed from its file; its stdout repeats it.
        self.process = ManagedProcess(
            "supervisord",
            [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(self.config_path)],
            self.env, cwd=self.cwd, sink=None)

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def stop(self, timeout_s: float = 40.0) -> None:
        """Stop supervisord: it stops every program's process group first."""
        if self.process is not None:
            self.process.stop(timeout_s)
        time.sleep(0.2)  # let the tails print the last lines
        for tail in self._tails:
            tail.stop()
