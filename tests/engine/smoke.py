"""The smoke program's lifecycle, run by its test and by `make demo` until the homelab exists.

`python -m tests.engine.smoke WORKDIR` runs preview -> up -> preview -> refresh -> history
-> destroy on a throw-away file backend under WORKDIR and writes WORKDIR/report.json. The
test runs it inside a network namespace of its own (only loopback up), where the engine
and every plugin it starts cannot reach anything outside this machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from tests.engine.harness import program_copy, stack

SMOKE_PROGRAM = Path(__file__).parent / "smoke_program"
TOPOLOGY = """\
# human-written; keep this comment
registry_cache:
  buildcache_ref: "10.10.10.150:5001/fractalops/buildcache"   # CT113 build cache
"""


def configure(st: auto.Stack, workdir: Path) -> tuple[Path, Path]:
    """Point the smoke stack at a fresh topology file and render folder under `workdir`."""
    topology = workdir / "topology.yaml"
    topology.write_text(TOPOLOGY)
    render_dir = workdir / "rendered"
    st.set_config("topologyPath", auto.ConfigValue(str(topology)))
    st.set_config("renderDir", auto.ConfigValue(str(render_dir)))
    return topology, render_dir


def _manifests(render_dir: Path) -> list[str]:
    return [m.read_text() for m in sorted(render_dir.rglob("*.yaml"))]


def run_lifecycle(workdir: Path) -> dict[str, Any]:
    """Every step of the lifecycle, with what an observer needs to judge it."""
    report: dict[str, Any] = {}
    project = program_copy(workdir, SMOKE_PROGRAM)
    with stack(project, "smoke", workdir / "state") as st:
        topology, render_dir = configure(st, workdir)
        report["topology_before"] = topology.read_text()
        report["preview"] = st.preview().change_summary
        up = st.up()
        report["up"] = {"result": up.summary.result, "changes": up.summary.resource_changes}
        report["outputs"] = {k: v.value for k, v in up.outputs.items()}
        report["manifests_after_up"] = _manifests(render_dir)
        report["topology_after_up"] = topology.read_text()
        report["second_preview"] = st.preview().change_summary
        # Render mode has no cluster to read back (its Read fails "cluster unreachable"), so
        # the refresh reads back our own resource: the engine's refresh path end to end.
        report["refresh"] = st.refresh(target=[up.outputs["topologyUrn"].value]).summary.result
        report["history"] = [{"kind": h.kind, "result": h.result} for h in st.history()]
        destroy = st.destroy()
        report["destroy"] = {"result": destroy.summary.result, "changes": destroy.summary.resource_changes}
        report["topology_after_destroy"] = topology.read_text()
        report["manifests_after_destroy"] = _manifests(render_dir)
    return report


if __name__ == "__main__":
    target = Path(sys.argv[1])
    result = run_lifecycle(target)
    (target / "report.json").write_text(json.dumps(result, indent=2))
