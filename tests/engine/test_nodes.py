"""Step 3 through the real engine on the homelab: six real sshd nodes with k3s stand-ins."""

import json
import re
import statistics
import time
from collections.abc import Iterator

import pytest
from pulumi import automation as auto

from providers.k3s_node import model
from tests.engine.harness import state_at_rest
from tests.engine.lab_stack import lab_stack, running_homelab
from tests.homelab.lab import NODE_NAMES, Homelab
from tests.homelab.nodes import HomelabNode

pytestmark = pytest.mark.engine

NODES_LAB = 24


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Homelab]:
    with running_homelab(tmp_path_factory.mktemp("nodes-lab"), NODES_LAB) as homelab:
        yield homelab


@pytest.fixture
def cutover(lab, tmp_path) -> Iterator[auto.Stack]:
    """A stack at stage 3 with every node on legacy, applied; destroyed afterwards."""
    with lab_stack(lab, tmp_path, "nodes", stage=3) as st:
        st.up()
        st.tmp_path = tmp_path  # type: ignore[attr-defined]
        yield st
        for node in lab.nodes():
            node.clear_faults()
            node.wait_for_jobs()  # a restart left hanging ends here, not in the next test
        st.destroy()


def set_targets(st: auto.Stack, lab: Homelab, targets: dict[str, str], **node_overrides) -> None:
    nodes = lab.stack_config(3, targets)["nexus-cutover:nodes"]
    for node in nodes:
        node.update(node_overrides.get(node["name"], {}))
    st.set_config("nexus-cutover:nodes", auto.ConfigValue(json.dumps(nodes)))


def render(lab: Homelab, target: str) -> str:
    mirror = lab.stack_config()["nexus-cutover:mirror"]
    return model.render(
        target,
        mirror["legacyEndpoints"],
        mirror["nexusEndpoint"],
        "shim-puller",
        lab.secrets()["pullPassword"],
    )


def lab_node(lab: Homelab, name: str) -> HomelabNode:
    return next(n for n in lab.nodes() if n.name == name)


def files(lab: Homelab) -> dict[str, str]:
    return {node.name: node.registries_yaml.read_text() for node in lab.nodes()}


def restarts(lab: Homelab) -> dict[str, int]:
    return {node.name: node.k3s_log().count("Using private registry config file") for node in lab.nodes()}


def test_canary_then_one_node_per_up_rollback_and_destroy(lab, tmp_path):
    originals = files(lab)
    with lab_stack(lab, tmp_path, "cutover", stage=3) as st:
        before = restarts(lab)
        assert st.up().summary.result == "succeeded"
        # Same mirrors as the hand-written files: rewritten in canonical form, no restart.
        assert files(lab) == dict.fromkeys(NODE_NAMES, render(lab, "legacy"))
        assert restarts(lab) == before

        targets: dict[str, str] = {}
        per_node: dict[str, float] = {}
        cutover_started = time.monotonic()
        for name in NODE_NAMES:  # the canary first, then the rest, one per up
            targets[name] = "nexus"
            set_targets(st, lab, targets)
            preview = st.preview(diff=True)
            assert preview.change_summary.get("update") == 2  # the node and the rollout guard
            assert "********" in preview.stdout and lab.secrets()["pullPassword"] not in preview.stdout
            started = time.monotonic()
            up = st.up()
            per_node[name] = time.monotonic() - started
            assert up.summary.result == "succeeded"
            node = lab_node(lab, name)
            assert node.registries_yaml.read_text() == render(lab, "nexus")
            summary = up.outputs["nodes"].value[name]
            assert summary["target"] == "nexus" and "canaries pulled: 2" in summary["servedBy"]
            assert summary["verifiedDigest"].startswith("sha256:")
            canary = [e for e in node.pull_log() if "nexus-cutover/canary" in e["image"]]
            assert canary and all(e["via"] == "mirror" for e in canary)
        total = time.monotonic() - cutover_started
        assert files(lab) == dict.fromkeys(NODE_NAMES, render(lab, "nexus"))
        assert set(st.preview().change_summary) == {"same"}

        # Two nodes at once is refused at preview by the canary rule; nothing changes.
        set_targets(st, lab, {**targets, "pve1": "legacy", "pve2": "legacy"})
        with pytest.raises(auto.CommandError, match="2 nodes would change target in this update"):
            st.up()
        assert files(lab) == dict.fromkeys(NODE_NAMES, render(lab, "nexus"))

        # Roll one node back by config: the legacy file byte for byte, pulls via CT113.
        set_targets(st, lab, {**targets, "pve2": "legacy"})
        assert st.up().summary.result == "succeeded"
        pve2 = lab_node(lab, "pve2")
        assert pve2.registries_yaml.read_text() == render(lab, "legacy")
        last = pve2.pull_log()[-1]
        assert last["via"] == "mirror" and last["served_by"].startswith(lab.addresses.legacy_cache)
        set_targets(st, lab, targets)
        assert st.up().summary.result == "succeeded"

        # A hand edit shows as drift after refresh, and the next up puts the file back.
        worker = lab_node(lab, "pve-worker3")
        worker.write_text(
            "/etc/rancher/k3s/registries.yaml", render(lab, "nexus") + "# edited by hand\n", 0o600
        )
        st.refresh()
        assert st.preview().change_summary.get("update") == 1
        assert st.up().summary.result == "succeeded"
        assert worker.registries_yaml.read_text() == render(lab, "nexus")

        assert lab.secrets()["pullPassword"] not in state_at_rest(tmp_path / "state")
        assert st.destroy().summary.result == "succeeded"
    assert files(lab) == originals  # every node has exactly the file it had before
    print(
        f"\n6-node cutover: total {total:.1f}s; per node median {statistics.median(per_node.values()):.1f}s "
        f"(min {min(per_node.values()):.1f}s, max {max(per_node.values()):.1f}s)"
    )


