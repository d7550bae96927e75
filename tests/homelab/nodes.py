"""Homelab k3s nodes: real OpenSSH servers whose commands see the node's own k3s files.

k3s cannot run here, so each node is a Debian `sshd` (its own ed25519 host key, on its own
loopback address, port 22) started in a private mount namespace. Inside it the node root
is bind-mounted at the real paths -- /etc/rancher, /var/lib/rancher, /run/k3s,
/usr/local/bin (and the systemctl/journalctl stand-ins over /usr/bin's) -- so whatever the
product runs over SSH (cat, cp, mv, sftp, systemctl, crictl, k3s ...) works on that node's
files. The stand-ins live in tests/homelab/node_tools/ and run through small wrapper
scripts in the node root. A node made with containerd="real" runs Debian's containerd
instead of the containerd stand-in, started and stopped with its k3s unit as k3s does it,
and the real crictl and ctr on its socket (node_tools/real_containerd.py).

Node root (lab_root/nodes/<name>/):
    etc/rancher/k3s/            registries.yaml (the caller writes the starting one); k3s.yaml on servers
    var/lib/rancher/k3s/agent/etc/containerd/   config.toml (0600) and certs.d/<registry>/hosts.toml
    var/lib/rancher/k3s/agent/containerd/       content store (io.containerd.content.v1.content) + homelab-images.json
    run/k3s/containerd/containerd.sock          exists exactly while the k3s unit is active
    var/log/                    k3s.log (the unit's journal), containerd-pulls.log (JSON lines; the
                                real containerd: containerd.log at debug level), sshd.log
    etc/ssh/                    ssh_host_ed25519_key(.pub), sshd_config
    etc/homelab/                node.json (identity, role, upstreams, containerd kind), faults/<switch>,
                                hosts (the real containerd's /etc/hosts)
    var/lib/homelab/            what systemd and containerd keep in memory: unit.json, the config
                                containerd read at start (0600)
    usr/local/bin/              k3s, crictl, kubectl, ctr wrappers; usr/bin/: systemctl, journalctl
    run/                        sshd.pid (sshd's), homelab-sshd.pid (ours)

What the stand-ins model (k3s v1.30 / containerd 1.7 behaviour, read from their sources):
- the unit: k3s.service on servers, k3s-agent.service on agents (any other: not found,
  exit 5); `systemctl restart` re-reads registries.yaml, returns when k3s is ready (~0.2 s);
  invalid YAML, duplicate keys or wrong value types are fatal: exit 1 with systemd's "Job
  for ... failed" message, a fatal line in var/log/k3s.log, and -- Restart=always,
  RestartSec=5s -- the unit then crash-loops: `is-active` prints "activating" (exit 3),
  `status` shows "activating (auto-restart) (Result: exit-code)", and each retry reads the
  file again, so a fixed file heals the unit without a restart (HomelabNode(crash_loop=False)
  gives "failed" instead);
- endpoints go through Go's url.Parse: a malformed one is warned about and skipped, k3s
  starts; scheme-less loopback host:port gets http; paths become /v2 or override_path;
- hosts.toml per mirrored registry (mirrors in order, default endpoint as `server`),
  previous k3s-generated ones deleted; credentials only in config.toml (0600); containerd
  uses the credentials it read at its start, hosts.toml as it is at each pull;
- crictl pull: real V2 traffic (HEAD/GET, Accept for OCI + docker types, Bearer/Basic
  401 handling), mirrors in order with ?ns=<registry>, then the registry's default endpoint
  (served by the lab's stand-in) on connection errors, auth failures, 404 and 5xx alike;
  sha256 and size verified; the content store is reused across pulls (a re-pull only
  resolves the tag); one JSON line per pull in var/log/containerd-pulls.log with
  served_by / via / mirror_errors; with k3s down crictl fails like on a dead socket;
- `k3s ctr images pull` ignores registries.yaml (default endpoint only);
- kubectl: only servers have a kubeconfig; a node is Ready while its unit is active.

What they do not model: containers, pods, kube-proxy/NodePorts (nothing answers on a
node's 127.0.0.1:30083 unless the lab puts something there), TLS (an https endpoint fails
to connect), schema-1 manifests, push, `k3s ctr` beyond `images pull`, the 40 s
node-monitor grace period (NotReady shows at once), the restart of the kubelet's node
lease, journald itself (k3s.log is a file; journalctl reads it). systemd's auto-restarts
happen lazily, when a tool next looks at the unit. Only the k3s side of a start is
modelled: no image preloading, no etcd, no agent-to-server join. The node's commands share
the host's network namespace and /root: only the mirror-unreachable switch (nftables
rules on the node's cgroup, which the real containerd joins too) makes a target
unreachable for the node's processes. root's ~/.bashrc is the node's own, empty one (the
host's would put its own PATH entries, such as a Go bin folder, ahead of /usr/local/bin).
The real containerd's fallback reaches the default endpoints over HTTPS on :443 of the
lab's upstream addresses; its pull records (pull_log) are read from containerd's log.

Fault switches (etc/homelab/faults/<name>, JSON value):
    restart-fails       every k3s start fails (restart exits 1, the unit crash-loops)
    restart-hangs       N: each `systemctl restart` takes N more seconds (TimeoutStartSec=0)
    pull-fails          every registry request of a pull answers 500
    ssh-drop            one-shot: the next `systemctl restart` takes effect, then the SSH
                        connection that ran it is killed
    mirror-unreachable  ["host:port", ...]: every process of the node (crictl, sshd's TCP
                        forwarding, curl) gets "connection refused" for those targets
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import paramiko

from tests.homelab.node_tools import real_containerd, unit
from tests.homelab.node_tools.common import (
    FAULT_NAMES,
    FAULTS_DIR,
    K3S_LOG,
    K3S_RUN,
    LOCAL_BIN,
    NODE_JSON,
    RANCHER_ETC,
    RANCHER_LIB,
    REGISTRIES_YAML,
    ROOT_ENV,
    SOCKET_ABSOLUTE,
    SSHD_PID,
    STATE_DIR,
    Node,
)
from tests.homelab.processes import Daemon, StartStop, command_line, pid_alive, port_open, read_pid

REPO_ROOT = Path(__file__).resolve().parents[2]
SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it (systemd would create it)
SSH_PORT = 22
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

HOST_KEY = "etc/ssh/ssh_host_ed25519_key"
SSHD_CONFIG = "etc/ssh/sshd_config"
SSHD_LOG = "var/log/sshd.log"
LAUNCH_LOG = "var/log/sshd-launch.log"
OUR_PID = "run/homelab-sshd.pid"
ROLES = ("server", "agent")
CONTAINERDS = ("stand-in", "real")
CRICTL = REPO_ROOT / ".tools" / "bin" / "crictl"  # built by tools/setup-kube.sh
CTR = "/usr/bin/ctr"  # Debian's containerd package
BASHRC = "root/.bashrc"  # the node's own: a session's PATH is a node's, not the host's
CLIENT_TOOLS = ("k3s", "crictl", "kubectl", "ctr")  # k3s's multi-call links in /usr/local/bin
SYSTEM_TOOLS = {"systemctl": "/usr/bin/systemctl", "journalctl": "/usr/bin/journalctl"}
MOUNTS = (RANCHER_ETC, RANCHER_LIB, K3S_RUN, LOCAL_BIN)  # node-root dirs shown at /<same path>
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


class NodeError(RuntimeError):
    """A homelab node could not be started, stopped or switched."""


# ---------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------


def _keygen(path: Path, comment: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    result = subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise NodeError(f"ssh-keygen failed for {path}: {result.stderr.strip()}")
    os.chmod(path, 0o600)


def ensure_client_key(lab_root: Path) -> Path:
    """The lab operator's ed25519 key (0600), root's only authorized key on every node."""
    key = Path(lab_root) / "ssh" / "id_ed25519"
    if not key.exists():
        _keygen(key, "homelab-operator")
    os.chmod(key, 0o600)
    return key


def load_host_key(line: str) -> tuple[str, paramiko.PKey]:
    """("ssh-ed25519", key) from an "ssh-ed25519 AAAA..." line (what ssh-keyscan prints)."""
    key_type, data = line.split()[:2]
    return key_type, paramiko.PKey.from_type_string(key_type, base64.b64decode(data))


# ---------------------------------------------------------------------------------------
# Processes, cgroup v2, nftables
# ---------------------------------------------------------------------------------------


def _mount_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _pids_in_mount_ns(namespace: str) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _mount_ns(entry.name) == namespace:
            found.add(int(entry.name))
    return found


def cgroup2_mount() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified on hybrid hosts)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split()[4])
    return None


def _nft_binary() -> str | None:
    return shutil.which("nft") or ("/usr/sbin/nft" if os.access("/usr/sbin/nft", os.X_OK) else None)


def _run_nft(script: str) -> None:
    """Apply an nft script; cgroupv2 paths in it are relative to the cgroup v2 mount."""
    nft, cg2 = _nft_binary(), cgroup2_mount()
    if nft is None or cg2 is None:
        raise NodeError("mirror-unreachable needs nftables (apt-get install nftables) and cgroup v2")
    if cg2 == Path("/sys/fs/cgroup"):
        command = [nft, "-f", "-"]
    else:
        # nft resolves cgroupv2 paths under /sys/fs/cgroup: show it the v2 mount there.
        inner = f"mount --bind {shlex.quote(str(cg2))} /sys/fs/cgroup && exec {shlex.quote(nft)} -f -"
        command = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", inner]
    result = subprocess.run(command, input=script, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise NodeError(f"nft failed (exit {result.returncode}): {result.stderr.strip()}\n{script}")


def _resolve(host: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        return sorted({str(info[4][0]) for info in infos})


def _split_target(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise NodeError(f"mirror-unreachable targets are host:port, got {target!r}")
    return host, int(port)


# ---------------------------------------------------------------------------------------
# Running commands over SSH
# ---------------------------------------------------------------------------------------


@dataclass
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


def ssh_run(client: paramiko.SSHClient, command: str, timeout: float = 30.0) -> CommandResult:
    """Run `command` on an open connection; both streams read as they come (no deadlock)."""
    transport = client.get_transport()
    if transport is None:
        raise NodeError("the SSH connection is closed")
    channel = transport.open_session(timeout=timeout)
    channel.settimeout(timeout)
    channel.exec_command(command)
    channel.shutdown_write()
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    while True:
        while channel.recv_ready():
            out += channel.recv(65536)
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
        if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
            break
        if time.monotonic() > deadline:
            channel.close()
            raise TimeoutError(f"{command!r} did not finish within {timeout:.0f}s")
        select.select([channel], [], [], 0.05)
    status = channel.recv_exit_status()
    channel.close()
    if status == -1:  # paramiko's "closed without an exit status": the connection went away
        raise NodeError(f"connection dropped while running {command!r}")
    return CommandResult(status, out.decode(errors="replace"), err.decode(errors="replace"))


# ---------------------------------------------------------------------------------------
# The node
# ---------------------------------------------------------------------------------------


class HomelabNode(StartStop):
    """One k3s node of a lab: an sshd on `address`:22 over the node root lab_root/nodes/<name>."""

    def __init__(
        self,
        name: str,
        vmid: int,
        address: str,
        role: str,
        lab_root: Path,
        upstreams: Mapping[str, str],
        *,
        restart_sec: float = 5.0,
        crash_loop: bool = True,
        disable_default_endpoint: bool = False,
        containerd: str = "stand-in",
    ) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"node name {name!r} must be a DNS label (a-z, 0-9, -)")
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        if containerd not in CONTAINERDS:
            raise ValueError(f"containerd must be one of {CONTAINERDS}, not {containerd!r}")
        ipaddress.ip_address(address)  # an address, not a name: sshd listens on exactly it
        self.name = name
        self.vmid = vmid
        self.address = address
        self.role = role
        self.lab_root = Path(lab_root)
        self.upstreams = dict(upstreams)
        self.restart_sec = restart_sec
        self.crash_loop = crash_loop
        self.disable_default_endpoint = disable_default_endpoint
        self.containerd = containerd
        self._cgroup: Path | None = None  # made at start, where the system has cgroup v2
        self.root = self.lab_root / "nodes" / name
        self.tools = Node(self.root)
        self._daemon: Daemon | None = None

    def __repr__(self) -> str:
        return f"HomelabNode({self.name!r} {self.role} ssh://{self.address}:{SSH_PORT})"

    # -- identity and paths -----------------------------------------------------------------

    @property
    def unit(self) -> str:
        """The systemd unit k3s runs as on this node."""
        return "k3s" if self.role == "server" else "k3s-agent"

    @property
    def port(self) -> int:
        return SSH_PORT

    def path(self, rel: str) -> Path:
        """A file of the node, named by its path on the node ("/etc/rancher/k3s/registries.yaml")."""
        return self.root / rel.lstrip("/")

    def read_text(self, rel: str) -> str:
        return self.path(rel).read_text()

    def write_text(self, rel: str, text: str, mode: int = 0o644) -> Path:
        path = self.path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(path, mode)
        return path

    @property
    def registries_yaml(self) -> Path:
        return self.path(REGISTRIES_YAML)

    @property
    def client_key(self) -> Path:
        return ensure_client_key(self.lab_root)

    @property
    def host_key_line(self) -> str:
        """ "ssh-ed25519 AAAA..." -- what an operator gets from ssh-keyscan."""
        fields = self.path(HOST_KEY + ".pub").read_text().split()
        return f"{fields[0]} {fields[1]}"

    @property
    def known_hosts_line(self) -> str:
        return f"{self.address} {self.host_key_line}"

    @property
    def _cgroup_rel(self) -> str:
        return f"homelab/{self.address}"

    @property
    def _nft_table(self) -> str:
        return "homelab_" + re.sub(r"[^0-9A-Za-z]", "_", self.address)

    # -- preparing the node root ------------------------------------------------------------

    def _node_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "vmid": self.vmid,
            "role": self.role,
            "unit": self.unit,
            "address": self.address,
            "lab_root": str(self.lab_root),
            "upstreams": self.upstreams,
            "restart_sec": self.restart_sec,
            "crash_loop": self.crash_loop,
            "disable_default_endpoint": self.disable_default_endpoint,
            "containerd": self.containerd,
            "cgroup": str(self._cgroup or ""),
        }

    def _wrapper(self, module: str) -> str:
        venv_python = REPO_ROOT / ".venv" / "bin" / "python"
        python = venv_python if venv_python.exists() else Path(sys.executable)
        # -P: never import from the session's working directory.
        return (
            "#!/bin/sh\n"
            f"# homelab stand-in on node {self.name}: tests/homelab/node_tools/{module}.py\n"
            f"{ROOT_ENV}={shlex.quote(str(self.root))}\n"
            f"PYTHONPATH={shlex.quote(str(REPO_ROOT))}\n"
            f"export {ROOT_ENV} PYTHONPATH\n"
            f'exec {shlex.quote(str(python))} -P -m tests.homelab.node_tools.{module} "$@"\n'
        )

    def _system_tool_path(self, tool: str) -> str:
        """Where a system tool's stand-in goes: over /usr/bin's binary, or /usr/local/bin."""
        return f"usr/bin/{tool}" if os.path.exists(SYSTEM_TOOLS[tool]) else f"{LOCAL_BIN}/{tool}"

    def _client_tool(self, tool: str) -> str:
        """/usr/local/bin/<tool>: the stand-in, or on a real-containerd node the real crictl
        and ctr, set up for k3s's containerd the way k3s's own links are."""
        if self.containerd == "stand-in" or tool not in ("crictl", "ctr"):
            return self._wrapper(tool)
        if tool == "crictl":
            env, binary = f"CRI_CONFIG_FILE=/{real_containerd.CRICTL_CONFIG}", CRICTL
        else:
            env, binary = f"CONTAINERD_ADDRESS={SOCKET_ABSOLUTE} CONTAINERD_NAMESPACE=k8s.io", Path(CTR)
        return (
            "#!/bin/sh\n"
            f"# homelab node {self.name}: the real {tool}, on k3s's containerd\n"
            f"export {env}\n"
            f'exec {shlex.quote(str(binary))} "$@"\n'
        )

    def _sshd_config(self) -> str:
        client_pub = ensure_client_key(self.lab_root).with_suffix(".pub")
        return "\n".join(
            [
                f"# homelab node {self.name}: written by tests/homelab/nodes.py",
                f"ListenAddress {self.address}:{SSH_PORT}",
                f"HostKey {self.path(HOST_KEY)}",
                f"PidFile {self.path(SSHD_PID)}",
                f"AuthorizedKeysFile {client_pub}",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "AllowTcpForwarding yes",
                "AllowAgentForwarding no",
                "X11Forwarding no",
                "StrictModes no",
                "LogLevel VERBOSE",
                "PrintMotd no",
                "PrintLastLog no",
                "UseDNS no",
                f"Subsystem sftp {SFTP_SERVER}",
                "",
            ]
        )

    def prepare(self) -> None:
        """Create the node root (idempotent): layout, identity, wrappers, host key, sshd_config."""
        for rel in (
            "etc/rancher/k3s",
            "var/lib/rancher/k3s/agent/etc/containerd",
            "run/k3s",
            "var/log",
            "etc/ssh",
            FAULTS_DIR,
            STATE_DIR,
            LOCAL_BIN,
            "usr/bin",
        ):
            self.path(rel).mkdir(parents=True, exist_ok=True)
        self.write_text(NODE_JSON, json.dumps(self._node_json(), indent=2) + "\n")
        for tool in CLIENT_TOOLS:
            self.write_text(f"{LOCAL_BIN}/{tool}", self._client_tool(tool), mode=0o755)
        self.write_text(BASHRC, f"# {self.name}: root's shell startup, empty as on a fresh node\n")
        for tool in SYSTEM_TOOLS:
            self.write_text(self._system_tool_path(tool), self._wrapper(tool), mode=0o755)
        if not self.path(HOST_KEY).exists():
            _keygen(self.path(HOST_KEY), f"root@{self.name}")
        self.write_text(SSHD_CONFIG, self._sshd_config(), mode=0o600)

    # -- start / stop -----------------------------------------------------------------------

    def is_running(self) -> bool:
        return self._daemon is not None and self._daemon.is_running()

    @property
    def pid(self) -> int | None:
        return self._daemon.pid if self._daemon is not None else None

    def _address_in_use(self) -> bool:
        return port_open(self.address, SSH_PORT)

    def _launch_script(self, cgroup: Path | None) -> str:
        steps = []
        if cgroup is not None:
            # Every process of the node inherits this cgroup: the mirror-unreachable rules match it.
            steps.append(f"echo $$ > {shlex.quote(str(cgroup / 'cgroup.procs'))}")
        for rel in MOUNTS:
            steps.append(f"mount --bind {shlex.quote(str(self.path(rel)))} /{rel}")
        for tool, system_path in SYSTEM_TOOLS.items():
            if os.path.exists(system_path):
                steps.append(f"mount --bind {shlex.quote(str(self.path(f'usr/bin/{tool}')))} {system_path}")
        if os.path.exists(f"/{BASHRC}"):
            steps.append(f"mount --bind {shlex.quote(str(self.path(BASHRC)))} /{BASHRC}")
        config, log = shlex.quote(str(self.path(SSHD_CONFIG))), shlex.quote(str(self.path(SSHD_LOG)))
        steps.append(f"exec {SSHD} -D -f {config} -E {log}")
        return " && ".join(steps)

    def _make_cgroup(self) -> Path | None:
        cg2 = cgroup2_mount()
        if cg2 is None:
            return None
        cgroup = cg2 / self._cgroup_rel
        try:
            cgroup.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        return cgroup

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Boot the node: k3s starts (reading registries.yaml), then sshd answers on :22."""
        if self.is_running():
            raise NodeError(f"{self!r} is already running (pid {self.pid})")
        if not os.access(SSHD, os.X_OK):
            raise NodeError(f"{SSHD} is missing: apt-get install openssh-server")
        if self._address_in_use():
            raise NodeError(f"{self.address}:{SSH_PORT} is already in use; cannot start {self.name}")
        self.stop_from_root(self.root)  # leftovers of an earlier run that was not stopped
        self._cgroup = self._make_cgroup()
        self.prepare()
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        for rel in MOUNTS:
            Path("/", rel).mkdir(parents=True, exist_ok=True)  # empty mount points on the host
        self.tools = Node(self.root)  # node.json was just written
        unit.boot(self.tools)
        launch = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c"]
        self._daemon = Daemon(
            f"sshd of {self.name}",
            [*launch, self._launch_script(self._cgroup)],
            self.path(OUR_PID),
            self.path(LAUNCH_LOG),
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            error=NodeError,
            logs=(self.path(LAUNCH_LOG), self.path(SSHD_LOG)),
        )
        self._daemon.spawn()
        try:
            self._daemon.wait_ready(self._ssh_banner, timeout)
            self._apply_network_faults()
        except BaseException:
            self.stop()
            raise
        return self

    def _ssh_banner(self) -> str | None:
        """Probe: None once sshd greets on :22, else why not yet."""
        try:
            with socket.create_connection((self.address, SSH_PORT), timeout=1.0) as sock:
                sock.settimeout(2.0)
                banner = sock.recv(256)
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if banner.startswith(b"SSH-2.0-") else f"unexpected banner {banner[:40]!r}"

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop sshd and every process of the node (sessions, hanging restarts); idempotent."""
        daemon, self._daemon = self._daemon, None
        self.stop_from_root(self.root, timeout)
        if daemon is not None:
            daemon.stop(timeout)  # reaps sshd

    @classmethod
    def stop_from_root(cls, node_root: Path, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop the node whose root is `node_root` (from any process); True if something ran.

        Everything that runs in the node's mount namespace or cgroup is signalled; a pid is
        only trusted as the node's sshd while its command line names this node's sshd_config.
        """
        root = Path(node_root)
        if (root / NODE_JSON).is_file():
            real_containerd.stop(Node(root))  # in a mount namespace of its own, maybe no cgroup
        pid_file = root / OUR_PID
        config = str(root / SSHD_CONFIG)
        pid = read_pid(pid_file)
        try:
            address = json.loads((root / NODE_JSON).read_text())["address"]
        except (FileNotFoundError, KeyError, json.JSONDecodeError):
            address = None
        cg2 = cgroup2_mount()
        cgroup = cg2 / "homelab" / address if cg2 is not None and address else None

        def sshd_ours(pid: int) -> bool:
            # sshd rewrites its command line into one string: look for the config in it.
            return config in " ".join(command_line(pid)) and pid_alive(pid)

        namespace = None
        if pid is not None and sshd_ours(pid):
            namespace = _mount_ns(pid)
            if namespace == _mount_ns("self"):
                namespace = None  # still in `unshare`: only the pid itself is the node's

        def members() -> set[int]:
            found: set[int] = set()
            if pid is not None and sshd_ours(pid):
                found.add(pid)
            if namespace is not None:
                found |= _pids_in_mount_ns(namespace)
            if cgroup is not None:
                with contextlib.suppress(OSError, ValueError):
                    found |= {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
            found.discard(os.getpid())
            return {p for p in found if pid_alive(p)}

        stopped = False
        deadline = time.monotonic() + timeout
        sig = signal.SIGTERM
        while True:
            pids = members()
            if not pids:
                break
            stopped = True
            for target in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(target, sig)
            time.sleep(0.05)
            if time.monotonic() > deadline - timeout / 2:
                sig = signal.SIGKILL  # half the time is up: no more asking
            if time.monotonic() > deadline:
                raise NodeError(f"could not stop processes {sorted(pids)} of node {root.name}")
        if address is not None:
            table = "homelab_" + re.sub(r"[^0-9A-Za-z]", "_", address)
            if _nft_binary() is not None and cg2 is not None:
                with contextlib.suppress(NodeError, subprocess.TimeoutExpired):
                    _run_nft(f"table inet {table}\ndelete table inet {table}\n")
        if cgroup is not None:
            with contextlib.suppress(OSError):
                cgroup.rmdir()
            with contextlib.suppress(OSError):
                cgroup.parent.rmdir()  # the shared "homelab" parent, once no node uses it
        pid_file.unlink(missing_ok=True)
        return stopped

    # -- fault switches ---------------------------------------------------------------------

    def set_fault(self, name: str, value: Any = True) -> None:
        """Turn a switch on (see the module doc for what each does and the values they take)."""
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
        if name == "pull-fails" and self.containerd == "real":
            raise NodeError(f"{self.name} pulls with the real containerd: it has no pull-fails switch")
        if name == "mirror-unreachable":
            targets = [value] if isinstance(value, str) else list(value)
            for target in targets:
                _split_target(target)
            value = targets
        elif name == "restart-hangs" and isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
        self.path(FAULTS_DIR).mkdir(parents=True, exist_ok=True)
        self.write_text(f"{FAULTS_DIR}/{name}", json.dumps(value))
        # Another HomelabNode object may have started the node: its listener tells.
        if name == "mirror-unreachable" and (self.is_running() or self._address_in_use()):
            self._apply_network_faults()

    def clear_fault(self, name: str) -> None:
        self.path(f"{FAULTS_DIR}/{name}").unlink(missing_ok=True)
        # Another HomelabNode object may have started the node: its listener tells.
        if name == "mirror-unreachable" and (self.is_running() or self._address_in_use()):
            self._apply_network_faults()

    def running_jobs(self) -> list[int]:
        """Pids of this node's `systemctl` still at work. A restart that hangs goes on after
        the SSH session that ran it is gone, as a systemd job does, and ends later."""
        marker = f"{ROOT_ENV}={self.root}".encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                command = (proc / "cmdline").read_bytes()
                if b"node_tools.systemctl" in command and marker in (proc / "environ").read_bytes().split(
                    b"\0"
                ):
                    pids.append(int(proc.name))
        return pids

    def wait_for_jobs(self, timeout: float = 60.0) -> None:
        """Wait until no `systemctl` job of this node runs (a hung restart has ended)."""
        deadline = time.monotonic() + timeout
        while jobs := self.running_jobs():
            if time.monotonic() > deadline:
                raise NodeError(f"{self.name}: systemctl jobs {jobs} still run after {timeout:.0f}s")
            time.sleep(0.1)

    def clear_faults(self) -> None:
        for name in FAULT_NAMES:
            self.clear_fault(name)

    def faults(self) -> dict[str, Any]:
        return {name: value for name in FAULT_NAMES if (value := self.tools.fault(name)) is not None}

    def _apply_network_faults(self) -> None:
        """(Re)write this node's nftables table from the mirror-unreachable switch."""
        table = self._nft_table
        targets = self.tools.fault("mirror-unreachable") or []
        if not targets:
            if _nft_binary() is not None and cgroup2_mount() is not None:
                _run_nft(f"table inet {table}\ndelete table inet {table}\n")
            return
        rules = []
        for target in targets:
            host, port = _split_target(target)
            for ip in _resolve(host):
                family = "ip6" if ":" in ip else "ip"
                rules.append(
                    f'    socket cgroupv2 level 2 "{self._cgroup_rel}" {family} daddr {ip} '
                    f"tcp dport {port} reject with tcp reset"
                )
        script = "\n".join(
            [
                f"table inet {table}",
                f"delete table inet {table}",
                f"table inet {table} {{",
                "  chain output {",
                "    type filter hook output priority 0; policy accept;",
                *rules,
                "  }",
                "}",
                "",
            ]
        )
        _run_nft(script)

    # -- looking at the node ----------------------------------------------------------------

    def unit_state(self) -> str:
        """What `systemctl is-active <unit>` prints now."""
        return str(unit.current(self.tools)["active"])

    def pull_log(self) -> list[dict[str, Any]]:
        """One record per pull: image, ok, via ("mirror" | "default-endpoint"), served_by."""
        return real_containerd.pull_log(self.tools)

    def k3s_log(self) -> str:
        try:
            return self.path(K3S_LOG).read_text()
        except FileNotFoundError:
            return ""

    # -- SSH --------------------------------------------------------------------------------

    def host_keys(self) -> paramiko.HostKeys:
        keys = paramiko.HostKeys()
        key_type, key = load_host_key(self.host_key_line)
        keys.add(self.address, key_type, key)
        return keys

    def ssh_client(self, timeout: float = 10.0) -> paramiko.SSHClient:
        """A connection as root with the lab key; the host key must be this node's."""
        client = paramiko.SSHClient()
        key_type, key = load_host_key(self.host_key_line)
        client.get_host_keys().add(self.address, key_type, key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            self.address,
            SSH_PORT,
            username="root",
            key_filename=str(self.client_key),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
        return client

    def run(self, command: str, timeout: float = 30.0) -> CommandResult:
        """Run one command on the node over a fresh SSH connection."""
        client = self.ssh_client()
        try:
            return ssh_run(client, command, timeout)
        finally:
            client.close()


def stop_lab_nodes(lab_root: Path, timeout: float = STOP_TIMEOUT) -> list[str]:
    """Stop every node under lab_root/nodes (from any process); the names that were running."""
    nodes_dir = Path(lab_root) / "nodes"
    if not nodes_dir.is_dir():
        return []
    return [root.name for root in sorted(nodes_dir.iterdir()) if HomelabNode.stop_from_root(root, timeout)]


def start_nodes(nodes: Iterable[HomelabNode]) -> list[HomelabNode]:
    """Start several nodes; if one fails, the ones already started are stopped again."""
    started: list[HomelabNode] = []
    try:
        for node in nodes:
            started.append(node.start())
    except BaseException:
        for node in reversed(started):
            node.stop()
        raise
    return started
