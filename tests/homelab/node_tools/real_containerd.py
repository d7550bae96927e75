"""The real containerd of a node that runs one (node.json "containerd": "real").

k3s's agent runs containerd as its child, with the config.toml it has just rendered, and
kills it when k3s stops: each k3s start therefore starts a containerd that reads
config.toml (credentials) anew. This module does the same with Debian's containerd and the
arguments k3s gives it; the node's `crictl` is then the real crictl (cri-tools) pointed at
k3s's socket by k3s's crictl.yaml.

containerd gets a mount namespace of its own in which the node root is at the real paths
(as in the node's sshd), and the node's hosts file at /etc/hosts: the default endpoints of
the mirrored registries (registry-1.docker.io, ghcr.io) name the addresses of the lab's
stand-ins for them, so containerd's fallback never leaves the machine. It reaches them
over HTTPS on :443: where the lab runs a TLS front there (registries.default_endpoints_tls)
containerd trusts its CA, and the fallback is served as on a real node; where it runs none,
the fallback fails at once (connection refused).

Logs go to var/log/containerd.log at debug level: `pull_records` reads, per PullImage,
which host containerd resolved the image on, from containerd's own lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.homelab.node_tools.common import (
    CONTAINERD_ETC,
    CONTAINERD_ROOT,
    K3S_RUN,
    PULL_LOG,
    RANCHER_LIB,
    SOCKET,
    SOCKET_ABSOLUTE,
    STATE_DIR,
    Node,
    socket_dir,
)
from tests.homelab.node_tools.k3sconfig import default_host

CONTAINERD = "/usr/bin/containerd"
PID_FILE = f"{STATE_DIR}/containerd.pid"
LOG = "var/log/containerd.log"
HOSTS_FILE = "etc/homelab/hosts"
DEFAULT_ENDPOINTS_PKI = "pki/default-endpoints"  # under the lab root: registries.default_endpoint_fronts
CRICTL_CONFIG = "var/lib/rancher/k3s/agent/etc/crictl.yaml"  # where k3s writes it
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

# k3s's arguments for its containerd (pkg/agent/containerd: -c, -a, --state, --root).
ARGS = (
    f"-c /{CONTAINERD_ETC}/config.toml -a {SOCKET_ABSOLUTE} --state /{K3S_RUN}/containerd "
    f"--root /{CONTAINERD_ROOT} --log-level debug"
)


def crictl_yaml() -> str:
    """k3s's crictl.yaml: the endpoints of its containerd."""
    return f"runtime-endpoint: unix://{SOCKET_ABSOLUTE}\nimage-endpoint: unix://{SOCKET_ABSOLUTE}\n"


def hosts_file(upstreams: dict[str, str]) -> str:
    """/etc/hosts as containerd sees it: each mirrored registry's default endpoint is the
    address of the lab's stand-in for that registry."""
    lines = ["127.0.0.1\tlocalhost"]
    for registry, url in sorted(upstreams.items()):
        lines.append(f"{urlsplit(url).hostname}\t{default_host(registry)}")
    return "\n".join(lines) + "\n"


