"""What the hardening tests share: a stack on a homelab, and a snapshot of everything the
program could change (Nexus objects, every file on every node, the topology file)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from pulumi import automation as auto

from tests.engine.harness import program_copy, set_settings, stack
from tests.homelab.lab import NODES, Homelab

NAMES = [name for name, _, _ in NODES]
SECRET_KEYS = ("nexusAdminPassword", "pullPassword", "pushPassword")


@contextmanager
def homelab(root: Path, lab: int) -> Iterator[Homelab]:
    lab_ = Homelab(root, lab)
    try:
        lab_.up()
        yield lab_
    finally:
        lab_.down()


@contextmanager
def lab_stack(lab: Homelab, tmp_path: Path, name: str, stage: int, **settings: Any) -> Iterator[auto.Stack]:
    """A stack of the cutover program targeting `lab`, every node on legacy, not applied."""
    project = program_copy(tmp_path)
    with stack(project, name, tmp_path / "state", local_hosts=lab.addresses.all_hosts()) as st:
        lab.write_stack_file(project, name, stage=stage)
        set_settings(st, {f"nexus-cutover:{k}": v for k, v in settings.items()})
        for key in SECRET_KEYS:
            st.set_config(f"nexus-cutover:{key}", auto.ConfigValue(lab.secrets()[key], secret=True))
        yield st


def set_targets(st: auto.Stack, lab: Homelab, stage: int, targets: dict[str, str]) -> None:
    set_settings(st, lab.stack_config(stage, targets))


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
