"""Node-side accounting for `make bench`: what each homelab node did during a change, read
from the node's own logs, and who connected to which node address.

The stand-ins log with timestamps (wall clock, milliseconds):
- var/log/k3s.log: "Starting k3s ..." then "... is up and running" (or a fatal line) per k3s
  start. The stand-in sleeps START_SECONDS (the modelled k3s start-up) *before* the
  "Starting" line, so a restart's node time is the span between the two lines plus that.
- var/log/containerd-pulls.log: one JSON line per pull, stamped at its end, with the pull's
  own duration ("seconds", measured inside the crictl stand-in); on the real-containerd
  node, containerd's own log: from its "PullImage" line to the one that ends the pull.
sshd writes its VERBOSE log without timestamps, so `SshdTail` follows every node's sshd.log
as it grows and stamps each line on arrival (10 ms polling): that gives each SSH connection
and each remote command's span as the node saw it.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.homelab.node_tools import real_containerd
from tests.homelab.node_tools.common import K3S_LOG, Node
from tests.homelab.node_tools.unit import START_SECONDS

SSHD_LOG = "var/log/sshd.log"
POLL = 0.01
_CONNECTION = re.compile(r"^Connection from \S+ port (\d+) on ")
_SESSION = re.compile(r"^Starting session: (command|subsystem '\w+') for \S+ from \S+ port (\d+) id (\d+)")
_CLOSE = re.compile(r"^Close session: user \S+ from \S+ port (\d+) id (\d+)")
_K3S = re.compile(r'^time="([^"]+)" level=(\w+) msg="(.*)"$')


def parse_stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class SshdTail:
    """Follows the sshd logs of the given nodes (name -> node root) in a thread."""

    roots: dict[str, Path]
    lines: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._offsets = {name: self._size(name) for name in self.roots}
        self._partial = dict.fromkeys(self.roots, "")
        self.lines = {name: [] for name in self.roots}
        self._thread = threading.Thread(target=self._run, name="sshd-tail", daemon=True)

    def _size(self, name: str) -> int:
        try:
            return (self.roots[name] / SSHD_LOG).stat().st_size
        except FileNotFoundError:
            return 0

    def _poll(self) -> None:
        now = time.time()
        for name, root in self.roots.items():
            try:
                with (root / SSHD_LOG).open("rb") as handle:
                    handle.seek(self._offsets[name])
                    data = handle.read()
            except FileNotFoundError:
                continue
            if not data:
                continue
            self._offsets[name] += len(data)
            text = self._partial[name] + data.decode(errors="replace")
            *complete, self._partial[name] = text.split("\n")
            self.lines[name].extend((now, line) for line in complete)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll()
            time.sleep(POLL)

    def __enter__(self) -> SshdTail:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._poll()

    def window(self, name: str, start: float, end: float) -> list[tuple[float, str]]:
        return [(t, line) for t, line in self.lines[name] if start <= t <= end]


@dataclass
class SshActivity:
    connections: int = 0
    commands: int = 0
    command_seconds: float = 0.0
    first_connect: float | None = None


def ssh_activity(lines: list[tuple[float, str]]) -> SshActivity:
    """Connections and remote commands (not the SFTP subsystem) with their spans."""
    activity = SshActivity()
    open_commands: dict[tuple[str, str], float] = {}
    for stamp, line in lines:
        if _CONNECTION.match(line):
            activity.connections += 1
            activity.first_connect = activity.first_connect or stamp
        elif match := _SESSION.match(line):
            kind, port, channel = match.groups()
            if kind == "command":
                activity.commands += 1
                open_commands[(port, channel)] = stamp
        elif (match := _CLOSE.match(line)) and (started := open_commands.pop(match.groups(), None)):
            activity.command_seconds += stamp - started
    return activity


@dataclass
class NodeWork:
    """What the node itself spent in k3s restarts and image pulls within a time window."""

    restarts: int = 0
    restart_seconds: float = 0.0
    pulls: int = 0
    pull_seconds: float = 0.0
    failed_pulls: list[float] = field(default_factory=list)  # end stamps of failed pulls
    k3s_up: list[float] = field(default_factory=list)  # stamps of "up and running"

    @property
    def seconds(self) -> float:
        return self.restart_seconds + self.pull_seconds


def k3s_lines(root: Path) -> list[tuple[float, str, str]]:
    try:
        text = (root / K3S_LOG).read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        if match := _K3S.match(line):
            out.append((parse_stamp(match.group(1)), match.group(2), match.group(3)))
    return out


def pull_records(root: Path) -> list[dict[str, Any]]:
    """The node's pulls that ended, each with its end stamp ("end") and duration ("seconds")."""
    records = [r for r in real_containerd.pull_log(Node(root)) if "time" in r]  # ended pulls
    for record in records:
        record["end"] = parse_stamp(record["time"])
    return records


def node_work(root: Path, start: float, end: float) -> NodeWork:
    """Restarts and pulls that started after `start` and ended before `end`."""
    work = NodeWork()
    starting: float | None = None
    for stamp, level, message in k3s_lines(root):
        if message.startswith("Starting k3s"):
            starting = stamp
        elif starting is not None and (message.endswith("is up and running") or level == "fatal"):
            if start <= starting - START_SECONDS and stamp <= end:
                work.restarts += 1
                work.restart_seconds += stamp - starting + START_SECONDS
                if level != "fatal":
                    work.k3s_up.append(stamp)
            starting = None
    for record in pull_records(root):
        if start <= record["end"] - record["seconds"] and record["end"] <= end:
            work.pulls += 1
            work.pull_seconds += record["seconds"]
            if not record["ok"]:
                work.failed_pulls.append(record["end"])
    return work


def connections_seen(roots: dict[str, Path]) -> dict[str, int]:
    """ "Connection from" lines so far in each node's sshd log."""
    counts = {}
    for name, root in roots.items():
        try:
            text = (root / SSHD_LOG).read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        counts[name] = sum(1 for line in text.splitlines() if _CONNECTION.match(line))
    return counts


class PortWatch:
    """Listens on host:port for addresses where nothing runs (the simulated nodes of the
    scale previews) and counts every connection attempt that reaches them."""

    def __init__(self, hosts: list[str], port: int) -> None:
        self.accepted: dict[str, int] = {}
        self.unbound: list[str] = []
        self._selector = selectors.DefaultSelector()
        self._sockets: list[socket.socket] = []
        for host in hosts:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                self.unbound.append(host)
                continue
            sock.listen(16)
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ, host)
            self._sockets.append(sock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="port-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                with contextlib.suppress(OSError):
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    conn.close()
                    self.accepted[key.data] = self.accepted.get(key.data, 0) + 1

    def __enter__(self) -> PortWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self._sockets:
            self._selector.unregister(sock)
            sock.close()
        self._selector.close()

    @property
    def total(self) -> int:
        return sum(self.accepted.values())
