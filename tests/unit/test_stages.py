"""Stage gating, Step 2/4/5 settings, the legacy-reference scanner and client settings."""

import pytest

from components.nexus_repos import package_mirrors
from components.settings import parse_settings
from providers.legacy_references import find_references, retirement_problems, scan
from tests.unit.test_settings import problems_of, valid


def at_stage(stage, **extra):
    values = valid() | {"stage": stage, "topology": {"path": "/srv/platform/topology.yaml"}} | extra
    if stage >= 5:
        for n in values["nodes"]:
            n["target"] = "nexus"
    return values


def test_runbook_defaults_for_exposure_build_cache_and_retirement():
    settings = parse_settings(at_stage(4))
    assert settings.exposure.node_port == 30083
    assert settings.exposure.namespace == "nexus"
    assert dict(settings.exposure.selector) == {"app": "nexus"}
    assert settings.topology.edits == {
        "registry_cache.buildcache_ref": "nexus-docker.nexus.svc:8082/fractalops/buildcache"
    }
    # The topology file is always scanned; the legacy host comes from the legacy endpoints.
    assert settings.retirement.scan_paths == ("/srv/platform/topology.yaml",)
    assert settings.retirement.patterns == ("10.10.10.150", "CT113")


def test_node_port_outside_the_kubernetes_range_is_refused():
    problems = problems_of(valid() | {"exposure": {"nodePort": 8083}})
    assert problems == [
        "nexus-cutover:exposure.nodePort: 8083 is not allowed (allowed: a whole number 30000-32767)"
    ]


def test_node_port_equal_to_a_connector_port_is_refused():
    values = valid() | {"repos": {"docker-group": {"httpPort": 30083}}}
    assert problems_of(values) == [
        "nexus-cutover:exposure.nodePort: 30083 is also a connector port: NodePort and pod ports must differ"
    ]


def test_build_cache_stage_needs_the_topology_path():
    values = valid() | {"stage": 4}
    assert problems_of(values) == [
        "nexus-cutover:topology.path: '' must be the absolute path of the topology file (stage 4 edits it)"
    ]


def test_retirement_stage_refuses_while_a_node_is_not_on_nexus():
    values = at_stage(5)
    values["nodes"][1]["target"] = "legacy"
    assert problems_of(values) == [
        "nexus-cutover:stage: 5 retires the legacy cache, but node pve1 still targets legacy: "
        "move every node to nexus (stage 3) first"
    ]


def test_lower_stages_do_not_need_later_settings():
    settings = parse_settings(valid() | {"stage": 3})
    assert settings.topology.path == ""


def test_apt_ubuntu_only_when_enabled_and_pip_apt_client_settings():
    default = parse_settings(valid())
    names = [r.name for r in default.repos]
    assert "pypi-group" in names and "apt-debian" in names and "apt-ubuntu" not in names
    assert package_mirrors(default) == {
        "pypi-group (pip)": "pip config set global.index-url http://127.0.0.1:8081/repository/pypi-group/simple/",
        "pypi-group (uv)": "UV_DEFAULT_INDEX=http://127.0.0.1:8081/repository/pypi-group/simple/",
        "apt-debian (apt)": "deb http://127.0.0.1:8081/repository/apt-debian/ trixie main",
    }
    enabled = parse_settings(valid() | {"repos": {"apt-ubuntu": {"enabled": True}}})
    assert package_mirrors(enabled)["apt-ubuntu (apt)"] == (
        "deb http://127.0.0.1:8081/repository/apt-ubuntu/ noble main"
    )


def test_scanner_matches_whole_addresses_and_names_only():
    text = "a: 10.10.10.150:5000\nb: 10.10.10.1500\nc: 110.10.10.150\n# CT113 LXC\nd: CT1130\n"
    assert find_references(text, ["10.10.10.150", "CT113"]) == [
        (1, "a: 10.10.10.150:5000"),
        (4, "# CT113 LXC"),
    ]


def test_scan_lists_file_and_line_and_skips_binaries(tmp_path):
    docs = tmp_path / "docs"
    (docs / "ops").mkdir(parents=True)
    (docs / "ops" / "cache.md").write_text("intro\nuse http://10.10.10.150:5000\n")
    (docs / "logo.png").write_bytes(b"\x89PNG\0 10.10.10.150")
    (docs / "clean.md").write_text("all on nexus\n")
    leftovers, unreadable = scan([str(docs), str(tmp_path / "missing.yaml")], ["10.10.10.150"])
    assert leftovers == [f"{docs}/ops/cache.md:2: use http://10.10.10.150:5000"]
    assert unreadable == [
        f"{tmp_path}/missing.yaml: cannot be read (No such file or directory); fix retirement.scanPaths"
    ]


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({"target": "legacy", "servedBy": "x"}, "target 'legacy'"),
        ({"target": "nexus", "servedBy": ""}, "last verification: none"),
    ],
)
def test_retirement_waits_for_every_node_verified_on_nexus(state, reason):
    (problem,) = retirement_problems([], {"pve2": state})
    assert problem.startswith("node pve2 is not verified on Nexus") and reason in problem


def test_retirement_lists_leftovers_and_passes_when_clean():
    verified = {"pve1": {"target": "nexus", "servedBy": "http://127.0.0.1:30083 serves sha256:…"}}
    assert retirement_problems([], verified) == []
    (problem,) = retirement_problems(["/srv/t.yaml:3: host_ip: 10.10.10.150"], verified)
    assert "1 line(s) still name the legacy cache" in problem and "/srv/t.yaml:3:" in problem
