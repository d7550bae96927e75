"""What every node tool shares: where the node's files are, its identity, its fault switches, its logs.

A node root mirrors the real paths of a k3s node (etc/rancher/k3s, var/lib/rancher/k3s,
run/k3s, var/log) plus the homelab's own parts (etc/homelab: identity and fault switches;
var/lib/homelab: the state that systemd and containerd would keep in memory).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT_ENV = "HOMELAB_NODE_ROOT"

# What the stand-ins claim to be (k3s v1.30 ships containerd 1.7, config template v2).
K3S_VERSION = "v1.30.6+k3s1"
K3S_COMMIT = "1829eaae"
GO_VERSION = "go1.22.8"
KUBERNETES_VERSION = "v1.30.6+k3s1"

# Real k3s paths, relative to the node root (the sshd's mount namespace shows them at /).
RANCHER_ETC = "etc/rancher"
RANCHER_LIB = "var/lib/rancher"
K3S_RUN = "run/k3s"
LOCAL_BIN = "usr/local/bin"
REGISTRIES_YAML = "etc/rancher/k3s/registries.yaml"
KUBECONFIG = "etc/rancher/k3s/k3s.yaml"
CONTAINERD_ETC = "var/lib/rancher/k3s/agent/etc/containerd"
CERTS_D = f"{CONTAINERD_ETC}/certs.d"
CONTAINERD_CONFIG = f"{CONTAINERD_ETC}/config.toml"
CONTAINERD_ROOT = "var/lib/rancher/k3s/agent/containerd"
CONTENT_BLOBS = f"{CONTAINERD_ROOT}/io.containerd.content.v1.content/blobs/sha256"
IMAGE_INDEX = f"{CONTAINERD_ROOT}/homelab-images.json"
SOCKET = "run/k3s/containerd/containerd.sock"
SOCKET_ABSOLUTE = "/run/k3s/containerd/containerd.sock"
K3S_LOG = "var/log/k3s.log"
PULL_LOG = "var/log/containerd-pulls.log"

# The homelab's own parts.
NODE_JSON = "etc/homelab/node.json"
FAULTS_DIR = "etc/homelab/faults"
STATE_DIR = "var/lib/homelab"
UNIT_STATE = f"{STATE_DIR}/unit.json"
UNIT_LOCK = f"{STATE_DIR}/unit.lock"
RUNTIME_CONFIG = f"{STATE_DIR}/containerd-runtime.json"
SSHD_PID = "run/sshd.pid"

FAULT_NAMES = ("restart-fails", "restart-hangs", "pull-fails", "ssh-drop", "mirror-unreachable")


class ToolError(Exception):
    """A tool cannot run at all (no node root): a homelab wiring problem, not node behaviour."""


def run_tool(main: Callable[[list[str]], int]) -> None:
    """A tool's `__main__`: exit with what `main(argv)` returns; a ToolError or a closed
    pipe (`| head`) ends it with 1."""
    try:
        sys.exit(main(sys.argv[1:]))
    except ToolError as exc:
        print(f"homelab stand-in: {exc}", file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(1)


@dataclass(frozen=True)
class NodeInfo:
    name: str
    vmid: int
    role: str  # "server" | "agent"
    address: str
    lab_root: str
    upstreams: dict[str, str]  # registry host -> URL of its default-endpoint stand-in
    restart_sec: float  # systemd RestartSec of the k3s unit (Restart=always)
    crash_loop: bool  # Restart=always (k3s's unit) rather than Restart=no
    disable_default_endpoint: bool  # k3s --disable-default-registry-endpoint
    containerd: str  # "stand-in" (node_tools/containerd.py) or "real" (node_tools/real_containerd.py)
    cgroup: str  # the cgroup v2 folder every process of the node joins ("" without one)

    @property
    def unit(self) -> str:
        return "k3s" if self.role == "server" else "k3s-agent"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeInfo:
        return cls(
            name=str(data["name"]),
            vmid=int(data["vmid"]),
            role=str(data["role"]),
            address=str(data["address"]),
            lab_root=str(data["lab_root"]),
            upstreams={str(k): str(v) for k, v in dict(data.get("upstreams") or {}).items()},
            restart_sec=float(data.get("restart_sec", 5.0)),
            crash_loop=bool(data.get("crash_loop", True)),
            disable_default_endpoint=bool(data.get("disable_default_endpoint", False)),
            containerd=str(data.get("containerd", "stand-in")),
            cgroup=str(data.get("cgroup") or ""),
        )


@contextlib.contextmanager
def socket_dir(node: Node) -> Iterator[str]:
    """In the containerd socket's folder, the socket's short name: a node root under pytest's
    tmp path can exceed the 108 bytes of a unix socket path."""
    path = node.path(SOCKET)
    path.parent.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        yield path.name
    finally:
        os.chdir(cwd)


def now_iso(at: float | None = None) -> str:
    stamp = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `path` atomically with `mode` from creation (credentials never sit world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class Node:
    """One node root, seen from a tool (or from the homelab driving it)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._info: NodeInfo | None = None

    @classmethod
    def from_env(cls) -> Node:
        root = os.environ.get(ROOT_ENV)
        if not root or not Path(root, NODE_JSON).is_file():
            raise ToolError(f"{ROOT_ENV} does not name a homelab node root (got {root!r})")
        return cls(root)

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    @property
    def info(self) -> NodeInfo:
        if self._info is None:
            self._info = NodeInfo.from_json(json.loads(self.path(NODE_JSON).read_text()))
        return self._info

    # -- fault switches ---------------------------------------------------------------------

    def fault(self, name: str) -> Any:
        """The switch's value (JSON in its file), or None while it is off."""
        try:
            text = self.path(f"{FAULTS_DIR}/{name}").read_text()
        except FileNotFoundError:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return True  # a hand-made switch file: on
        # {"once": VALUE} fires once: a fault the new config causes, gone with the old one.
        if isinstance(value, dict) and "once" in value:
            return value["once"] if self.consume_fault(name) else None
        return value

    def consume_fault(self, name: str) -> bool:
        """Turn a one-shot switch off; True if this caller was the one that got it."""
        try:
            self.path(f"{FAULTS_DIR}/{name}").unlink()
        except FileNotFoundError:
            return False
        return True

    # -- logs -------------------------------------------------------------------------------

    def k3s_log(self, level: str, message: str, at: float | None = None) -> None:
        """One logrus line, as k3s writes to its journal."""
        line = f"time={json.dumps(now_iso(at))} level={level} msg={json.dumps(message)}\n"
        log = self.path(K3S_LOG)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as handle:
            handle.write(line)

    def append_json_line(self, rel: str, record: dict[str, Any]) -> None:
        log = self.path(rel)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    # -- the unit lock: systemd serialises jobs, we serialise state changes ----------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        lock = self.path(UNIT_LOCK)
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def lab_nodes(lab_root: Path | str) -> list[Node]:
    """Every node root of a lab (the cluster's members), sorted by name."""
    nodes_dir = Path(lab_root) / "nodes"
    if not nodes_dir.is_dir():
        return []
    return [Node(p) for p in sorted(nodes_dir.iterdir()) if (p / NODE_JSON).is_file()]
