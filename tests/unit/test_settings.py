import copy

import pytest

from components.settings import SettingsError, find_placeholders, parse_settings, unknown_keys

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def node(name="pve-worker0", **overrides):
    base = {
        "name": name,
        "id": 112,
        "host": "127.0.0.11",
        "port": 22,
        "user": "root",
        "hostKey": ED25519,
        "role": "agent",
        "target": "legacy",
    }
    base.update(overrides)
    return base


def valid():
    return {
        "stage": 1,
        "nexusUrl": "http://127.0.0.1:8081",
        "dockerGroupUrl": "http://127.0.0.1:8083",
        "nodes": [node(), node("pve1", id=141, host="127.0.0.12", role="server")],
    }


def problems_of(values):
    with pytest.raises(SettingsError) as caught:
        parse_settings(values)
    return caught.value.problems


def test_valid_settings_keep_runbook_defaults():
    settings = parse_settings(valid())
    assert [n.name for n in settings.nodes] == ["pve-worker0", "pve1"]
    assert [n.unit for n in settings.nodes] == ["k3s-agent", "k3s"]
    assert settings.mirror.nexus_endpoint == "http://127.0.0.1:30083"
    assert settings.mirror.pull_user == "shim-puller"
    assert settings.mirror.legacy_endpoints == {
        "docker.io": "http://10.10.10.150:5000",
        "ghcr.io": "http://10.10.10.150:5002",
    }
    assert settings.nodes[0].registries_path == "/etc/rancher/k3s/registries.yaml"
    assert settings.max_node_changes_per_up == 1


def test_placeholders_are_reported_alone_with_their_full_key():
    values = valid()
    values["nodes"][1]["hostKey"] = "<FILL: pve1 SSH host key>"
    values["nexusUrl"] = "<FILL: Nexus REST URL>"
    assert problems_of(values) == [
        "nexus-cutover:nexusUrl: still a <FILL: ...> placeholder: put the real value in the stack file",
        "nexus-cutover:nodes[1].hostKey: still a <FILL: ...> placeholder: put the real value in the stack file",
    ]


def test_find_placeholders_walks_nested_values():
    assert find_placeholders({"a": [{"b": "<fill: x>"}, "ok"]}, "k") == ["k.a[0].b"]


BAD_NODES = [
    (
        {"role": "worker"},
        "nodes[0].role: 'worker' is not allowed (allowed: server -> k3s, agent -> k3s-agent)",
    ),
    ({"target": "nexxus"}, "nodes[0].target: 'nexxus' is not allowed (allowed: legacy, nexus)"),
    ({"port": 70000}, "nodes[0].port: 70000 is not allowed (allowed: a whole number 1-65535)"),
    ({"hostKey": "ssh-ed25519 not-base64!"}, "nodes[0].hostKey: the key is not valid base64"),
    ({"hostKey": "ssh-dss AAAA"}, "nodes[0].hostKey: key type 'ssh-dss' is not one of"),
    (
        {"hostKey": "ssh-rsa " + ED25519.split()[1]},
        "nodes[0].hostKey: the key blob does not encode a ssh-rsa key",
    ),
    ({"name": "PVE_Worker0"}, "nodes[0].name: 'PVE_Worker0' must be a lowercase host name"),
    (
        {"registriesPath": "etc/registries.yaml"},
        "nodes[0].registriesPath: 'etc/registries.yaml' must be an absolute path",
    ),
    (
        {"timeouts": {"restart": -5}},
        "nodes[0].timeouts.restart: -5 must be a number of seconds greater than 0",
    ),
    ({"timeouts": {"reboot": 5}}, "nodes[0].timeouts.reboot: unknown step"),
    ({"hostname": "x"}, "nodes[0].hostname: unknown key"),
    ({"host": ""}, "nodes[0].host: must be a non-empty string"),
]


@pytest.mark.parametrize(("override", "expected"), BAD_NODES)
def test_bad_node_setting_names_the_key_and_what_is_allowed(override, expected):
    values = valid()
    values["nodes"][0].update(override)
    assert any(p.startswith(f"nexus-cutover:{expected}") for p in problems_of(values)), problems_of(values)


def test_duplicate_names_addresses_and_ids_are_refused():
    values = valid()
    values["nodes"].append(copy.deepcopy(values["nodes"][0]))
    problems = problems_of(values)
    assert "nexus-cutover:nodes[2].name: 'pve-worker0' is already nodes[0]" in problems
    assert "nexus-cutover:nodes[2].host: 127.0.0.11:22 is already node 'pve-worker0'" in problems
    assert "nexus-cutover:nodes[2].id: 112 is already node 'pve-worker0'" in problems


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("stage", 6, "stage: 6 is not allowed (allowed: a whole number 1-5)"),
        ("nexusUrl", "nexus:8081", "nexusUrl: 'nexus:8081' must start with http:// or https://"),
        (
            "dockerGroupUrl",
            "http://nexus:8083/v2",
            "dockerGroupUrl: 'http://nexus:8083/v2' must be scheme://host:port without a path",
        ),
        (
            "dockerGroupUrl",
            "http://nexus:99999",
            "dockerGroupUrl: 'http://nexus:99999' has an invalid port",
        ),
        ("nodes", "pve1", "nodes: must be a list of nodes in cutover order"),
        ("maxNodeChangesPerUp", 0, "maxNodeChangesPerUp: 0 is not allowed"),
        (
            "httpTimeoutSeconds",
            0,
            "httpTimeoutSeconds: 0 must be a number of seconds greater than 0",
        ),
        (
            "mirror",
            {"nexusEndpoint": "127.0.0.1:30083"},
            "mirror.nexusEndpoint: '127.0.0.1:30083' must start with http://",
        ),
        (
            "mirror",
            {"verifyImage": "busybox:latest"},
            "mirror.verifyImage: 'busybox:latest' must be a fully qualified reference",
        ),
    ],
)
def test_bad_top_level_setting_names_the_key(key, value, expected):
    values = valid()
    values[key] = value
    assert any(p.startswith(f"nexus-cutover:{expected}") for p in problems_of(values)), problems_of(values)


def test_all_problems_are_reported_in_one_go():
    values = valid()
    values["stage"] = 9
    values["nodes"][0]["role"] = "boss"
    assert len(problems_of(values)) == 2


def test_unknown_project_keys_are_flagged_but_other_namespaces_are_not():
    problems = unknown_keys(["nexus-cutover:nexusURL", "nexus-cutover:stage", "kubernetes:context"])
    assert len(problems) == 1
    assert problems[0].startswith(
        "nexus-cutover:nexusURL: unknown setting (allowed: acceptNexusEula, checkImage,"
    )


def test_nodes_may_be_left_out_until_the_node_stage():
    values = valid()
    values["nodes"] = []
    assert parse_settings(values).nodes == ()
    values["stage"] = 3
    assert problems_of(values) == [
        "nexus-cutover:nodes: must list the k3s nodes in cutover order (stage 3 changes them)"
    ]
