import pytest
import yaml

from providers.topology import (
    TopologyError,
    apply_values,
    edits_problems,
    locate,
    read_values,
    restore_sources,
)

TOPOLOGY = """\
# Build & package cache topology (human-written: keep comments and layout)
registry_cache:
  host_ip: 10.10.10.150   # CT113
  ports: {proxy: 5000, buildcache: 5001, ghcr: 5002}
  buildcache_ref: "10.10.10.150:5001/fractalops/buildcache"
  k3s_mirror_nodes:
    - pve-worker0:112
apps:
  langboard:
    # images are built in CI
    build_image_prefix: '10.10.10.150:5001/fractalops'
"""

EDITS = {
    "registry_cache.buildcache_ref": "nexus.nexus.svc:8082/fractalops/buildcache",
    "registry_cache.host_ip": "nexus.nexus.svc",
    "registry_cache.ports.buildcache": 8082,
    "apps.langboard.build_image_prefix": "nexus.nexus.svc:8082/fractalops",
}


def test_apply_changes_only_the_edited_scalars_and_keeps_comments_and_quoting():
    new_text, _ = apply_values(TOPOLOGY, EDITS)
    assert read_values(new_text, list(EDITS)) == EDITS
    assert "# CT113" in new_text and "# images are built in CI" in new_text
    assert 'buildcache_ref: "nexus.nexus.svc:8082/fractalops/buildcache"' in new_text
    assert "build_image_prefix: 'nexus.nexus.svc:8082/fractalops'" in new_text
    old_lines, new_lines = TOPOLOGY.splitlines(), new_text.splitlines()
    changed = [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert changed == [2, 3, 4, 10]


def test_restore_puts_the_file_back_byte_for_byte():
    new_text, previous = apply_values(TOPOLOGY, EDITS)
    assert restore_sources(new_text, previous) == TOPOLOGY


def test_rest_of_document_is_unchanged_after_apply():
    new_text, _ = apply_values(TOPOLOGY, EDITS)
    before, after = yaml.safe_load(TOPOLOGY), yaml.safe_load(new_text)
    assert after["registry_cache"]["k3s_mirror_nodes"] == before["registry_cache"]["k3s_mirror_nodes"]
    assert after["registry_cache"]["ports"]["proxy"] == 5000


def test_string_that_looks_like_a_number_is_quoted_so_it_reads_back_as_a_string():
    new_text, _ = apply_values(TOPOLOGY, {"registry_cache.host_ip": "8082"})
    assert read_values(new_text, ["registry_cache.host_ip"]) == {"registry_cache.host_ip": "8082"}


def test_missing_key_names_the_key_and_where_it_stopped():
    with pytest.raises(
        TopologyError,
        match=r"'registry_cache.nope' not found \('nope' missing under registry_cache\)",
    ):
        locate(TOPOLOGY, "registry_cache.nope")


def test_block_value_is_refused():
    with pytest.raises(TopologyError, match="single-line value"):
        locate(TOPOLOGY, "registry_cache.ports")


def test_non_yaml_file_is_refused_with_its_name():
    with pytest.raises(TopologyError, match=r"topo\.yaml is not valid YAML"):
        locate("a: [unclosed", "a", "topo.yaml")


@pytest.mark.parametrize(
    ("path", "edits", "message"),
    [
        ("relative.yaml", {"a": "b"}, "absolute path"),
        ("/t.yaml", {}, "at least one dotted key"),
        ("/t.yaml", {"a..b": "x"}, "not a dotted key"),
        ("/t.yaml", {"a": ""}, "non-empty string"),
        ("/t.yaml", {"a": ["list"]}, "non-empty string"),
    ],
)
def test_bad_edit_inputs_are_reported_before_the_file_is_touched(path, edits, message):
    failures = edits_problems(path, edits)
    assert any(message in f.reason for f in failures)
