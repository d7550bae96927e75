"""The real engine, offline: preview -> up -> no-op preview -> refresh -> history -> destroy."""

import os
import time
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.engine.harness import (
    REQUIRED_BINARIES,
    TOOLS_BIN,
    can_isolate_network,
    missing_binaries,
    stack,
)
from tests.engine.smoke import SMOKE_PROGRAM, TOPOLOGY, configure

pytestmark = pytest.mark.engine


def test_toolchain_has_every_pinned_binary():
    assert missing_binaries() == [], f"run `make setup`: missing in {TOOLS_BIN}"
    assert can_isolate_network(), "unshare --net is needed to prove the engine stays offline"


def test_smoke_program_runs_the_whole_lifecycle_with_no_network(tmp_path):
    started = time.monotonic()
    with stack(SMOKE_PROGRAM, "smoke", tmp_path / "state", isolated=True) as st:
        topology, render_dir = configure(st, tmp_path)

        preview = st.preview()
        assert preview.change_summary == {"create": 4}  # stack, topology edit, renderer, service

        up = st.up()
        assert up.summary.result == "succeeded"
        assert up.outputs["serviceName"].value == "nexus-docker-group"
        manifests = list(render_dir.rglob("*.yaml"))
        assert any("nodePort: 30083" in m.read_text() for m in manifests), manifests
        edited = topology.read_text()
        assert (
            'buildcache_ref: "nexus.nexus.svc:8082/fractalops/buildcache"   # CT113 build cache'
            in edited
        )

        assert st.preview().change_summary == {"same": 4}

        assert st.refresh().summary.result == "succeeded"
        history = st.history()
        assert [h.kind for h in history[:2]] == ["refresh", "update"]

        assert st.destroy().summary.result == "succeeded"
        assert topology.read_text() == TOPOLOGY
        assert not list(render_dir.rglob("*.yaml"))
    print(f"\nsmoke lifecycle: {time.monotonic() - started:.1f}s")


def toolchain_without(tmp_path: Path, left_out: str) -> dict[str, str]:
    """Engine environment whose PATH has every pinned binary but `left_out`."""
    partial = tmp_path / "partial-tools"
    partial.mkdir()
    for name in REQUIRED_BINARIES:
        if name != left_out:
            os.symlink(TOOLS_BIN / name, partial / name)
    return {"PATH": f"{partial}:/usr/bin:/bin"}


def test_missing_provider_binary_fails_the_preview(tmp_path):
    env = toolchain_without(tmp_path, "pulumi-resource-kubernetes")
    with stack(SMOKE_PROGRAM, "missing", tmp_path / "state", env=env) as st:
        configure(st, tmp_path)
        with pytest.raises(auto.CommandError, match="kubernetes"):
            st.preview()


def test_plugin_download_attempt_fails_fast_instead_of_hanging(tmp_path):
    """With acquisition allowed and a plugin missing, the engine goes online: it must fail."""
    env = toolchain_without(tmp_path, "pulumi-resource-kubernetes")
    env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "false"
    started = time.monotonic()
    with stack(SMOKE_PROGRAM, "online", tmp_path / "state", isolated=True, env=env) as st:
        configure(st, tmp_path)
        with pytest.raises(auto.CommandError, match="kubernetes"):
            st.preview()
    assert time.monotonic() - started < 120
