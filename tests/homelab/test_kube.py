"""A real kube-apiserver (and etcd) on loopback: what the pulumi-kubernetes provider will talk to."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.homelab.addresses import LabAddresses
from tests.homelab.kube import (
    API_PORT,
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    TOOLS_BIN,
    KubeApiServer,
    KubeError,
)

pytestmark = pytest.mark.skipif(
    not all(os.access(TOOLS_BIN / name, os.X_OK) for name in ("kube-apiserver", "etcd")),
    reason="needs .tools/bin/kube-apiserver and etcd: run tools/setup-kube.sh",
)

# Labs 90+ belong to the homelab's own tests (addresses.py); the API server uses 127.N.0.6.
LAB = 90
STOP_LAB = 91
STOP_FROM_DIR_LAB = 92


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiServer]:
    with KubeApiServer(LAB, tmp_path_factory.mktemp("kube")) as server:
        yield server


@pytest.fixture
def api(kube: KubeApiServer) -> Iterator[httpx.Client]:
    with kube.client() as client:
        yield client


@pytest.fixture
def services(api: httpx.Client) -> Iterator[list[str]]:
    """Names of Services a test creates in `nexus`; deleted when it ends."""
    names: list[str] = []
    yield names
    for name in names:
        api.delete(f"/api/v1/namespaces/nexus/services/{name}")


def node_port_service(name: str, node_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "nexus"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "nexus"},
            "ports": [{"name": "docker-group", "port": 8083, "targetPort": 8083, "nodePort": node_port}],
        },
    }


def create_service(api: httpx.Client, services: list[str], name: str, node_port: int) -> httpx.Response:
    services.append(name)
    return api.post("/api/v1/namespaces/nexus/services", json=node_port_service(name, node_port))


def port_taken(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def test_api_server_answers_readyz_and_reports_the_pinned_version(api: httpx.Client) -> None:
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.text == "ok"
    version = api.get("/version").json()
    assert version["gitVersion"] == "v1.37.2"
    assert (version["major"], version["minor"]) == ("1", "37")


def test_clients_without_the_admin_certificate_are_turned_away(kube: KubeApiServer) -> None:
    context = ssl.create_default_context(cafile=str(kube.ca_path))
    with httpx.Client(base_url=kube.url, verify=context, trust_env=False, timeout=5) as anonymous:
        assert anonymous.get("/api/v1/namespaces").status_code == 401


def test_kubeconfig_is_private_and_lets_its_admin_in(kube: KubeApiServer) -> None:
    path = kube.kubeconfig_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    assert cluster["server"] == "https://127.90.0.6:6443"
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for key, data in (
            ("ca", cluster["certificate-authority-data"]),
            ("cert", user["client-certificate-data"]),
            ("key", user["client-key-data"]),
        ):
            files[key] = Path(tmp) / key
            files[key].write_bytes(base64.b64decode(data))
        tls = ssl.create_default_context(cafile=str(files["ca"]))
        tls.load_cert_chain(str(files["cert"]), str(files["key"]))
        with httpx.Client(base_url=cluster["server"], verify=tls, trust_env=False, timeout=5) as client:
            review = client.post(
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            )
    assert review.status_code == 201, review.text
    assert "system:masters" in review.json()["status"]["userInfo"]["groups"]


def test_the_existing_nexus_install_is_mimicked(api: httpx.Client) -> None:
    assert api.get("/api/v1/namespaces/nexus").json()["status"]["phase"] == "Active"
    service = api.get("/api/v1/namespaces/nexus/services/nexus").json()
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {"app": "nexus"}
    assert [p["port"] for p in service["spec"]["ports"]] == [8081]
    assert service["spec"]["clusterIP"].startswith("10.43.")


def test_a_node_port_is_allocated_once(api: httpx.Client, services: list[str]) -> None:
    first = create_service(api, services, "nexus-docker", 30083)
    assert first.status_code == 201, first.text
    assert first.json()["spec"]["ports"][0]["nodePort"] == 30083
    assert first.json()["spec"]["clusterIP"].startswith("10.43.")

    second = create_service(api, services, "nexus-docker-again", 30083)
    assert second.status_code == 422, second.text
    status = second.json()
    assert status["reason"] == "Invalid"
    assert "provided port is already allocated" in status["message"]


def test_a_released_node_port_can_be_taken_again(api: httpx.Client, services: list[str]) -> None:
    assert create_service(api, services, "short-lived", 30090).status_code == 201
    assert api.delete("/api/v1/namespaces/nexus/services/short-lived").status_code == 200
    assert create_service(api, services, "successor", 30090).status_code == 201


@pytest.mark.parametrize("node_port", [29999, 32768, 8083])
def test_a_node_port_outside_the_range_is_refused(
    api: httpx.Client, services: list[str], node_port: int
) -> None:
    response = create_service(api, services, f"out-of-range-{node_port}", node_port)
    assert response.status_code == 422, response.text
    assert "provided port is not in the valid range" in response.json()["message"]
    assert "30000-32767" in response.json()["message"]


def _processes_of(pids: dict[str, int]) -> dict[str, int]:
    return {name: pid for name, pid in pids.items() if Path(f"/proc/{pid}").exists()}


def test_stop_leaves_no_process_port_or_state(tmp_path: Path) -> None:
    server = KubeApiServer(STOP_LAB, tmp_path).start()
    pids = server.pids
    assert set(pids) == {"etcd", "kube-apiserver"}
    assert server.startup_seconds is not None
    assert (tmp_path / "etcd-data").is_dir()

    with pytest.raises(KubeError, match="already in use"):
        KubeApiServer(STOP_LAB, tmp_path / "second").start()

    server.stop()
    assert _processes_of(pids) == {}
    host = LabAddresses(STOP_LAB).kube_api
    assert not any(port_taken(host, port) for port in (API_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT))
    assert not server.kubeconfig_path.exists()
    assert not (tmp_path / "etcd-data").exists()
    assert not (tmp_path / "pki").exists()
    assert not list(tmp_path.glob("*.pid"))
    assert (tmp_path / "kube-apiserver.log").exists()  # kept for post-mortems
    server.stop()  # idempotent


def test_another_process_can_stop_it_through_the_state_dir(tmp_path: Path) -> None:
    server = KubeApiServer(STOP_FROM_DIR_LAB, tmp_path).start()
    pids = server.pids
    try:
        assert KubeApiServer.stop_from_state_dir(tmp_path) is True
        assert _processes_of({n: p for n, p in pids.items() if not _zombie(p)}) == {}
        assert not server.kubeconfig_path.exists()
        assert KubeApiServer.stop_from_state_dir(tmp_path) is False
    finally:
        server.stop()  # reaps the (already dead) children
    assert _processes_of(pids) == {}


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return False
