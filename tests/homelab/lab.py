"""The homelab as a whole: start and stop its parts, and describe it as stack settings.

Parts (all on loopback, lab N in 127.N.0.0/16, see addresses.py):
- upstream registries standing in for registry-1.docker.io and ghcr.io: real Debian
  `docker-registry` processes, seeded with small images, each also served over HTTPS on
  :443 of its address (a second `docker-registry` on the same storage), which is where a
  real containerd's fallback goes;
- the legacy cache CT113: `docker-registry` in pull-through mode for docker.io (:5000) and
  ghcr.io (:5002), and a plain one as the build cache (:5001);
- the Nexus double (REST API + docker connectors), held to Sonatype's API models;
- the cluster's API server: real kube-apiserver + etcd (kube.py), where Step 2 applies the
  NodePort Service; no kubelet or kube-proxy runs, so
- the NodePort itself is a TCP forwarder :30083 -> the double's docker-group connector :8083;
- six k3s nodes: real sshd servers over node roots with k3s stand-ins (nodes.py), pve1
  with the real containerd and crictl, the others with containerd stand-ins, each starting
  with a hand-written registries.yaml on the legacy cache.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.homelab.addresses import LabAddresses
from tests.homelab.kube import KubeApiServer
from tests.homelab.nexus_double import NexusDoubleProcess
from tests.homelab.nodes import HomelabNode, ensure_client_key, start_nodes, stop_lab_nodes
from tests.homelab.processes import ManagedProcess
from tests.homelab.registries import (
    DEFAULT_ENDPOINT_PORT,
    DOCKERHUB_IMAGES,
    GHCR_IMAGES,
    RegistryServer,
    default_endpoints_tls,
    seed_images,
)

REGISTRY_PORT = 5000
NODE_PORT = 30083
SECRET_NAMES = ("nexusAdminPassword", "pullPassword", "pushPassword", "passphrase")
# The runbook's nodes: (name, container id, role, containerd). Workers run k3s-agent.
# pve1 pulls with the real containerd and crictl; the others with the stand-ins, whose
# fault switches (pull-fails) the fault tests use on pve-worker0.
NODES = (
    ("pve-worker0", 112, "agent", "stand-in"),
    ("pve-worker1", 143, "agent", "stand-in"),
    ("pve-worker2", 129, "agent", "stand-in"),
    ("pve-worker3", 145, "agent", "stand-in"),
    ("pve1", 141, "server", "real"),
    ("pve2", 146, "server", "stand-in"),
)
NODE_NAMES = tuple(name for name, *_ in NODES)
# What the nodes had before the cutover: written by hand, comments and all.
LEGACY_REGISTRIES_YAML = """\
# k3s registry mirrors -> registry-cache CT113 (installed by install_registry_cache.sh)
mirrors:
  docker.io:
    endpoint: ["http://{legacy}:5000"]
  ghcr.io:
    endpoint: ["http://{legacy}:5002"]
"""


# A slice of the platform's human-written topology file: comments, order and quoting matter.
TOPOLOGY_YAML = """\
# Platform topology: hand-maintained, read by ops tooling and CI.
registry_cache:
  # registry-cache LXC CT113: docker.io :5000, build cache :5001, ghcr.io :5002
  host_ip: {legacy}   # the LXC's address
  ports:
    dockerhub: 5000
    buildcache: 5001
    ghcr: 5002
  buildcache_ref: '{legacy}:5001/fractalops/buildcache'
  k3s_mirror_nodes: [pve-worker0, pve-worker1, pve-worker2, pve-worker3, pve1, pve2]

apps:
  langboard:
    replicas: 2
    build_image_prefix: "{legacy}:5001/fractalops"   # CI pushes here
"""
DOCKER_CACHE_DOC = """\
# Docker cache

