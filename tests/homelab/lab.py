"""The homelab as a whole: start and stop its parts, and describe it as stack settings.

Parts (all on loopback, lab N in 127.N.0.0/16, see addresses.py):
- upstream registries standing in for registry-1.docker.io and ghcr.io: real Debian
  `docker-registry` processes, seeded with small images;
- the Nexus double (REST API + docker connectors), held to Sonatype's API models.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.homelab.addresses import LabAddresses
from tests.homelab.nexus_double import NexusDoubleProcess
from tests.homelab.registries import (
    DOCKERHUB_IMAGES,
    GHCR_IMAGES,
    RegistryServer,
    seed_images,
)

REGISTRY_PORT = 5000
SECRET_NAMES = ("nexusAdminPassword", "pullPassword", "pushPassword", "passphrase")


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

    def up(self) -> dict[str, str]:
        """Start every part; returns the digests of the seeded upstream images."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        digests: dict[str, str] = {}
        for registry, images in self._upstreams().values():
            registry.start()
            digests.update(seed_images(registry.url, images))
        self.nexus().start()
        (self.root / "digests.json").write_text(json.dumps(digests, indent=2))
        return digests

    def down(self) -> None:
        """Stop every part this homelab started (also from another process)."""
        NexusDoubleProcess.stop_pidfile(self.root / "nexus")
        for registry, _ in self._upstreams().values():
            RegistryServer.stop_from_pid_file(registry.state_dir)

    def stack_config(self, stage: int = 1) -> dict[str, Any]:
        """Plain (non-secret) settings of a stack that targets this homelab."""
        upstreams = self._upstreams()
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
            },
        }

    def write_stack_file(self, project_dir: Path, stack: str, stage: int = 1) -> Path:
        """Pulumi.<stack>.yaml with the plain settings; secrets are set through the engine."""
        path = project_dir / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump({"config": self.stack_config(stage)}, sort_keys=False))
        return path
