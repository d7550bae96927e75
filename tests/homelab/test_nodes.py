"""Homelab nodes: real sshd processes over node roots, with k3s/containerd stand-ins behind them."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import stat
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import paramiko
import pytest

from tests.homelab.addresses import LabAddresses
from tests.homelab.node_tools import real_containerd
from tests.homelab.node_tools.common import PULL_LOG
from tests.homelab.node_tools.k3sconfig import (
    RegistriesError,
    URLError,
    normalize_endpoint,
    parse_registries,
)
from tests.homelab.nodes import (
    CRICTL,
    SSHD,
    HomelabNode,
    NodeError,
    _nft_binary,
    cgroup2_mount,
    ensure_client_key,
    load_host_key,
    ssh_run,
)
from tests.homelab.processes import command_line, pid_alive, read_pid
from tests.homelab.registries import (
    DEFAULT_ENDPOINT_PORT,
    REGISTRY_BINARY,
    RegistryServer,
    default_endpoints_tls,
    seed_images,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(SSHD, os.X_OK) or shutil.which("unshare") is None,
    reason="needs root, openssh-server and unshare",
)
needs_registry = pytest.mark.skipif(
    not os.access(REGISTRY_BINARY, os.X_OK) or shutil.which("skopeo") is None,
    reason="needs Debian's docker-registry and skopeo",
)
needs_nft = pytest.mark.skipif(
    _nft_binary() is None or cgroup2_mount() is None, reason="needs nftables and cgroup v2"
)

BUSYBOX = "docker.io/library/busybox:latest"
StartNode = Callable[..., HomelabNode]
StartRegistry = Callable[..., RegistryServer]  # the start_registry fixture (conftest.py)


def upstreams_of(lab: LabAddresses) -> dict[str, str]:
    return {
        "docker.io": f"http://{lab.upstream_dockerhub}:5000",
        "ghcr.io": f"http://{lab.upstream_ghcr}:5000",
    }


def mirrors_yaml(*endpoints: str, extra: str = "") -> str:
    lines = ["mirrors:", "  docker.io:", "    endpoint:"] + [f'      - "{e}"' for e in endpoints]
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[StartNode]:
    """Start nodes of a lab; every one is stopped when the test ends, pass or fail."""
    nodes: list[HomelabNode] = []

    def start(
        lab: int, index: int = 0, role: str = "agent", registries: str | None = None, **kwargs: Any
    ) -> HomelabNode:
        addresses = LabAddresses(lab)
        node = HomelabNode(
            f"node-{index}",
            100 + index,
            addresses.node(index),
            role,
            tmp_path / f"lab{lab}",
            upstreams_of(addresses),
            **kwargs,
        )
        nodes.append(node)
        if registries is not None:
            node.write_text("/etc/rancher/k3s/registries.yaml", registries)
        return node.start()

    try:
        yield start
    finally:
        for node in reversed(nodes):
            node.stop()


def seeded_upstream(start_registry: StartRegistry, lab: LabAddresses) -> tuple[RegistryServer, str]:
    upstream = start_registry("upstream-dockerhub", lab.upstream_dockerhub)
    digest = seed_images(upstream.url, ["library/busybox:latest"])["library/busybox:latest"]
    return upstream, digest


def live_mirror(
    start_registry: StartRegistry, lab: LabAddresses
) -> tuple[RegistryServer, RegistryServer, str]:
    """A seeded upstream and the legacy cache pulling through from it: (upstream, mirror, digest)."""
    upstream, digest = seeded_upstream(start_registry, lab)
    mirror = start_registry("legacy-cache", lab.legacy_cache, proxy_remote_url=upstream.url)
    return upstream, mirror, digest


def run(node: HomelabNode, command: str, timeout: float = 30.0) -> tuple[int, str, str]:
    result = node.run(command, timeout)
    return result.exit_status, result.stdout, result.stderr


# ---------------------------------------------------------------------------------------
# SSH and the node's view of its files
# ---------------------------------------------------------------------------------------


def test_each_node_sees_its_own_registries_yaml_at_the_real_path(start_node: StartNode):
    first = start_node(70, 0, registries=mirrors_yaml("http://127.70.0.4:5000"))
    second = start_node(70, 1, registries=mirrors_yaml("http://127.70.0.1:8083"))

    code, out, _ = run(first, "cat /etc/rancher/k3s/registries.yaml")
    _, out_second, _ = run(second, "cat /etc/rancher/k3s/registries.yaml")

    assert code == 0
    assert out == first.registries_yaml.read_text()
    assert "127.70.0.4:5000" in out and "127.70.0.1:8083" in out_second
    # A write on the node lands in its root; the host's mount points stay empty.
    run(first, "echo written-on-node > /etc/rancher/k3s/probe.txt")
    assert first.path("/etc/rancher/k3s/probe.txt").read_text() == "written-on-node\n"
    assert not Path("/etc/rancher/k3s/probe.txt").exists()
    assert not second.path("/etc/rancher/k3s/probe.txt").exists()


def test_sftp_writes_land_in_the_node_root(start_node: StartNode):
    node = start_node(70, 0, registries="")
    client = node.ssh_client()
    try:
        sftp = client.open_sftp()
        with sftp.open("/etc/rancher/k3s/registries.yaml.tmp", "w") as handle:
            handle.write("mirrors: {}\n")
        sftp.posix_rename("/etc/rancher/k3s/registries.yaml.tmp", "/etc/rancher/k3s/registries.yaml")
        sftp.close()
    finally:
        client.close()
    assert node.registries_yaml.read_text() == "mirrors: {}\n"


def test_a_host_key_other_than_the_nodes_is_refused(start_node: StartNode):
    node = start_node(70, 0)
    other = start_node(70, 1)
    key = str(ensure_client_key(node.lab_root))

    # The other node's key for this address, then no key at all.
    with pytest.raises(paramiko.BadHostKeyException):
        _connect_as_root(node, key, known=load_host_key(other.host_key_line))
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        _connect_as_root(node, key, known=None)

    assert node.host_key_line.startswith("ssh-ed25519 AAAA")
    assert node.host_key_line != other.host_key_line
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def _connect_as_root(node: HomelabNode, key: str, known: tuple[str, paramiko.PKey] | None) -> None:
    """Connect with the lab key, trusting only `known` as the node's host key."""
    client = paramiko.SSHClient()
    if known is not None:
        client.get_host_keys().add(node.address, *known)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            node.address,
            22,
            username="root",
            key_filename=key,
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
        )
    finally:
        client.close()


