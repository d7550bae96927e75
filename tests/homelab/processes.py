"""A homelab background process: started in its own session with a pid file and a log,
ready when its port accepts, stopped (also from another process) through the pid file."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


class ProcessError(RuntimeError):
    pass


class ManagedProcess:
    def __init__(self, name: str, state_dir: Path, argv: Sequence[str], ready: tuple[str, int]) -> None:
        self.name = name
        self.state_dir = state_dir
        self.argv = list(argv)
        self.ready = ready
        self.pid_file = state_dir / f"{name}.pid"
        self.log_path = state_dir / f"{name}.log"

    def _accepts(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(self.ready, timeout=0.5):
            return True
        return False

    def start(self, timeout: float = START_TIMEOUT) -> ManagedProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._accepts():
            raise ProcessError(f"{self.name}: {self.ready[0]}:{self.ready[1]} is already taken")
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ProcessError(f"{self.name} did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the process named in the pid file, if it is still ours."""
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmdline = ""
        if " ".join(self.argv[1:3]) in cmdline:  # never signal a recycled pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                    break
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
