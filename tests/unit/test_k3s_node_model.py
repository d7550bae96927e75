import pytest
import yaml

from providers.k3s_node import model

LEGACY = {"docker.io": "http://10.10.10.150:5000", "ghcr.io": "http://10.10.10.150:5002"}
NEXUS = "http://127.0.0.1:30083"


def render(target, password="s3cret-pw"):
    return model.render(target, LEGACY, NEXUS, "shim-puller", password)


def test_nexus_render_matches_the_runbook():
    document = yaml.safe_load(render("nexus"))
    assert document == {
        "mirrors": {"docker.io": {"endpoint": [NEXUS]}, "ghcr.io": {"endpoint": [NEXUS]}},
        "configs": {"127.0.0.1:30083": {"auth": {"username": "shim-puller", "password": "s3cret-pw"}}},
    }


def test_legacy_render_points_each_registry_at_ct113():
    assert yaml.safe_load(render("legacy")) == {
        "mirrors": {
            "docker.io": {"endpoint": ["http://10.10.10.150:5000"]},
            "ghcr.io": {"endpoint": ["http://10.10.10.150:5002"]},
        }
    }
    assert "password" not in render("legacy")


def test_render_is_deterministic_byte_for_byte():
    assert render("nexus") == render("nexus")
    assert render("legacy") == model.render("legacy", dict(reversed(list(LEGACY.items()))), NEXUS, "x", "y")


def test_unknown_target_is_refused():
    with pytest.raises(model.RegistriesFileError, match="'nexxus' is not one of legacy, nexus"):
        render("nexxus")


def test_parse_like_k3s_fails_on_invalid_yaml_and_warns_on_bad_endpoints():
    with pytest.raises(model.RegistriesFileError, match="k3s would fail to start"):
        model.parse_like_k3s("mirrors: [docker.io: {")
    parsed = model.parse_like_k3s(
        "mirrors:\n  docker.io:\n    endpoint: ['127.0.0.1:30083', 'http://ok:1']\n"
    )
    assert parsed.mirrors == {"docker.io": ["http://ok:1"]}
    assert parsed.warnings == ["mirrors.docker.io: endpoint '127.0.0.1:30083' is not a URL; k3s skips it"]
    assert model.parse_like_k3s(render("nexus")).auth_hosts == {"127.0.0.1:30083": "shim-puller"}


def test_masking_hides_every_password_and_nothing_else():
    text = render("nexus")
    shown = model.masked(text)
    assert "s3cret-pw" not in shown
    assert "password: ********" in shown
    assert shown.replace("********", '"s3cret-pw"') == text


def test_masked_diff_shows_the_change_without_the_secret():
    diff = model.masked_diff(render("legacy"), render("nexus"), "/etc/rancher/k3s/registries.yaml")
    assert '-      - "http://10.10.10.150:5000"' in diff and '+      - "http://127.0.0.1:30083"' in diff
    assert "s3cret-pw" not in diff and "********" in diff


def test_same_effect_ignores_comments_and_layout_but_not_credentials():
    hand_written = "# CT113\nmirrors:\n  ghcr.io: {endpoint: ['http://10.10.10.150:5002']}\n  docker.io:\n    endpoint:\n    - http://10.10.10.150:5000\n"
    assert model.same_effect(hand_written, render("legacy"))
    assert not model.same_effect(render("nexus", "a"), render("nexus", "b"))
    assert not model.same_effect("mirrors: [", render("legacy"))


def test_guard_allows_one_change_by_default_and_explains_how_to_raise_it():
    previous = {"pve-worker0": "nexus"}
    wanted = [("pve-worker0", "nexus"), ("pve-worker1", "nexus"), ("pve-worker2", "legacy")]
    assert model.changing_nodes(previous, wanted) == ["pve-worker1"]
    assert model.guard_problem(["pve-worker1"], 1) is None
    problem = model.guard_problem(["pve-worker1", "pve-worker2"], 1)
    assert "2 nodes would change target in this update (pve-worker1, pve-worker2)" in problem
    assert "maxNodeChangesPerUp is 1" in problem