# ---------------------------------------------------------------------------------------
# systemctl restart: what k3s makes of registries.yaml
# ---------------------------------------------------------------------------------------


def test_restart_writes_hosts_toml_per_registry_and_credentials_only_to_config_toml(start_node: StartNode):
    node = start_node(
        71, 0, registries=mirrors_yaml("http://127.71.0.4:5000").replace("docker.io", "quay.io")
    )
    certs = node.path("/var/lib/rancher/k3s/agent/etc/containerd/certs.d")
    assert (certs / "quay.io/hosts.toml").is_file()  # written when the node booted
    (certs / "hand-made").mkdir()
    (certs / "hand-made/hosts.toml").write_text('server = "https://hand.made"\n')
    password = "s3cret-pull-pass"
    node.registries_yaml.write_text(
        mirrors_yaml(
            "http://127.71.0.1:8083",
            "http://127.71.0.4:5000",
            extra=(
                'configs:\n  "127.71.0.1:8083":\n    auth:\n      username: pull\n'
                f"      password: {password}\n"
            ),
        )
    )

    code, out, err = run(node, "systemctl restart k3s-agent")

    assert (code, out, err) == (0, "", "")
    hosts = tomllib.loads((certs / "docker.io/hosts.toml").read_text())
    assert hosts["server"] == "https://registry-1.docker.io/v2"
    assert list(hosts["host"]) == ["http://127.71.0.1:8083/v2", "http://127.71.0.4:5000/v2"]
    assert all(h["capabilities"] == ["pull", "resolve"] for h in hosts["host"].values())
    assert not (certs / "quay.io").exists()  # k3s deletes what it generated before
    assert (certs / "hand-made/hosts.toml").exists()  # and leaves the rest alone
    config = node.path("/var/lib/rancher/k3s/agent/etc/containerd/config.toml")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    auth = tomllib.loads(config.read_text())["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["configs"]
    assert auth["127.71.0.1:8083"]["auth"] == {"username": "pull", "password": password}
    for path in certs.rglob("*"):
        assert not path.is_file() or password not in path.read_text()
    assert password not in node.k3s_log()
    code, out, _ = run(node, "systemctl is-active k3s-agent")
    assert (code, out) == (0, "active\n")


def test_only_the_nodes_own_unit_exists(start_node: StartNode):
    agent = start_node(71, 0)
    server = start_node(71, 1, role="server")

    assert run(agent, "systemctl restart k3s")[0] == 5
    assert (
        run(agent, "systemctl restart k3s")[2]
        == "Failed to restart k3s.service: Unit k3s.service not found.\n"
    )
    assert run(server, "systemctl restart k3s && systemctl is-active k3s")[:2] == (0, "active\n")
    assert run(agent, "systemctl is-active k3s")[:2] == (3, "inactive\n")
    # Readiness: only servers have a kubeconfig; they see every node of the lab.
    code, out, _ = run(server, f"k3s kubectl get node {agent.name}")
    assert code == 0 and f"{agent.name}   Ready" in out
    code, _, err = run(agent, f"k3s kubectl get node {agent.name}")
    assert code == 1 and "localhost:8080 was refused" in err
    run(agent, "systemctl stop k3s-agent")
    assert f"{agent.name}   NotReady" in run(server, f"kubectl get node {agent.name}")[1]
    code, _, err = run(server, f"kubectl wait --for=condition=Ready node/{agent.name} --timeout=1s")
    assert code == 1 and "timed out waiting for the condition" in err


def test_invalid_yaml_fails_the_restart_and_the_unit_crash_loops_until_the_file_is_fixed(
    start_node: StartNode,
):
    good = mirrors_yaml("http://127.71.0.4:5000")
    node = start_node(71, 0, registries=good, restart_sec=0.5)
    node.registries_yaml.write_text("mirrors:\n  docker.io:\n    endpoint: [\n")

    code, _, err = run(node, "systemctl restart k3s-agent")

    assert code == 1
    assert "Job for k3s-agent.service failed because the control process exited with error code." in err
    code, out, _ = run(node, "systemctl is-active k3s-agent")
    assert (code, out) == (3, "activating\n")  # Restart=always: auto-restart, not "failed"
    assert 'level=fatal msg="failed to load private registry configuration' in node.k3s_log()
    code, _, err = run(node, f"crictl pull {BUSYBOX}")
    assert code == 1 and "connect: no such file or directory" in err
    # The crash loop re-reads the file: fixing it heals the unit without a restart.
    node.registries_yaml.write_text(good)
    time.sleep(0.6)
    assert run(node, "systemctl is-active k3s-agent")[:2] == (0, "active\n")


def test_without_the_crash_loop_a_failed_start_leaves_the_unit_failed(start_node: StartNode):
    node = start_node(71, 0, crash_loop=False)
    node.registries_yaml.write_text(
        "mirrors:\n  docker.io:\n    endpoint: http://127.71.0.4:5000\n"
    )  # a string, not a list

    assert run(node, "systemctl restart k3s-agent")[0] == 1
    assert run(node, "systemctl is-active k3s-agent")[:2] == (3, "failed\n")
    assert (
        "cannot unmarshal string into Go struct field Mirror.mirrors.endpoint of type []string"
        in node.k3s_log()
    )


def test_a_malformed_endpoint_is_warned_about_and_skipped(start_node: StartNode):
    node = start_node(72, 0)
    node.registries_yaml.write_text(mirrors_yaml("http://127.72.0.1:80x3", "http://127.72.0.4:5000"))

    code, _, _ = run(node, "systemctl restart k3s-agent")

    assert code == 0
    assert node.unit_state() == "active"
    hosts = tomllib.loads(
        node.path("/var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io/hosts.toml").read_text()
    )
    assert list(hosts["host"]) == ["http://127.72.0.4:5000/v2"]
    assert (
        'level=warning msg="Ignoring invalid endpoint URL 0=http://127.72.0.1:80x3 for docker.io: '
        'parse \\"http://127.72.0.1:80x3\\": invalid port \\":80x3\\" after host"'
    ) in node.k3s_log()


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("127.0.0.1:30083", ("127.0.0.1:30083", "http://127.0.0.1:30083/v2", False)),
        ("http://127.0.0.1:30083", ("127.0.0.1:30083", "http://127.0.0.1:30083/v2", False)),
        ("nexus.lan:8083", ("nexus.lan:8083", "https://nexus.lan:8083/v2", False)),
        ("https://nexus.lan/prefix", ("nexus.lan", "https://nexus.lan/prefix", True)),
        ("docker.io", ("docker.io", "https://registry-1.docker.io/v2", False)),
    ],
)
def test_endpoints_are_normalised_like_k3s(endpoint: str, expected: tuple[str, str, bool]):
    assert normalize_endpoint(endpoint) == expected


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:30o83", "http://nexus lan:8083", "http://[::1:8083", "%zz"]
)
def test_go_url_parse_rejects_what_k3s_would_skip(endpoint: str):
    with pytest.raises(URLError):
        normalize_endpoint(endpoint)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mirrors:\n  docker.io: {}\n  docker.io: {}\n", 'key "docker.io" already set in map'),
        ("configs:\n  h:5000:\n    auth:\n      password: 12345\n", "cannot unmarshal number"),
        ("- mirrors\n", "cannot unmarshal array into Go value of type registries.Registry"),
        ("mirrors: [\n", "yaml: line"),
    ],
)
def test_registries_yaml_errors_that_are_fatal_in_k3s(text: str, message: str):
    with pytest.raises(RegistriesError, match=message):
        parse_registries(text)


