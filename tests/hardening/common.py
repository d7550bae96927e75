"""What the hardening tests share: a snapshot of everything the program could change
(Nexus objects, every file on every node, the topology file)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.homelab.lab import Homelab


def k3s_files(lab: Homelab) -> dict[str, bytes]:
    """Every file in every node's /etc/rancher/k3s: registries.yaml, backups, markers."""
    return {
        f"{node.name}:{path.name}": path.read_bytes()
        for node in lab.nodes()
        for path in sorted(node.path("/etc/rancher/k3s").iterdir())
        if path.is_file()
    }


def registries_files(lab: Homelab) -> dict[str, str]:
    return {node.name: node.registries_yaml.read_text() for node in lab.nodes()}


def nexus_objects(lab: Homelab) -> dict[str, Any]:
    auth = ("admin", lab.secrets()["nexusAdminPassword"])
    with httpx.Client(
        base_url=f"{lab.nexus_url}/service/rest", auth=auth, timeout=10, trust_env=False
    ) as api:
        return {
            path: api.get(path).json()
            for path in (
                "/v1/repositories",
                "/v1/security/users",
                "/v1/security/roles",
                "/v1/security/realms/active",
            )
        }


def snapshot(lab: Homelab) -> dict[str, Any]:
    """Everything the program could have changed."""
    return {
        "nexus": nexus_objects(lab),
        "k3s files": k3s_files(lab),
        "topology": lab.topology_path.read_bytes(),
    }
