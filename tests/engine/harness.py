"""Drives the real Pulumi engine (Automation API) offline, on a throw-away file backend."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pulumi import automation as auto

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = ROOT / ".tools" / "bin"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

# pulumi-resource-command is not here: the Go module proxy serves no version of
# github.com/pulumi/pulumi-command/provider (see README, "Toolchain").
REQUIRED_BINARIES = (
    "pulumi",
    "pulumi-language-python",
    "pulumi-language-python-exec",
    "pulumi-resource-pulumi-python",
    "pulumi-resource-kubernetes",
)

# A closed port on loopback: any HTTP(S) request the engine or a plugin makes to the
# outside fails at once instead of hanging, and the operation errors loudly.
NO_INTERNET_PROXY = "http://127.0.0.1:9"
TEST_PASSPHRASE = "local-test-stack-only"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def missing_binaries() -> list[str]:
    return [b for b in REQUIRED_BINARIES if not os.access(TOOLS_BIN / b, os.X_OK)]


def offline_env(state_dir: Path, local_hosts: Sequence[str] = ()) -> dict[str, str]:
    """Environment for the engine: pinned tools only, no network, local backend.
    `local_hosts` are reached directly (httpx takes addresses in NO_PROXY, not ranges)."""
    no_proxy = ",".join(["127.0.0.0/8", "localhost", "::1", *local_hosts])
    home = state_dir / "pulumi-home"
    home.mkdir(parents=True, exist_ok=True)
    backend = state_dir / "backend"
    backend.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{TOOLS_BIN}:{VENV_PYTHON.parent}:{SYSTEM_PATH}",
        "HOME": str(state_dir),
        "PULUMI_HOME": str(home),
        "PULUMI_BACKEND_URL": f"file://{backend}",
        "PULUMI_CONFIG_PASSPHRASE": TEST_PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_PYTHON_CMD": str(VENV_PYTHON),
        "HTTP_PROXY": NO_INTERNET_PROXY,
        "HTTPS_PROXY": NO_INTERNET_PROXY,
        "http_proxy": NO_INTERNET_PROXY,
        "https_proxy": NO_INTERNET_PROXY,
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }


def run_isolated(
    argv: list[str], env: dict[str, str], timeout: float, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run `argv` in a network namespace of its own with only loopback up: nothing outside
    this machine can be reached from there, so any network attempt fails immediately."""
    return subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def can_isolate_network() -> bool:
    return run_isolated(["true"], {"PATH": SYSTEM_PATH}, timeout=10).returncode == 0


@contextmanager
def stack(
    project_dir: Path,
    name: str,
    state_dir: Path,
    *,
    env: dict[str, str] | None = None,
    tools_bin: Path = TOOLS_BIN,
    local_hosts: Sequence[str] = (),
) -> Iterator[auto.Stack]:
    """A new stack of the program in `project_dir`; its backend is removed afterwards."""
    env_vars = {**offline_env(state_dir, local_hosts), **(env or {})}
    command = auto.PulumiCommand(root=str(tools_bin.parent))
    ws = auto.LocalWorkspace(work_dir=str(project_dir), env_vars=env_vars, pulumi_command=command)
    st = auto.Stack.create(name, ws)
    try:
        yield st
    finally:
        shutil.rmtree(state_dir / "backend", ignore_errors=True)


def program_copy(tmp_path: Path, source: Path = ROOT, stack_files: tuple[str, ...] = ()) -> Path:
    """A Pulumi program (by default the cutover program) in a folder of its own, so the
    stack config files that tests write stay out of the repo. Its packages come from the
    editable install in .venv."""
    project = tmp_path / "program"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py", *stack_files):
        shutil.copy2(source / name, project / name)
    (project / ".venv").symlink_to(ROOT / ".venv")
    return project


def state_at_rest(state_dir: Path) -> str:
    """Every file the file backend keeps (checkpoints, history, backups), as one text."""
    backend = state_dir / "backend"
    return "\n".join(p.read_text(errors="replace") for p in sorted(backend.rglob("*")) if p.is_file())


def set_settings(st: auto.Stack, settings: Mapping[str, Any]) -> None:
    """Plain stack settings (as `Homelab.stack_config` gives them), objects as JSON."""
    for key, value in settings.items():
        st.set_config(key, auto.ConfigValue(value if isinstance(value, str) else json.dumps(value)))