# ---------------------------------------------------------------------------------------
# crictl pull: mirrors, the fallback trap
# ---------------------------------------------------------------------------------------


CONTAINERDS = pytest.mark.parametrize(
    "containerd",
    [
        "stand-in",
        pytest.param(
            "real",
            marks=pytest.mark.skipif(
                not os.access(real_containerd.CONTAINERD, os.X_OK) or not os.access(CRICTL, os.X_OK),
                reason="needs Debian's containerd and crictl in .tools/bin (make setup)",
            ),
        ),
    ],
)


def start_default_endpoint(
    start_registry: StartRegistry, upstream: RegistryServer, lab_root: Path
) -> RegistryServer:
    """docker.io's default endpoint as a real containerd reaches it: https://registry-1.docker.io
    (the node's hosts file names the upstream's address), serving the upstream's images."""
    tls = default_endpoints_tls({"docker.io": upstream.host}, lab_root)
    return start_registry(
        "default-endpoint", upstream.host, DEFAULT_ENDPOINT_PORT, tls=tls, storage_dir=upstream.storage_dir
    )


@needs_registry
@CONTAINERDS
def test_a_pull_through_a_live_mirror_is_served_by_the_mirror(
    start_node: StartNode, start_registry: StartRegistry, containerd: str
):
    _, mirror, digest = live_mirror(start_registry, LabAddresses(73))
    node = start_node(73, 0, registries=mirrors_yaml(mirror.url), containerd=containerd)

    code, out, err = run(node, f"crictl pull {BUSYBOX}")

    assert code == 0, err
    assert out.startswith("Image is up to date for sha256:")
    entry = node.pull_log()[-1]
    assert entry["ok"] and entry["via"] == "mirror" and entry["served_by"] == mirror.address
    assert entry["digest"] == digest
    requests = mirror.log_path.read_text()
    assert "ns=docker.io" in requests  # containerd marks mirror requests
    code, out, _ = run(node, f"crictl inspecti -o json {BUSYBOX}")
    assert json.loads(out)["status"]["repoDigests"] == [f"docker.io/library/busybox@{digest}"]
    assert "docker.io/library/busybox" in run(node, "crictl images")[1]
    if containerd == "stand-in":
        assert entry["mirror_errors"] == [] and {f["served_by"] for f in entry["fetched"]} == {mirror.address}
        # `k3s ctr` ignores registries.yaml: it goes straight to the default endpoint.
        assert run(node, f"k3s ctr images pull {BUSYBOX}")[0] == 0
        assert node.pull_log()[-1]["via"] == "default-endpoint"
    else:
        assert entry["failed_hosts"] == [] and 'useragent="containerd/1.6' in requests


