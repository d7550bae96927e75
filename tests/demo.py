"""`make demo`: the whole runbook on the local homelab, with the real engine.

Stage by stage, a preview then an up each: Nexus repos, the NodePort, the canary node then
the other five (one per up, as the canary rule allows), one node rolled back by config and
forward again, the build cache, the retirement guard refusing while references to the
legacy cache are left, then passing. Prints the stack history and a table of the nodes.

The homelab (.testbed, the same one `make testbed-up` starts) is started if it is not
running, and stopped again at the end if the demo started it.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from pulumi import automation as auto

from tests.engine.harness import NO_INTERNET_PROXY, ROOT, TOOLS_BIN, missing_binaries, set_settings
from tests.homelab import __main__ as testbed
from tests.homelab.addresses import TESTBED_LAB
from tests.homelab.lab import NODE_NAMES, Homelab


class Demo:
    def __init__(self, lab: Homelab) -> None:
        env = {
            **testbed.environment(lab),
            "HTTP_PROXY": NO_INTERNET_PROXY,
            "HTTPS_PROXY": NO_INTERNET_PROXY,
        }
        command = auto.PulumiCommand(root=str(TOOLS_BIN.parent))
        workspace = auto.LocalWorkspace(work_dir=str(ROOT), env_vars=env, pulumi_command=command)
        self.lab = lab
        self.stack = auto.Stack.select(testbed.STACK, workspace)
        self.ups = 0
        self.targets = dict.fromkeys(NODE_NAMES, "legacy")

    def step(self, title: str, stage: int) -> dict[str, Any]:
        """Set the stage and the node targets, preview, then up; returns the outputs."""
        set_settings(self.stack, self.lab.stack_config(stage, self.targets))
        preview = self.stack.preview()
        planned = {k: v for k, v in preview.change_summary.items() if k != "same"}
        started = time.monotonic()
        up = self.stack.up()
        self.ups += 1
        changed = {k: v for k, v in (up.summary.resource_changes or {}).items() if k != "same"}
        print(f"  {title:46} preview {planned or 'no changes'}; up {changed or 'no changes'}", end="")
        print(f" ({time.monotonic() - started:.1f}s)")
        return {k: v.value for k, v in up.outputs.items()}

    def refused(self, stage: int) -> str:
        set_settings(self.stack, self.lab.stack_config(stage, self.targets))
        try:
            self.stack.preview()
        except auto.CommandError as err:
            return str(err)
        raise SystemExit("demo: the retirement guard let stage 5 through with references left")


def homelab_running(lab: Homelab) -> bool:
    if not (testbed.TESTBED / "env").exists():
        return False
    try:
        return httpx.get(f"{lab.nexus_url}/service/rest/v1/status", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def leftovers(message: str) -> list[str]:
    root = str(testbed.TESTBED)
    return [line.strip() for line in message.splitlines() if line.strip().startswith(root)]


def run(demo: Demo) -> dict[str, Any]:
    lab = demo.lab
    print("Step 1 - Nexus repos, security, pull and push checks")
    demo.step("stage 1: repos", 1)
    print("Step 2 - NodePort 30083 -> docker-group, checked from every node")
    demo.step("stage 2: exposure", 2)
    print("Step 3 - nodes, the canary first, one per up")
    demo.step("stage 3: nodes managed, all still on legacy", 3)
    for name in NODE_NAMES:
        demo.targets[name] = "nexus"
        demo.step(f"{name} -> nexus", 3)
    demo.targets["pve2"] = "legacy"
    demo.step("roll pve2 back by config", 3)
    demo.targets["pve2"] = "nexus"
    demo.step("pve2 forward again", 3)
    print("Step 4 - build cache and image prefixes in the topology file")
    demo.step("stage 4: topology repointed", 4)
    print("Step 5 - retire CT113")
    found = leftovers(demo.refused(5))
    print(f"  preview refused: {len(found)} line(s) still name the legacy cache:")
    for line in found:
        print(f"    {line}")
    # What the operator does by hand: the comment and the doc now describe Nexus.
    topology = lab.topology_path.read_text()
    lab.topology_path.write_text(topology.replace("registry-cache LXC CT113", "Nexus docker connectors"))
    doc = lab.docs_path / "operations" / "docker-cache.md"
    doc.write_text("# Docker cache\n\nNodes pull through Nexus (docker-group, NodePort 30083).\n")
    print("  (operator repoints the comment and the doc)")
    return demo.step("stage 5: retirement guard", 5)


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def report(demo: Demo, outputs: dict[str, Any]) -> None:
    rows = [["node", "containerd", "target", "verified mirror", "digest", "verified at"]]
    containerds = {node.name: node.containerd for node in demo.lab.nodes()}  # the homelab's, not the stack's
    for name, node in outputs["nodes"].items():
        mirror = node["servedBy"].split(" serves ")[0]
        row = [
            name,
            containerds[name],
            node["target"],
            mirror,
            node["verifiedDigest"][:19],
            node["verifiedAt"],
        ]
        rows.append(row)
    print("\nNodes:")
    print(table(rows))
    print("\nDecommission checklist (this program does not destroy CT113):")
    for item in outputs["decommissionChecklist"]:
        print(f"  - {item}")
    print("\nStack history (newest first):")
    history = demo.stack.history(page_size=100, show_secrets=False)
    for number, entry in zip(range(len(history), 0, -1), history, strict=True):
        changes = {k: v for k, v in (entry.resource_changes or {}).items() if k != "same"}
        print(f"  #{number:<3} {entry.kind:8} {entry.result:10} {changes or ''}")


def main() -> None:
    if missing := missing_binaries():
        raise SystemExit(f"missing toolchain binaries {missing}: run make setup")
    started = time.monotonic()
    lab = Homelab(testbed.TESTBED, TESTBED_LAB)
    reuse = homelab_running(lab)
    if reuse:
        print("homelab already running: the demo uses it and its stack 'testbed'")
        Demo(lab).stack.destroy()  # nodes back to their original files before starting over
    else:
        testbed.up()
    try:
        demo = Demo(lab)
        report(demo, run(demo))
    finally:
        if not reuse:
            testbed.down()
    left = "the homelab is still running (make testbed-down stops it)" if reuse else "nothing left running"
    print(f"\ndemo finished in {time.monotonic() - started:.1f}s with {demo.ups} pulumi up runs; {left}")


if __name__ == "__main__":
    main()