Nodes pull through the registry cache at http://{legacy}:5000 (docker.io) and
http://{legacy}:5002 (ghcr.io); CI caches builds in {legacy}:5001.
"""


def write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (it holds homelab secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


@dataclass
class Homelab:
    root: Path
    lab: int

    @property
    def addresses(self) -> LabAddresses:
        return LabAddresses(self.lab)

    @property
    def nexus_url(self) -> str:
        return f"http://{self.addresses.nexus}:8081"

    @property
    def docker_group_url(self) -> str:
        return f"http://{self.addresses.nexus}:8083"

    def _upstreams(self) -> dict[str, tuple[RegistryServer, list[str]]]:
        a = self.addresses
        return {
            "dockerhub": (
                RegistryServer(
                    "upstream-dockerhub",
                    a.upstream_dockerhub,
                    REGISTRY_PORT,
                    self.root / "upstream-dockerhub",
                ),
                DOCKERHUB_IMAGES,
            ),
            "ghcr": (
                RegistryServer("upstream-ghcr", a.upstream_ghcr, REGISTRY_PORT, self.root / "upstream-ghcr"),
                GHCR_IMAGES,
            ),
        }

    def secrets(self) -> dict[str, str]:
        """The homelab's generated secrets (created once, kept 0600 under its root)."""
        path = self.root / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        values = {name: secrets.token_urlsafe(18) for name in SECRET_NAMES}
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(path, json.dumps(values))
        return values

    def nexus(self) -> NexusDoubleProcess:
        return NexusDoubleProcess(
            self.addresses.nexus, self.root / "nexus", self.secrets()["nexusAdminPassword"]
        )

    def _legacy_cache(self) -> list[RegistryServer]:
        legacy, upstreams = self.addresses.legacy_cache, self._upstreams()
        return [
            RegistryServer(
                "legacy-dockerhub",
                legacy,
                5000,
                self.root / "legacy-dockerhub",
                upstreams["dockerhub"][0].url,
            ),
            RegistryServer("legacy-buildcache", legacy, 5001, self.root / "legacy-buildcache"),
            RegistryServer("legacy-ghcr", legacy, 5002, self.root / "legacy-ghcr", upstreams["ghcr"][0].url),
        ]

    def _default_endpoints(self) -> list[RegistryServer]:
        """The upstreams' default endpoints as the real containerd reaches them: HTTPS on
        :443 of each upstream's address, serving its images (see real_containerd.py)."""
        upstreams = {"docker.io": self._upstreams()["dockerhub"][0], "ghcr.io": self._upstreams()["ghcr"][0]}
        tls = default_endpoints_tls({r: server.host for r, server in upstreams.items()}, self.root)
        return [
            RegistryServer(
                f"{server.name}-tls",
                server.host,
                DEFAULT_ENDPOINT_PORT,
                self.root / f"{server.name}-tls",
                tls=tls,
                storage_dir=server.storage_dir,
            )
            for server in upstreams.values()
        ]

    def kube(self) -> KubeApiServer:
        """The cluster's API server (real kube-apiserver + etcd): Step 2 applies to it."""
        return KubeApiServer(self.lab, self.root / "kube")

    def _node_port(self) -> ManagedProcess:
        listen = f"{self.addresses.node_port}:{NODE_PORT}"
        to = f"{self.addresses.nexus}:8083"
        return ManagedProcess(
            "node-port",
            self.root / "node-port",
            [sys.executable, "-m", "tests.homelab.forwarder", "--listen", listen, "--to", to],
            ready=(self.addresses.node_port, NODE_PORT),
        )

    @property
    def topology_path(self) -> Path:
        return self.root / "platform" / "topology.yaml"

    @property
    def docs_path(self) -> Path:
        return self.root / "platform" / "docs"

    def write_platform_files(self) -> None:
        """The topology file and a doc as they were before the cutover."""
        legacy = self.addresses.legacy_cache
        (self.docs_path / "operations").mkdir(parents=True, exist_ok=True)
        self.topology_path.write_text(TOPOLOGY_YAML.format(legacy=legacy))
        (self.docs_path / "operations" / "docker-cache.md").write_text(DOCKER_CACHE_DOC.format(legacy=legacy))

    def topology_edits(self) -> dict[str, Any]:
        """Step 4's edits for this homelab (buildcache_ref keeps the program's default)."""
        return {
            "registry_cache.host_ip": self.addresses.nexus,
            "registry_cache.ports.dockerhub": 8083,
            "registry_cache.ports.buildcache": 8082,
            "registry_cache.ports.ghcr": 8083,
            "apps.langboard.build_image_prefix": "nexus-docker.nexus.svc:8082/fractalops",
        }

    def nodes(self) -> list[HomelabNode]:
        upstreams = {
            "docker.io": self._upstreams()["dockerhub"][0].url,
            "ghcr.io": self._upstreams()["ghcr"][0].url,
        }
        return [
            HomelabNode(name, vmid, self.addresses.node(i), role, self.root, upstreams, containerd=containerd)
            for i, (name, vmid, role, containerd) in enumerate(NODES)
        ]

    @property
    def legacy_registries_yaml(self) -> str:
        return LEGACY_REGISTRIES_YAML.format(legacy=self.addresses.legacy_cache)

    def up(self) -> dict[str, str]:
        """Start every part; returns the digests of the seeded upstream images."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        digests: dict[str, str] = {}
        for registry, images in self._upstreams().values():
            registry.start()
            digests.update(seed_images(registry.url, images))
        for registry in [*self._default_endpoints(), *self._legacy_cache()]:
            registry.start()
        self.nexus().start()
        self.kube().start()
        self._node_port().start()
        ensure_client_key(self.root)
        for node in self.nodes():
            node.prepare()
            if not node.registries_yaml.exists():
                node.write_text("/etc/rancher/k3s/registries.yaml", self.legacy_registries_yaml, 0o600)
        start_nodes(self.nodes())
        if not self.topology_path.exists():
            self.write_platform_files()
        (self.root / "digests.json").write_text(json.dumps(digests, indent=2))
        return digests

    def down(self) -> None:
        """Stop every part this homelab started (also from another process)."""
        stop_lab_nodes(self.root)
        self._node_port().stop()
        NexusDoubleProcess.stop_pidfile(self.root / "nexus")
        KubeApiServer.stop_from_state_dir(self.root / "kube")
        fronts = [self.root / f"{registry.name}-tls" for registry, _ in self._upstreams().values()]
        for state_dir in [
            *(registry.state_dir for registry in self._legacy_cache()),
            *fronts,
            *(registry.state_dir for registry, _ in self._upstreams().values()),
        ]:
            RegistryServer.stop_from_pid_file(state_dir)

    def stack_config(self, stage: int = 1, targets: dict[str, str] | None = None) -> dict[str, Any]:
        """Plain (non-secret) settings of a stack that targets this homelab."""
        upstreams, legacy = self._upstreams(), self.addresses.legacy_cache
        targets = targets or {}
        return {
            "nexus-cutover:stage": stage,
            "nexus-cutover:nexusUrl": self.nexus_url,
            "nexus-cutover:dockerGroupUrl": self.docker_group_url,
            # The homelab's operator (these tests) has read the double's EULA text.
            "nexus-cutover:acceptNexusEula": True,
            "nexus-cutover:httpTimeoutSeconds": 10,
            "nexus-cutover:repos": {
                "docker-dockerhub": {"remoteUrl": upstreams["dockerhub"][0].url},
                "docker-ghcr": {"remoteUrl": upstreams["ghcr"][0].url},
                # Never fetched by the double; loopback so nothing could leave the machine.
                "pypi-proxy": {"remoteUrl": f"http://{self.addresses.nexus}:9/pypi"},
                "apt-debian": {"remoteUrl": f"http://{self.addresses.nexus}:9/debian"},
            },
            # No controller-manager fills the Services' endpoints here: pulumi must not wait.
            "nexus-cutover:exposure": {"kubeconfig": str(self.kube().kubeconfig_path), "skipAwait": True},
            "nexus-cutover:topology": {"path": str(self.topology_path), "edits": self.topology_edits()},
            "nexus-cutover:retirement": {"scanPaths": [str(self.docs_path)]},
            "nexus-cutover:sshIdentityFile": str(ensure_client_key(self.root)),
            "nexus-cutover:mirror": {
                "nexusEndpoint": f"http://{self.addresses.node_port}:{NODE_PORT}",
                "legacyEndpoints": {"docker.io": f"http://{legacy}:5000", "ghcr.io": f"http://{legacy}:5002"},
            },
            "nexus-cutover:nodes": [
                {
                    "name": node.name,
                    "id": node.vmid,
                    "host": node.address,
                    "hostKey": node.host_key_line,
                    "role": node.role,
                    "target": targets.get(node.name, "legacy"),
                    "timeouts": {"connect": 5, "command": 20, "restart": 20, "pull": 30},
                }
                for node in self.nodes()
            ],
        }

    def write_stack_file(
        self, project_dir: Path, stack: str, stage: int = 1, targets: dict[str, str] | None = None
    ) -> Path:
        """Pulumi.<stack>.yaml with the plain settings; secrets are set through the engine."""
        path = project_dir / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump({"config": self.stack_config(stage, targets)}, sort_keys=False))
        return path