@needs_registry
@CONTAINERDS
def test_with_the_mirror_down_the_pull_falls_back_to_the_default_endpoint(
    start_node: StartNode, start_registry: StartRegistry, containerd: str, tmp_path: Path
):
    lab = LabAddresses(74)
    upstream, digest = seeded_upstream(start_registry, lab)
    served_by = upstream.address  # the stand-in's default endpoint, plain HTTP
    if containerd == "real":
        start_default_endpoint(start_registry, upstream, tmp_path / "lab74")
        served_by = "registry-1.docker.io"  # as containerd names the host it resolved on
    down = f"http://{lab.legacy_cache}:5000"  # nothing listens
    node = start_node(74, 0, registries=mirrors_yaml(down), containerd=containerd)

    code, _, err = run(node, f"crictl pull {BUSYBOX}")

    assert code == 0, err  # the pull "works": the fallback trap
    entry = node.pull_log()[-1]
    assert entry["via"] == "default-endpoint" and entry["served_by"] == served_by
    assert entry["digest"] == digest
    if containerd == "stand-in":
        assert entry["mirror_errors"][0]["stage"] == "resolve"
        assert "connect: connection refused" in entry["mirror_errors"][0]["error"]
    else:
        assert entry["failed_hosts"] == [f"{lab.legacy_cache}:5000"]
        assert "connect: connection refused" in node.read_text(real_containerd.LOG)


