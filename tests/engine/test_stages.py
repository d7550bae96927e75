"""The whole runbook as stages, through the real engine on the homelab: forward stage by
stage, the retirement guard refusing while references are left, then back down to stage 1
with every node file and the topology file byte-identical to what they were."""

import json
from collections.abc import Iterator

import pytest
from pulumi import automation as auto

from tests.engine.harness import set_settings, state_at_rest
from tests.engine.lab_stack import lab_stack, running_homelab
from tests.homelab.lab import NODE_NAMES, Homelab

pytestmark = pytest.mark.engine

STAGES_LAB = 25


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Homelab]:
    with running_homelab(tmp_path_factory.mktemp("stages-lab"), STAGES_LAB) as homelab:
        yield homelab


def node_files(lab: Homelab) -> dict[str, str]:
    return {node.name: node.registries_yaml.read_text() for node in lab.nodes()}


def set_stage(st: auto.Stack, lab: Homelab, stage: int, target: str) -> None:
    set_settings(st, lab.stack_config(stage, dict.fromkeys(NODE_NAMES, target)))


def service_ports(lab: Homelab, name: str) -> dict[str, int] | None:
    """name -> (nodePort or port) of a Service in the nexus namespace, None if absent."""
    with lab.kube().client() as api:
        got = api.get(f"/api/v1/namespaces/nexus/services/{name}")
    if got.status_code == 404:
        return None
    return {p.get("name", ""): p.get("nodePort", p["port"]) for p in got.json()["spec"]["ports"]}


def no_changes(st: auto.Stack) -> bool:
    return set(st.preview().change_summary) == {"same"}


def test_stages_forward_guarded_retirement_and_back_down(lab, tmp_path):
    originals, topology_before = node_files(lab), lab.topology_path.read_text()
    # All six nodes in one update here; the canary rule has tests of its own.
    with lab_stack(lab, tmp_path, "stages", stage=1, maxNodeChangesPerUp=6) as st:
        assert st.up().summary.result == "succeeded"
        apt = st.outputs()["packageMirrors"].value["apt-debian (apt)"]
        assert apt == f"deb {lab.nexus_url}/repository/apt-debian/ trixie main"

        # Stage 2: the NodePort Service, checked from every node before Step 3 may start.
        set_stage(st, lab, 2, "legacy")
        assert st.up().outputs["step2"].value == {"nodePort": 30083}
        assert no_changes(st)
        # On the real API server: the NodePort Service, and the connector ports added to
        # the existing nexus Service beside what it had.
        assert service_ports(lab, "nexus-docker-group-nodeport") == {"docker-group": 30083}
        assert service_ports(lab, "nexus-docker") == {"docker-internal": 8082, "docker-group": 8083}
        assert service_ports(lab, "nexus") == {"http": 8081}  # the platform's: left alone

        # Stage 3: every node on Nexus, verified.
        set_stage(st, lab, 3, "nexus")
        nodes = st.up().outputs["nodes"].value
        assert {n["target"] for n in nodes.values()} == {"nexus"}
        assert all("canaries pulled: 2" in n["servedBy"] for n in nodes.values())

        # Stage 4: only the configured values change in the topology file.
        set_stage(st, lab, 4, "nexus")
        current = st.up().outputs["buildCache"].value
        assert current["registry_cache.buildcache_ref"] == "nexus-docker.nexus.svc:8082/fractalops/buildcache"
        edited = lab.topology_path.read_text()
        assert "# registry-cache LXC CT113" in edited and "k3s_mirror_nodes: [pve-worker0" in edited
        assert "  buildcache_ref: 'nexus-docker.nexus.svc:8082/fractalops/buildcache'\n" in edited
        assert no_changes(st)
        # Rolling Step 4 back writes the topology file back byte for byte.
        set_stage(st, lab, 3, "nexus")
        st.up()
        assert lab.topology_path.read_text() == topology_before
        set_stage(st, lab, 4, "nexus")
        st.up()

        # Stage 5 is refused at preview while lines still name the legacy cache.
        set_stage(st, lab, 5, "nexus")
        with pytest.raises(auto.CommandError) as refused:
            st.preview()
        message = str(refused.value)
        assert f"{lab.topology_path}:3: # registry-cache LXC CT113" in message
        doc = lab.docs_path / "operations" / "docker-cache.md"
        assert (
            f"{doc}:3: Nodes pull through the registry cache at http://{lab.addresses.legacy_cache}"
            in message
        )
        assert "3 line(s) still name the legacy cache" in message
        assert "retirement-guard" not in json.dumps(st.export_stack().deployment)

        # The operator cleans them up; then the guard passes and hands out the checklist.
        lab.topology_path.write_text(edited.replace("registry-cache LXC CT113", "Nexus docker connectors"))
        doc.write_text("# Docker cache\n\nNodes pull through Nexus (docker-group, NodePort 30083).\n")
        checklist = st.up().outputs["decommissionChecklist"].value
        assert checklist[1] == "pct destroy 113 (the LXC and its cache volume)"
        assert no_changes(st)

        # Back down, one stage per up: the guard, the topology, the nodes, the Service.
        for stage in (4, 3, 2, 1):
            set_stage(st, lab, stage, "nexus")
            assert st.up().summary.result == "succeeded"
        assert node_files(lab) == originals
        assert service_ports(lab, "nexus-docker-group-nodeport") is None
        assert service_ports(lab, "nexus-docker") is None
        assert service_ports(lab, "nexus") == {"http": 8081}
        assert lab.topology_path.read_text() == topology_before.replace(
            "registry-cache LXC CT113", "Nexus docker connectors"
        )
        # Lowering the stage never deletes Nexus repos.
        assert set(st.outputs()["step1"].value["repos"]) >= {"docker-group", "pypi-group", "apt-debian"}
        history = st.history(page_size=100, show_secrets=False)
        assert [(h.kind, h.result) for h in history] == [("update", "succeeded")] * 11
        assert lab.secrets()["pullPassword"] not in state_at_rest(tmp_path / "state")
        st.destroy()
