"""The real engine, offline: preview -> up -> no-op preview -> refresh -> history -> destroy."""

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.engine.harness import (
    REQUIRED_BINARIES,
    TOOLS_BIN,
    can_isolate_network,
    missing_binaries,
    offline_env,
    program_copy,
    run_isolated,
    stack,
)
from tests.engine.smoke import SMOKE_PROGRAM, TOPOLOGY, configure

pytestmark = pytest.mark.engine


def test_toolchain_has_every_pinned_binary():
    assert missing_binaries() == [], f"run `make setup`: missing in {TOOLS_BIN}"
    assert can_isolate_network(), "unshare --net is needed to prove the engine stays offline"


def test_smoke_program_runs_the_whole_lifecycle_with_no_network(tmp_path):
    started = time.monotonic()
    env = {**os.environ, **offline_env(tmp_path / "outer")}
    ran = run_isolated([sys.executable, "-m", "tests.engine.smoke", str(tmp_path)], env, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())

    assert report["preview"] == {"create": 4}  # stack, topology edit, renderer, service
    assert report["up"]["result"] == "succeeded"
    assert report["outputs"]["serviceName"] == "nexus-docker-group"
    assert any("nodePort: 30083" in m for m in report["manifests_after_up"]), report["manifests_after_up"]
    assert (
        'buildcache_ref: "nexus.nexus.svc:8082/fractalops/buildcache"   # CT113 build cache'
        in report["topology_after_up"]
    )
    assert report["second_preview"] == {"same": 4}
    assert report["refresh"] == "succeeded"
    assert [h["kind"] for h in report["history"][:2]] == ["refresh", "update"]
    assert report["destroy"]["result"] == "succeeded"
    assert report["topology_after_destroy"] == TOPOLOGY
    assert report["manifests_after_destroy"] == []
    print(f"\nsmoke lifecycle in a network namespace: {time.monotonic() - started:.1f}s")


def toolchain_without(tmp_path: Path, left_out: str) -> Path:
    """A tools folder with every pinned binary but `left_out`. The CLI also looks for
    plugins beside its own (resolved) path, so it is copied, not linked."""
    partial = tmp_path / "partial-tools" / "bin"
    partial.mkdir(parents=True)
    for name in REQUIRED_BINARIES:
        if name == "pulumi":
            shutil.copy2(TOOLS_BIN / name, partial / name)
        elif name != left_out:
            os.symlink(TOOLS_BIN / name, partial / name)
    return partial


def test_missing_provider_binary_fails_the_preview(tmp_path):
    tools = toolchain_without(tmp_path, "pulumi-resource-kubernetes")
    env = {"PATH": f"{tools}:/usr/bin:/bin"}
    project = program_copy(tmp_path, SMOKE_PROGRAM)
    with stack(project, "missing", tmp_path / "state", env=env, tools_bin=tools) as st:
        configure(st, tmp_path)
        with pytest.raises(auto.CommandError, match="kubernetes"):
            st.preview()


def test_plugin_download_attempt_fails_fast_instead_of_hanging(tmp_path):
    """With acquisition allowed and a plugin missing, the engine goes online: it must fail."""
    tools = toolchain_without(tmp_path, "pulumi-resource-kubernetes")
    env = {"PATH": f"{tools}:/usr/bin:/bin", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "false"}
    started = time.monotonic()
    project = program_copy(tmp_path, SMOKE_PROGRAM)
    with stack(project, "online", tmp_path / "state", env=env, tools_bin=tools) as st:
        configure(st, tmp_path)
        with pytest.raises(auto.CommandError, match="kubernetes"):
            st.preview()
    assert time.monotonic() - started < 120