# Each fires once: the restore that follows must succeed, as it does when the new file
# (not the node) was the problem.
FAULTS = [
    ("restart-fails", {"once": True}, "restart"),
    ("pull-fails", True, "verify"),
    ("ssh-drop", True, "restart"),
    ("restart-hangs", {"once": 30}, "restart"),
]


@pytest.mark.parametrize(("fault", "value", "step"), FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_after_the_write_restores_the_node_and_stops_the_chain(
    lab, cutover, hardening, fault, value, step
):
    hardening.tried("faults", f"node: {fault}")
    before, k3s_before = files(lab), restarts(lab)
    canary = lab_node(lab, "pve-worker0")
    canary.set_fault(fault, value)
    set_targets(
        cutover,
        lab,
        {"pve-worker0": "nexus"},
        **{"pve-worker0": {"timeouts": {"connect": 5, "command": 20, "restart": 5, "pull": 20}}},
    )
    started = time.monotonic()
    with pytest.raises(auto.CommandError) as failed:
        cutover.up()
    took = time.monotonic() - started
    canary.clear_faults()
    message = str(failed.value)
    assert f"node pve-worker0: {step}" in message
    assert "restored byte for byte" in message
    assert files(lab) == before  # the canary as before, later nodes untouched
    later = {n: c for n, c in restarts(lab).items() if n != "pve-worker0"}
    assert later == {n: c for n, c in k3s_before.items() if n != "pve-worker0"}
    restored = re.search(r"active again \(([\d.]+)s\)", message)
    print(f"\n{fault}: up failed after {took:.1f}s; restore took {restored.group(1) if restored else '?'}s")
    # With the fault gone, the same change goes through.
    assert cutover.up().summary.result == "succeeded"
    assert canary.registries_yaml.read_text() == render(lab, "nexus")
    restore = f"{restored.group(1)}s" if restored else "?"
    hardening.passed("faults", f"node: {fault}", f"up failed after {took:.1f}s, node restored in {restore}")


def test_mirror_unreachable_from_the_node_fails_preflight_and_touches_nothing(lab, cutover, hardening):
    hardening.tried("faults", "node: mirror unreachable")
    before, k3s_before = files(lab), restarts(lab)
    canary = lab_node(lab, "pve-worker0")
    canary.set_fault("mirror-unreachable", [f"{lab.addresses.node_port}:30083"])
    set_targets(cutover, lab, {"pve-worker0": "nexus"})
    with pytest.raises(
        auto.CommandError, match=r"node pve-worker0: pre-flight: .*30083 is not reachable from the node"
    ):
        cutover.up()
    canary.clear_faults()
    assert files(lab) == before and restarts(lab) == k3s_before
    hardening.passed("faults", "node: mirror unreachable", "refused in pre-flight, nothing touched")


# What the group stops serving, and what the failed verification then says. containerd
# falls back to the upstream registry either way: for the canary, which only Nexus has, the
# pull fails; for the verify image the pull "works", served by the upstream.
FALLBACKS = {
    "canary": (
        r"^/v2/nexus-cutover/canary/manifests/.*",
        404,
        r"exists only in Nexus, yet the node could not pull it",
    ),
    "verify image": (
        r"^/v2/library/busybox/manifests/.*",
        500,
        r"the mirror does not serve docker.io/library/busybox",
    ),
}


# pve-worker0 pulls with the containerd stand-in, pve1 with the real containerd.
@pytest.mark.parametrize("node", ["pve-worker0", "pve1"])
@pytest.mark.parametrize("what", list(FALLBACKS))
def test_pull_served_only_by_fallback_is_a_failed_verification(lab, cutover, hardening, node, what):
    kind = f"node: {what} only via fallback ({node})"
    hardening.tried("faults", kind)
    path, status, message = FALLBACKS[what]
    nexus = lab.nexus()
    before, pulls_before = files(lab), len(lab_node(lab, node).pull_log())
    nexus.add_fault(path, "status", status=status, port=8083)
    set_targets(cutover, lab, {node: "nexus"})
    try:
        with pytest.raises(auto.CommandError, match=rf"node {node}: verify: .*{message}"):
            cutover.up()
    finally:
        nexus.clear_faults()
    assert files(lab) == before
    if what == "verify image":  # the pull itself "worked": the upstream served it
        pulls = lab_node(lab, node).pull_log()[pulls_before:]
        assert any(e["ok"] and e["via"] == "default-endpoint" and "busybox" in e["image"] for e in pulls), (
            pulls
        )
    hardening.passed("faults", kind, "verification failed, node restored")


def test_changed_host_key_is_refused_and_nothing_is_written(lab, cutover, hardening):
    hardening.tried("faults", "node: host key changed")
    before = files(lab)
    other_key = lab_node(lab, "pve1").host_key_line
    set_targets(cutover, lab, {"pve-worker0": "nexus"}, **{"pve-worker0": {"hostKey": other_key}})
    with pytest.raises(auto.CommandError, match=r"node pve-worker0: connect: .* different host key"):
        cutover.up()
    assert files(lab) == before
    hardening.passed("faults", "node: host key changed", "refused at connect, nothing written")
