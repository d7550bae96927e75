"""Secrets never leak: after a full cutover and its rollback, search everything the run
left or showed for every configured secret, raw and base64 (alone and as the user:password
of a Basic header). Allowed: only node files that are 0600 and root-owned (k3s keeps the
mirror credentials in registries.yaml and containerd's config.toml by design), and the
homelab's own secret store (0600), which stands for the operator's vault, and the Nexus
double's admin password file (0600), which stands for Nexus's own."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.harness import set_settings
from tests.engine.lab_stack import lab_stack, running_homelab, set_targets, stack_cli
from tests.homelab.lab import NODE_NAMES, Homelab

pytestmark = pytest.mark.engine

LEAKS_LAB = 42
USERS = {"nexusAdminPassword": "admin", "pullPassword": "shim-puller", "pushPassword": "fractalops-ci"}


def forms(lab: Homelab) -> dict[str, bytes]:
    """name -> bytes to look for."""
    found: dict[str, bytes] = {}
    for key, user in USERS.items():
        value = lab.secrets()[key]
        found[key] = value.encode()
        found[f"{key} (base64)"] = base64.b64encode(value.encode())
        found[f"{key} (Basic {user}:...)"] = base64.b64encode(f"{user}:{value}".encode())
    return found


class CommandLines:
    """Every process command line seen while it runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    try:
                        self.seen.add((proc / "cmdline").read_bytes())
                    except OSError:
                        continue

    def __enter__(self) -> CommandLines:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Homelab]:
    with running_homelab(tmp_path_factory.mktemp("leaks-lab"), LEAKS_LAB) as lab_:
        yield lab_


def test_no_secret_in_state_output_logs_command_lines_or_loose_files(lab, tmp_path, hardening):
    outputs: list[str] = []
    with CommandLines() as command_lines, lab_stack(lab, tmp_path, "leaks", stage=3) as st:
        set_settings(st, {"nexus-cutover:maxNodeChangesPerUp": 6})
        outputs.append(st.up().stdout)
        set_targets(st, lab, 3, dict.fromkeys(NODE_NAMES, "nexus"))
        outputs.append(st.preview(diff=True).stdout)
        outputs.append(stack_cli(st, "preview", "--json", "--diff"))
        outputs.append(st.up().stdout)  # the full cutover
        set_targets(st, lab, 3, dict.fromkeys(NODE_NAMES, "legacy"))
        outputs.append(stack_cli(st, "up", "--yes", "--json", "--skip-preview"))  # and its rollback
        outputs.append(st.refresh().stdout)
        for args in (
            ("stack", "export"),
            ("stack", "history", "--json"),
            ("stack", "output", "--json"),
            ("config",),
        ):
            outputs.append(stack_cli(st, *args))
        # Read before destroy: destroying the stack removes its checkpoint and backups.
        state_paths = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
        state_paths.append(Path(st.workspace.work_dir) / "Pulumi.leaks.yaml")
        state_files = {p: p.read_bytes() for p in state_paths}
        st.destroy()

    hits: list[str] = []
    looked = {
        "outputs": len(outputs),
        "command lines": len(command_lines.seen),
        "state files": len(state_files),
        "files": 0,
    }
    for name, needle in forms(lab).items():
        hardening.tried("secret leaks", name)
        hits += [
            f"{name} in command output #{i}" for i, text in enumerate(outputs) if needle in text.encode()
        ]
        hits += [f"{name} in a command line" for line in command_lines.seen if needle in line]
        hits += [f"{name} in {p}" for p, data in state_files.items() if needle in data]
    node_roots = [lab.root / "nodes" / name for name in NODE_NAMES]
    # The operator's vault, and the Nexus double's own admin password file (real Nexus
    # keeps one too, admin.password in its work dir): both must be 0600.
    allowed_stores = {lab.root / "secrets.json", lab.nexus().password_file}
    for store in allowed_stores:
        assert os.stat(store).st_mode & 0o777 == 0o600, store
    for path in lab.root.rglob("*"):
        if not path.is_file() or path.is_symlink() or path in allowed_stores:
            continue
        looked["files"] += 1
        data = path.read_bytes()
        leaked = [name for name, needle in forms(lab).items() if needle in data]
        if not leaked:
            continue
        info = path.stat()
        on_node = any(root in path.parents for root in node_roots)
        if not (on_node and info.st_mode & 0o777 == 0o600 and info.st_uid == 0):
            hits += [
                f"{name} in {path} (mode {info.st_mode & 0o777:o}, uid {info.st_uid})" for name in leaked
            ]
    assert not hits, "\n".join(hits)
    for name in forms(lab):
        hardening.passed("secret leaks", name, f"0 hits in {looked}")
