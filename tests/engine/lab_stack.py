"""What the engine tests on a homelab share: the homelab for a test module, and stacks of
the cutover program that target it (plain settings in Pulumi.<stack>.yaml, the homelab's
passwords as secrets through the engine)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from components.settings import SECRET_KEYS
from tests.engine.harness import TOOLS_BIN, program_copy, set_settings, stack
from tests.homelab.lab import Homelab


@contextmanager
def running_homelab(root: Path, number: int) -> Iterator[Homelab]:
    lab = Homelab(root, number)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def stack_cli(st: auto.Stack, *args: str, stdin: str | None = None) -> str:
    """The pulumi CLI on this stack, as an operator runs it; its stdout and stderr."""
    done = subprocess.run(
        [str(TOOLS_BIN / "pulumi"), *args, "--stack", st.name, "--non-interactive"],
        cwd=st.workspace.work_dir,
        env=st.workspace.env_vars,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return done.stdout + done.stderr


def set_secrets(st: auto.Stack, lab: Homelab) -> None:
    """The homelab's passwords as stack secrets, given on stdin as an operator types them:
    the Automation API's set_config would put each one on a command line."""
    for key in SECRET_KEYS:
        stack_cli(st, "config", "set", "--secret", f"nexus-cutover:{key}", stdin=lab.secrets()[key])


@contextmanager
def lab_stack(
    lab: Homelab, tmp_path: Path, name: str, stage: int = 1, **settings: Any
) -> Iterator[auto.Stack]:
    """A new stack of the cutover program targeting `lab`, every node on legacy, not applied;
    `settings` are extra `nexus-cutover:` keys."""
    project = program_copy(tmp_path)
    with stack(project, name, tmp_path / "state", local_hosts=lab.addresses.all_hosts()) as st:
        lab.write_stack_file(project, name, stage=stage)
        set_settings(st, {f"nexus-cutover:{k}": v for k, v in settings.items()})
        set_secrets(st, lab)
        yield st


def set_targets(st: auto.Stack, lab: Homelab, stage: int, targets: dict[str, str]) -> None:
    set_settings(st, lab.stack_config(stage, targets))