@needs_registry
@CONTAINERDS
def test_pull_credentials_come_from_registries_yaml_through_the_bearer_flow(
    start_node: StartNode, start_registry: StartRegistry, containerd: str, tmp_path: Path
):
    lab = LabAddresses(75)
    upstream, _ = seeded_upstream(start_registry, lab)
    if containerd == "real":
        start_default_endpoint(start_registry, upstream, tmp_path / "lab75")
    password = "pull-pass-75"
    with AuthMirror((lab.nexus, 8083), upstream.url, "pull", password) as mirror:
        creds = (
            f'configs:\n  "{lab.nexus}:8083":\n    auth:\n      username: pull\n      password: {password}\n'
        )
        registries = mirrors_yaml(f"http://{lab.nexus}:8083", extra=creds)
        node = start_node(75, 0, registries=registries, containerd=containerd)

        code, _, err = run(node, f"crictl pull {BUSYBOX}")

        assert code == 0, err
        assert node.pull_log()[-1]["via"] == "mirror"
        assert mirror.token_requests and all(user == "pull" for user in mirror.token_requests)
        # Wrong credentials: the mirror refuses, containerd silently falls back.
        node.registries_yaml.write_text(node.registries_yaml.read_text().replace(password, "wrong"))
        run(node, "systemctl restart k3s-agent && crictl rmi docker.io/library/busybox:latest")
        code, _, _ = run(node, f"crictl pull {BUSYBOX}")
        entry = node.pull_log()[-1]
        assert code == 0 and entry["via"] == "default-endpoint"
        if containerd == "stand-in":
            assert "401" in entry["mirror_errors"][0]["error"]
        else:
            assert entry["failed_hosts"] == [f"{lab.nexus}:8083"]
    logs = [node.path(PULL_LOG), node.path(real_containerd.LOG)]
    encoded = base64.b64encode(f"pull:{password}".encode()).decode()
    for log in (path for path in logs if path.exists()):
        assert password not in log.read_text() and encoded not in log.read_text()


