"""Homelab daemons: each runs in its own session (so its pid is its process group id) with
a pid file and a log, is ready when a probe says so (a TCP port that accepts, an HTTP
answer), and is stopped with SIGTERM to its group, then SIGKILL after a timeout -- by the
process that started it (`Daemon.stop`), or by any other through the pid file
(`stop_pid_file`), but only while the pid is surely still ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 30

# Proxy variables must never route loopback traffic (or anything else) elsewhere.
_PROXY_VARS = frozenset(
    {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY"}
)

Probe = Callable[[], str | None]
"""Asked until a daemon is ready: None when it is, else why not yet."""


class ProcessError(RuntimeError):
    """A homelab daemon did not start."""


def child_env() -> dict[str, str]:
    """This process's environment without proxy variables: everything here is loopback."""
    return {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


# ---------------------------------------------------------------------------------------
# Looking at processes and ports
# ---------------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
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
    # Field 3, after the parenthesised command name (which may itself contain spaces).
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def command_line(pid: int) -> list[str]:
    """The arguments `pid` runs with, as /proc shows them; [] once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    args = [os.fsdecode(arg) for arg in raw.split(b"\0")]
    return args[:-1] if args and not args[-1] else args


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def port_probe(host: str, port: int) -> Probe:
    """Ready once host:port accepts connections."""
    return lambda: None if port_open(host, port) else f"{host}:{port} refuses connections"


def _answered_200(response: httpx.Response) -> bool:
    return response.status_code == 200


def http_probe(
    client: httpx.Client, url: str, ready: Callable[[httpx.Response], bool] = _answered_200
) -> Probe:
    """Ready once GET `url` gives an answer `ready` accepts (by default: 200)."""

    def probe() -> str | None:
        try:
            response = client.get(url)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if ready(response):
            return None
        return f"GET {url} answered {response.status_code} {response.text[:2000]}".rstrip()

    return probe


# ---------------------------------------------------------------------------------------
# Stopping
# ---------------------------------------------------------------------------------------


def signal_group(pid: int, sig: signal.Signals) -> None:
    # A daemon leads its own session, so its process group id is its pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _wait_exited_unreaped(pid: int, timeout: float) -> bool | None:
    """Wait up to `timeout` for our child `pid` to exit, leaving it unreaped (a zombie).

    True: it is a zombie now, so its pid (and process group id) cannot be reused yet.
    False: still running. None: already reaped elsewhere, so the pid is no longer ours.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return None
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def stop_pid_file(pid_file: Path, ours: Callable[[int], bool], timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the daemon recorded in `pid_file` (from any process); True if one was running.

    The pid is only signalled while `ours(pid)` says it is still that daemon (by its
    command line), so a recycled pid is never hit. The pid file is removed either way.
    """
    pid = read_pid(pid_file)
    running = pid is not None and ours(pid) and pid_alive(pid)
    if running:
        assert pid is not None
        for sig in (signal.SIGTERM, signal.SIGKILL):
            signal_group(pid, sig)
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not pid_alive(pid):
                break
    pid_file.unlink(missing_ok=True)
    return running


# ---------------------------------------------------------------------------------------
# A daemon
# ---------------------------------------------------------------------------------------


class StartStop:
    """`with part:` starts a homelab part and stops it when the block ends, errors included.

    With `reuse_running`, a part that already runs is taken as it is (and still stopped).
    """

    reuse_running = False

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def is_running(self) -> bool:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self if self.reuse_running and self.is_running() else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class Daemon:
    """One child process in its own session, its output in `log_path`, its pid in `pid_file`.

    `logs` are the files whose tails a start failure shows (default: `log_path`); failures
    are raised as `error`.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        pid_file: Path,
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        error: type[Exception] = ProcessError,
        logs: Sequence[Path] = (),
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.pid_file = pid_file
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.error = error
        self.logs = tuple(logs) or (log_path,)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def spawn(self) -> None:
        """Start the process (environment: `env`, else ours without proxy variables)."""
        with self.log_path.open("ab") as log:  # the child writes to its own copy
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env if self.env is not None else child_env(),
                start_new_session=True,  # own process group: stop() takes everything with it
            )
        self.pid_file.write_text(f"{self._process.pid}\n")

    def failure(self, what: str) -> Exception:
        tails = "".join(f"\nlog tail ({path}):\n{log_tail(path)}" for path in self.logs)
        return self.error(f"{self.name} {what};{tails}")

    def wait_ready(self, probe: Probe, timeout: float, interval: float = 0.05) -> None:
        """Ask `probe` until it says ready; `error` if the process exits or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if (code := self.exit_code()) is not None:
                raise self.failure(f"exited with code {code} while starting")
            if (why := probe()) is None:
                return
            last = why
            time.sleep(interval)
        raise self.failure(f"not ready after {timeout:.0f}s ({last})")

    def start(self, probe: Probe, timeout: float = START_TIMEOUT, interval: float = 0.05) -> None:
        """spawn() and wait_ready(); a daemon that does not get ready is stopped again."""
        self.spawn()
        try:
            self.wait_ready(probe, timeout, interval)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the process group, SIGKILL it after `timeout`; safe to call repeatedly."""
        process, self._process = self._process, None
        if process is not None:
            # Only while the leader is alive or an unreaped zombie does its pid surely
            # still name our group: wait without reaping, sweep the group, then reap.
            state = _wait_exited_unreaped(process.pid, 0) if process.returncode is None else None
            if state is False:
                signal_group(process.pid, signal.SIGTERM)
                state = _wait_exited_unreaped(process.pid, timeout)
                if state is False:
                    signal_group(process.pid, signal.SIGKILL)
                    state = _wait_exited_unreaped(process.pid, timeout)
            if state:
                signal_group(process.pid, signal.SIGKILL)  # stragglers; none expected
            process.wait(timeout)
            self.pid_file.unlink(missing_ok=True)


class ManagedProcess:
    """A daemon that is ready when its TCP port `ready` accepts; stop() works from any process."""

    def __init__(self, name: str, state_dir: Path, argv: Sequence[str], ready: tuple[str, int]) -> None:
        self.name = name
        self.state_dir = state_dir
        self.ready = ready
        self.daemon = Daemon(name, argv, state_dir / f"{name}.pid", state_dir / f"{name}.log")

    def start(self, timeout: float = START_TIMEOUT) -> ManagedProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if port_open(*self.ready):
            raise ProcessError(f"{self.name}: {self.ready[0]}:{self.ready[1]} is already taken")
        self.daemon.start(port_probe(*self.ready), timeout)
        return self

    def _ours(self, pid: int) -> bool:
        # The interpreter may differ between processes; "-m <module>" does not.
        return " ".join(self.daemon.argv[1:3]) in " ".join(command_line(pid))

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self.daemon.stop(timeout)
        stop_pid_file(self.daemon.pid_file, self._ours, timeout)  # started by another process
