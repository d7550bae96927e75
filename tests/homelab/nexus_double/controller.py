"""Start, stop and steer a Nexus double process from tests and the homelab scripts."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Self

import httpx

from tests.homelab.processes import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    Daemon,
    StartStop,
    child_env,
    command_line,
    http_probe,
    port_open,
    stop_pid_file,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
MODULE = "tests.homelab.nexus_double"
PID_NAME = "nexus.pid"
LOG_NAME = "nexus.log"
OUTPUT_NAME = "nexus.out"  # stdout/stderr: tracebacks if the process dies before logging
PASSWORD_NAME = "admin.password"
REST_PORT = 8081


class NexusDoubleError(RuntimeError):
    """The double did not start, or a control call failed."""


def _state_dir_of(pid: int) -> Path | None:
    """The --state-dir of the double running as `pid`, None if `pid` is no double."""
    args = command_line(pid)
    if MODULE not in args:
        return None
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (FileNotFoundError, PermissionError):
        return None
    for index, arg in enumerate(args):
        if arg == "--state-dir" and index + 1 < len(args):
            return (cwd / args[index + 1]).resolve()
        if arg.startswith("--state-dir="):
            return (cwd / arg.removeprefix("--state-dir=")).resolve()
    return None


def stop_pidfile(state_dir: Path, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the double another process started in `state_dir`; True if one was running.

    Only a pid whose command line is this module with this state dir is signalled, so a
    recycled pid is never hit.
    """
    wanted = Path(state_dir).resolve()
    return stop_pid_file(Path(state_dir) / PID_NAME, lambda pid: _state_dir_of(pid) == wanted, timeout)


class NexusDoubleProcess(StartStop):
    """One double process: REST on host:rest_port, connectors on each docker repo's port."""

    reuse_running = True  # `with` takes a running double as it is

    def __init__(
        self,
        host: str,
        state_dir: Path,
        admin_password: str,
        *,
        eula_accepted: bool = False,
        starting_seconds: float = 0.0,
        rest_port: int = REST_PORT,
    ) -> None:
        self.host = host
        self.state_dir = Path(state_dir).resolve()
        self.admin_password = admin_password
        self.eula_accepted = eula_accepted
        self.starting_seconds = starting_seconds
        self.rest_port = rest_port
        self._daemon: Daemon | None = None

    def __repr__(self) -> str:
        return f"NexusDoubleProcess({self.url})"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    @property
    def admin_auth(self) -> tuple[str, str]:
        return ("admin", self.admin_password)

    @property
    def log_path(self) -> Path:
        return self.state_dir / LOG_NAME

    @property
    def pid_file(self) -> Path:
        return self.state_dir / PID_NAME

    @property
    def password_file(self) -> Path:
        return self.state_dir / PASSWORD_NAME

    def is_running(self) -> bool:
        return self._daemon is not None and self._daemon.is_running()

    def _write_password_file(self) -> None:
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.admin_password + "\n")
        os.chmod(self.password_file, 0o600)  # O_CREAT's mode does not apply to an old file

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Spawn the double in its own session; return once /v1/status answers 200."""
        if self.is_running():
            raise NexusDoubleError(f"{self!r} is already running")
        if port_open(self.host, self.rest_port):
            raise NexusDoubleError(f"{self.host}:{self.rest_port} is already in use")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._write_password_file()
        command = [
            sys.executable,
            "-m",
            MODULE,
            "--host",
            self.host,
            "--state-dir",
            str(self.state_dir),
            "--admin-password-file",
            str(self.password_file),
            "--rest-port",
            str(self.rest_port),
            "--starting-seconds",
            str(self.starting_seconds),
        ]
        if self.eula_accepted:
            command.append("--eula-accepted")
        env = child_env()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        # stdout/stderr go to nexus.out; the double writes nexus.log (and its pid file too,
        # but only after seconds of imports: stop_pidfile must find it from the start).
        output = self.state_dir / OUTPUT_NAME
        self._daemon = Daemon(
            "the Nexus double",
            command,
            self.pid_file,
            output,
            cwd=REPO_ROOT,
            env=env,
            error=NexusDoubleError,
            logs=(output, self.log_path),
        )
        with httpx.Client(trust_env=False, timeout=httpx.Timeout(1.0, connect=0.5)) as client:
            self._daemon.start(http_probe(client, f"{self.url}/service/rest/v1/status"), timeout)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the process group; safe to call any number of times."""
        if self._daemon is not None:
            self._daemon.stop(timeout)

    stop_pidfile = staticmethod(stop_pidfile)

    # -- control API ----------------------------------------------------------------------

    def _control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with httpx.Client(trust_env=False, timeout=10.0) as client:
            response = client.request(method, f"{self.url}/__double__/{path}", **kwargs)
        if response.status_code >= 400:
            raise NexusDoubleError(f"{method} /__double__/{path}: {response.status_code} {response.text}")
        return response

    def reset(self, *, eula_accepted: bool | None = None, starting_seconds: float | None = None) -> None:
        """Back to a fresh instance in the running process (connectors closed, log kept)."""
        options = {
            k: v
            for k, v in (("eula_accepted", eula_accepted), ("starting_seconds", starting_seconds))
            if v is not None
        }
        self._control("POST", "reset", json=options)

    def requests(self, kind: str | None = None, port: int | None = None) -> list[dict[str, Any]]:
        """The request log: method, path, port, status, repository, served_by, user, fault."""
        params = {k: str(v) for k, v in (("kind", kind), ("port", port)) if v is not None}
        return self._control("GET", "requests", params=params).json()

    def clear_requests(self) -> None:
        self._control("DELETE", "requests")

    def add_fault(
        self,
        path_regex: str,
        action: str = "status",
        *,
        method: str | None = None,
        status: int = 503,
        seconds: float = 0.0,
        times: int | None = None,
        port: int | None = None,
    ) -> dict[str, Any]:
        """Inject a fault: answer `status`, `delay` by `seconds`, or `reset` the connection."""
        spec = {
            "path_regex": path_regex,
            "action": action,
            "method": method,
            "status": status,
            "seconds": seconds,
            "times": times,
            "port": port,
        }
        return self._control("POST", "faults", json=spec).json()

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def set_connectors(self, up: bool) -> dict[str, Any]:
        """Take every docker connector down (ports closed) or bring them back."""
        return self._control("POST", "connectors", json={"up": up}).json()

    def connectors(self) -> dict[str, Any]:
        return self._control("GET", "connectors").json()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
