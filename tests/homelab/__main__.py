"""`python -m tests.homelab up|down|status`: the testbed homelab behind `make testbed-up/down`.

`up` starts a fresh homelab (lab 20) under .testbed/ (stopping and wiping an old one), creates the stack `testbed` on a file
backend in .testbed/state with settings and secrets that target it, and writes
.testbed/env (0600) to `source`: PATH, the Pulumi variables, the passphrase, endpoints.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from pulumi import automation as auto

from tests.engine.harness import ROOT, TOOLS_BIN, VENV_PYTHON
from tests.engine.lab_stack import set_secrets
from tests.homelab.addresses import TESTBED_LAB
from tests.homelab.lab import Homelab, write_private

TESTBED = ROOT / ".testbed"
STACK = "testbed"


def environment(lab: Homelab) -> dict[str, str]:
    no_proxy = ",".join(["127.0.0.0/8", "localhost", "::1", *lab.addresses.all_hosts()])
    return {
        "PATH": f"{TOOLS_BIN}:{VENV_PYTHON.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PULUMI_HOME": str(ROOT / ".pulumi-home"),
        "PULUMI_BACKEND_URL": f"file://{TESTBED / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": lab.secrets()["passphrase"],
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_PYTHON_CMD": str(VENV_PYTHON),
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
        "KUBECONFIG": str(lab.kube().kubeconfig_path),
        "HOMELAB_NEXUS_URL": lab.nexus_url,
        "HOMELAB_DOCKER_GROUP_URL": lab.docker_group_url,
        "HOMELAB_UPSTREAM_DOCKERHUB": f"http://{lab.addresses.upstream_dockerhub}:5000",
        "HOMELAB_UPSTREAM_GHCR": f"http://{lab.addresses.upstream_ghcr}:5000",
    }


def up() -> None:
    lab = Homelab(TESTBED, TESTBED_LAB)
    # The doubles keep their state in memory: a new homelab starts with a new stack too.
    lab.down()
    shutil.rmtree(TESTBED, ignore_errors=True)
    digests = lab.up()
    env = environment(lab)
    (TESTBED / "state").mkdir(exist_ok=True)
    lab.write_stack_file(ROOT, STACK)
    command = auto.PulumiCommand(root=str(TOOLS_BIN.parent))
    workspace = auto.LocalWorkspace(work_dir=str(ROOT), env_vars=env, pulumi_command=command)
    st = auto.Stack.create_or_select(STACK, workspace)
    set_secrets(st, lab)
    workspace.select_stack(STACK)
    lines = [f"export {k}={json.dumps(v)}" for k, v in env.items()]
    write_private(TESTBED / "env", "\n".join(lines) + "\n")
    print(
        f"homelab up (lab {TESTBED_LAB}): Nexus double {lab.nexus_url}, docker-group {lab.docker_group_url}"
    )
    print(f"seeded upstream images: {', '.join(sorted(digests))}")
    print(f"stack '{STACK}' targets it. Next: source .testbed/env && pulumi preview")


def down() -> None:
    Homelab(TESTBED, TESTBED_LAB).down()
    print("homelab down: nothing of it is running")


if __name__ == "__main__":
    commands = {"up": up, "down": down}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit(f"usage: python -m tests.homelab {'|'.join(commands)}")
    commands[sys.argv[1]]()