def _environment(node: Node) -> dict[str, str]:
    """containerd's environment; it trusts the lab CA of the default endpoints' fronts."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    ca = Path(node.info.lab_root, DEFAULT_ENDPOINTS_PKI, "ca.crt")
    if ca.is_file():
        env["SSL_CERT_FILE"] = str(ca)
    return env


def _pid(node: Node) -> int | None:
    try:
        pid = int(node.path(PID_FILE).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if CONTAINERD.encode() in command or b"unshare" in command else None


def _accepts(node: Node) -> bool:
    with socket_dir(node) as name, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(name)
        except OSError:
            return False
    return True


def start(node: Node) -> str | None:
    """Start containerd as k3s does; None once its socket answers, else why it did not."""
    stop(node)
    node.path(HOSTS_FILE).write_text(hosts_file(node.info.upstreams))
    node.path(CRICTL_CONFIG).write_text(crictl_yaml())
    node.path(SOCKET).parent.mkdir(parents=True, exist_ok=True)
    root = node.root
    script = " && ".join(
        [
            *(f"mount --bind {shlex.quote(str(root / rel))} /{rel}" for rel in (RANCHER_LIB, K3S_RUN)),
            f"mount --bind {shlex.quote(str(node.path(HOSTS_FILE)))} /etc/hosts",
            f"exec {CONTAINERD} {ARGS}",
        ]
    )
    with node.path(LOG).open("ab") as log:
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the SSH session that restarted k3s
            env=_environment(node),
        )
    node.path(PID_FILE).write_text(f"{process.pid}\n")
    if node.info.cgroup:  # the node's processes share a cgroup: its nftables switches apply
        with contextlib.suppress(OSError):
            Path(node.info.cgroup, "cgroup.procs").write_text(str(process.pid))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"containerd exited with status {process.returncode}: see /{LOG}"
        if _accepts(node):
            return None
        time.sleep(0.05)
    stop(node)
    return f"containerd did not answer on {SOCKET_ABSOLUTE} within {START_TIMEOUT:.0f}s"


def stop(node: Node) -> None:
    """Stop the node's containerd (SIGTERM, then SIGKILL), as k3s's exit takes it along."""
    pid = _pid(node)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _running(pid):
            time.sleep(0.02)
    node.path(PID_FILE).unlink(missing_ok=True)
    node.path(SOCKET).unlink(missing_ok=True)


def _running(pid: int) -> bool:
    """True while `pid` runs; reaps it when it is our own child (boot starts it from here)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- what containerd's debug log says about each pull -----------------------------------

_LINE = re.compile(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S+)')


def _fields(line: str) -> dict[str, str]:
    return {key: value[1:-1].replace('\\"', '"') if value.startswith('"') else value
            for key, value in _LINE.findall(line)}  # fmt: skip


def pull_records(log_text: str, upstreams: dict[str, str]) -> list[dict[str, Any]]:
    """One record per CRI PullImage: image, ok, the host containerd resolved it on
    (`served_by`), `via` ("mirror" or "default-endpoint"), the hosts that failed first, and
    when it ended (`time`) and how long it took (`seconds`), from containerd's own stamps."""
    defaults = {default_host(registry) for registry in upstreams}
    records: list[dict[str, Any]] = []
    started = 0.0
    for line in log_text.splitlines():
        fields = _fields(line)
        message = fields.get("msg", "")
        pull_line = message.startswith("PullImage ")
        if pull_line and "returns" not in message and "failed" not in message:
            started = _stamp(fields)
            image = message.split('"')[1]
            records.append({"image": image, "ok": False, "served_by": None, "via": None, "failed_hosts": []})
        elif not records:
            continue
        elif message == "resolved":
            host = fields.get("host", "")
            via = "default-endpoint" if host in defaults else "mirror"
            records[-1].update(served_by=host, digest=fields.get("desc.digest"), via=via)
        elif message == "trying next host" and fields.get("host"):
            records[-1]["failed_hosts"].append(fields["host"])
        elif pull_line:  # its end: "... returns image reference ..." or "... failed"
            records[-1].update(
                ok="returns image reference" in message,
                time=fields.get("time"),
                seconds=round(_stamp(fields) - started, 3),
            )
            if not records[-1]["ok"]:
                records[-1]["error"] = fields.get("error", "")
    return records


def pull_log(node: Node) -> list[dict[str, Any]]:
    """The node's pull records, whichever containerd pulled: the stand-in logs them itself
    (PULL_LOG, JSON lines); the real one's are read from its debug log."""
    if node.info.containerd == "real":
        try:
            return pull_records(node.path(LOG).read_text(), node.info.upstreams)
        except FileNotFoundError:
            return []
    try:
        lines = node.path(PULL_LOG).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def _stamp(fields: dict[str, str]) -> float:
    return datetime.fromisoformat(fields["time"].replace("Z", "+00:00")).timestamp()