class AuthMirror:
    """A registry front that demands a DockerToken bearer token, as Nexus does."""

    def __init__(self, address: tuple[str, int], upstream: str, user: str, password: str) -> None:
        self.token_requests: list[str] = []
        mirror = self
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        realm = f"http://{address[0]}:{address[1]}/v2/token"

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # containerd tries an OAuth POST first
                self._reply(405, b"")

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                if self.path.startswith("/v2/token"):
                    if self.headers.get("Authorization") != expected:
                        self._reply(401, b"{}")
                        return
                    mirror.token_requests.append(user)
                    self._reply(200, json.dumps({"token": "t0k"}).encode())
                    return
                if self.headers.get("Authorization") != "Bearer t0k":
                    challenge = f'Bearer realm="{realm}",service="{realm}"'
                    self._reply(401, b"{}", {"WWW-Authenticate": challenge})
                    return
                got = httpx.request(
                    self.command, upstream + self.path, headers={"Accept": self.headers.get("Accept", "*/*")}
                )
                keep = {
                    k: v
                    for k, v in got.headers.items()
                    if k.lower() in ("content-type", "docker-content-digest", "content-length")
                }
                self._reply(got.status_code, got.content, keep)

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                # A HEAD carries the length its GET would have: the upstream's.
                headers = {
                    "content-length": str(len(body)),
                    **{k.lower(): v for k, v in (headers or {}).items()},
                }
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(address, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> AuthMirror:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------
# Fault switches
# ---------------------------------------------------------------------------------------


@needs_registry
def test_pull_fails_makes_every_registry_answer_500(start_node: StartNode, start_registry: StartRegistry):
    lab = LabAddresses(76)
    seeded_upstream(start_registry, lab)
    node = start_node(76, 0)
    node.set_fault("pull-fails")

    code, _, err = run(node, f"crictl pull {BUSYBOX}")

    assert code == 1
    assert err.startswith(
        "FATA[0000] pulling image: rpc error: code = Unknown desc = failed to pull and unpack image"
    )
    assert "500 Internal Server Error" in err
    assert node.pull_log()[-1]["ok"] is False
    node.clear_faults()
    assert run(node, f"crictl pull {BUSYBOX}")[0] == 0


def test_restart_fails_fails_every_start_until_cleared(start_node: StartNode):
    node = start_node(77, 0, restart_sec=0.3)
    node.set_fault("restart-fails")

    assert run(node, "systemctl restart k3s-agent")[0] == 1
    time.sleep(0.4)
    assert run(node, "systemctl is-active k3s-agent")[1] == "activating\n"  # retried, failed again
    assert "NRestarts=" in run(node, "systemctl show k3s-agent -p NRestarts")[1]
    assert run(node, "systemctl show k3s-agent -p NRestarts --value")[1] != "0\n"
    node.clear_faults()
    assert run(node, "systemctl restart k3s-agent && systemctl is-active k3s-agent")[:2] == (0, "active\n")


def test_restart_hangs_keeps_the_unit_activating_for_that_long(start_node: StartNode):
    node = start_node(77, 0)
    node.set_fault("restart-hangs", 1.5)
    result: dict[str, Any] = {}

    def restart() -> None:
        started = time.monotonic()
        result["code"] = run(node, "systemctl restart k3s-agent")[0]
        result["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=restart)
    worker.start()
    time.sleep(0.8)
    during = run(node, "systemctl is-active k3s-agent; crictl images")
    worker.join(10)

    assert during[1].startswith("activating\n") and "no such file or directory" in during[2]
    assert result["code"] == 0 and result["seconds"] >= 1.5
    assert node.unit_state() == "active"


def test_ssh_drop_cuts_the_connection_after_the_restart_took_effect(start_node: StartNode):
    node = start_node(78, 0, registries=mirrors_yaml("http://127.78.0.4:5000"))
    node.registries_yaml.write_text(mirrors_yaml("http://127.78.0.1:8083"))
    node.set_fault("ssh-drop")
    client = node.ssh_client()

    with pytest.raises(NodeError, match="connection dropped"):
        ssh_run(client, "systemctl restart k3s-agent; echo finished", timeout=10)
    time.sleep(0.2)
    assert not client.get_transport().is_active()
    client.close()

    hosts = node.path("/var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io/hosts.toml").read_text()
    assert "127.78.0.1:8083" in hosts  # the new file was applied before the drop
    assert node.faults() == {}  # one-shot
    assert run(node, "systemctl is-active k3s-agent")[:2] == (0, "active\n")


@needs_registry
@needs_nft
def test_mirror_unreachable_refuses_the_mirror_to_the_nodes_processes_only(
    start_node: StartNode, start_registry: StartRegistry
):
    lab = LabAddresses(79)
    _, mirror, _ = live_mirror(start_registry, lab)
    node = start_node(79, 0, registries=mirrors_yaml(mirror.url))
    client = node.ssh_client()

    def forward(host: str) -> None:
        """Open (and close) an SSH port forwarding to host:5000, from the node's sshd."""
        client.get_transport().open_channel("direct-tcpip", (host, 5000), ("127.0.0.1", 0)).close()

    try:
        forward(lab.legacy_cache)

        node.set_fault("mirror-unreachable", [mirror.address])

        with pytest.raises(paramiko.ChannelException):
            forward(lab.legacy_cache)
        forward(lab.upstream_dockerhub)
        assert run(node, f"crictl pull {BUSYBOX}")[0] == 0
        entry = node.pull_log()[-1]
        assert entry["via"] == "default-endpoint"
        assert "connection refused" in entry["mirror_errors"][0]["error"]
        with socket.create_connection((lab.legacy_cache, 5000), timeout=2):
            pass  # the host itself still reaches the mirror

        node.clear_faults()
        forward(lab.legacy_cache)
    finally:
        client.close()


# ---------------------------------------------------------------------------------------
# Stopping
# ---------------------------------------------------------------------------------------


def test_stop_leaves_no_process_of_the_node_behind(start_node: StartNode):
    node = start_node(70, 0)
    sshd_pid = node.pid
    client = node.ssh_client()
    channel = client.get_transport().open_session()
    channel.exec_command("sleep 60")  # a session still running when the node stops
    time.sleep(0.3)
    namespace = os.readlink(f"/proc/{sshd_pid}/ns/mnt")

    node.stop()
    client.close()

    assert sshd_pid is not None and not Path(f"/proc/{sshd_pid}").exists()
    leftovers = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _ns(p.name) == namespace]
    assert leftovers == []
    with pytest.raises(OSError):
        socket.create_connection((node.address, 22), timeout=1).close()
    node.stop()  # idempotent
    assert HomelabNode.stop_from_root(node.root) is False


def _ns(pid: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def test_the_real_containerd_has_no_pull_fails_switch(tmp_path: Path):
    node = HomelabNode("node-0", 100, "127.86.0.10", "agent", tmp_path, {}, containerd="real")
    with pytest.raises(NodeError, match="no pull-fails switch"):
        node.set_fault("pull-fails")
    node.set_fault("restart-fails")  # the k3s side's switches stay
    assert node.tools.fault("restart-fails") is True


@pytest.mark.skipif(
    not os.access(real_containerd.CONTAINERD, os.X_OK) or not os.access(CRICTL, os.X_OK),
    reason="needs Debian's containerd and crictl in .tools/bin (make setup)",
)
def test_the_real_containerd_runs_exactly_while_k3s_runs(start_node: StartNode):
    node = start_node(87, 0, containerd="real")

    def containerd_pid() -> int | None:
        pid = read_pid(node.path(real_containerd.PID_FILE))
        return pid if pid is not None and real_containerd.CONTAINERD in command_line(pid) else None

    booted = containerd_pid()
    assert booted is not None and run(node, "crictl images")[0] == 0
    assert run(node, "systemctl restart k3s-agent")[0] == 0
    restarted = containerd_pid()  # a new containerd: it reads config.toml again
    assert restarted not in (None, booted) and not pid_alive(booted)

    assert run(node, "systemctl stop k3s-agent")[0] == 0
    assert containerd_pid() is None and not pid_alive(restarted)
    code, _, err = run(node, "crictl images")
    assert code == 1 and "containerd.sock: connect: no such file or directory" in err  # as the stand-in says

    assert run(node, "systemctl start k3s-agent")[0] == 0
    started = containerd_pid()
    assert started is not None
    node.stop()
    assert not pid_alive(started)


def test_a_hung_restart_goes_on_after_its_ssh_session_and_can_be_waited_for(start_node: StartNode):
    node = start_node(83, 0)
    node.set_fault("restart-hangs", 2.0)
    with pytest.raises(TimeoutError):
        run(node, "systemctl restart k3s-agent", timeout=0.5)  # the caller gives up, as pulumi does

    assert node.running_jobs() != []
    started = time.monotonic()
    node.wait_for_jobs(timeout=10)
    assert node.running_jobs() == [] and time.monotonic() - started > 0.5
    assert node.unit_state() == "active"
