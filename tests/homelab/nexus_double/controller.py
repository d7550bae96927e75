"""Start, stop and steer a Nexus double process from tests and the homelab scripts."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

REPO_ROOT = Path(__file__).resolve().parents[3]
MODULE = "tests.homelab.nexus_double"
PID_NAME = "nexus.pid"
LOG_NAME = "nexus.log"
OUTPUT_NAME = "nexus.out"  # stdout/stderr: tracebacks if the process dies before logging
PASSWORD_NAME = "admin.password"
REST_PORT = 8081
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
_PROXY_VARS = frozenset(
    {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}
)


class NexusDoubleError(RuntimeError):
    """The double did not start, or a control call failed."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _kill_group(pid: int, timeout: float) -> None:
    """SIGTERM the process group led by `pid`, SIGKILL it if it outlives `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _alive(pid):
            return


def _state_dir_of(pid: int) -> Path | None:
    """The --state-dir of the double running as `pid`, None if `pid` is no double."""
    try:
        args = [os.fsdecode(a) for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (FileNotFoundError, PermissionError):
        return None
    if MODULE not in args:
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
    pid_file = Path(state_dir) / PID_NAME
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        pid_file.unlink(missing_ok=True)
        return False
    running = _state_dir_of(pid) == Path(state_dir).resolve() and _alive(pid)
    if running:
        _kill_group(pid, timeout)
    pid_file.unlink(missing_ok=True)
    return running


class NexusDoubleProcess:
    """One double process: REST on host:rest_port, connectors on each docker repo's port."""

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
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

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
        return self._process is not None and self._process.poll() is None

    def _write_password_file(self) -> None:
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.admin_password + "\n")
        os.chmod(self.password_file, 0o600)  # O_CREAT's mode does not apply to an old file

    def _address_in_use(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((self.host, self.rest_port)) == 0

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Spawn the double in its own session; return once /v1/status answers 200."""
        if self.is_running():
            raise NexusDoubleError(f"{self!r} is already running")
        if self._address_in_use():
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
        env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self._output = (self.state_dir / OUTPUT_NAME).open("ab")
        self._process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() takes it all
        )
        # The process writes it too, but only after seconds of imports; stop_pidfile from
        # another process must find it from the start.
        self.pid_file.write_text(f"{self._process.pid}\n")
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(trust_env=False, timeout=httpx.Timeout(1.0, connect=0.5)) as client:
            while time.monotonic() < deadline:
                code = self._process.poll()
                if code is not None:
                    raise NexusDoubleError(
                        f"the Nexus double exited with {code} while starting:\n{self._tail()}"
                    )
                try:
                    response = client.get(f"{self.url}/service/rest/v1/status")
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                else:
                    if response.status_code == 200:
                        return
                    last = f"status {response.status_code}"
                time.sleep(0.05)
        raise NexusDoubleError(f"the Nexus double at {self.url} not ready ({last}):\n{self._tail()}")

    def _tail(self, lines: int = 30) -> str:
        texts = []
        for path in (self.state_dir / OUTPUT_NAME, self.log_path):
            with contextlib.suppress(FileNotFoundError):
                texts.append("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(texts) or "(no output)"

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the process group; safe to call any number of times."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                _kill_group(process.pid, timeout)
            process.wait(timeout)
            self.pid_file.unlink(missing_ok=True)
        if self._output is not None:
            self._output.close()
            self._output = None

    stop_pidfile = staticmethod(stop_pidfile)

    def __enter__(self) -> Self:
        return self if self.is_running() else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

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
