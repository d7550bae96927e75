import pytest
from nexus_api_client.models import (
    ApiCreateUser,
    ApiUser,
    AptProxyRepositoryApiRequest,
    DockerGroupRepositoryApiRequest,
    DockerHostedRepositoryApiRequest,
    DockerProxyRepositoryApiRequest,
    PypiGroupRepositoryApiRequest,
    PypiProxyRepositoryApiRequest,
    RoleXORequest,
)

from components.settings import DEFAULT_REPOS
from providers.nexus import model

CONTRACT = {
    ("docker", "proxy"): DockerProxyRepositoryApiRequest,
    ("docker", "hosted"): DockerHostedRepositoryApiRequest,
    ("docker", "group"): DockerGroupRepositoryApiRequest,
    ("pypi", "proxy"): PypiProxyRepositoryApiRequest,
    ("pypi", "group"): PypiGroupRepositoryApiRequest,
    ("apt", "proxy"): AptProxyRepositoryApiRequest,
}
EXTRA_SPECS = [
    {
        "name": "docker-private",
        "format": "docker",
        "type": "proxy",
        "remoteUrl": "https://registry.example",
        "remoteAuth": {"username": "u", "password": "p"},
    },
]


@pytest.mark.parametrize("spec", [*DEFAULT_REPOS, *EXTRA_SPECS], ids=lambda s: s["name"])
def test_rendered_body_satisfies_sonatypes_request_model(spec):
    body = model.repo_body(spec)
    parsed = CONTRACT[(spec["format"], spec["type"])].from_dict(body)
    assert parsed.to_dict()["name"] == spec["name"]


def test_docker_bodies_always_send_the_fields_whose_defaults_changed_across_versions():
    for spec in [s for s in DEFAULT_REPOS if s["format"] == "docker"]:
        docker = model.repo_body(spec)["docker"]
        assert set(docker) == {"v1Enabled", "forceBasicAuth", "httpPort"}
    hub = model.repo_body(DEFAULT_REPOS[0])
    assert hub["dockerProxy"] == {"indexType": "HUB"}  # no empty indexUrl
    group = model.repo_body(DEFAULT_REPOS[3])
    assert group["group"]["memberNames"] == ["docker-internal", "docker-dockerhub", "docker-ghcr"]
    assert group["docker"]["httpPort"] == 8083


def test_role_and_user_bodies_satisfy_sonatypes_models():
    RoleXORequest.from_dict(model.role_body({"id": "r", "privileges": ["nx-all"]}))
    spec = {"userId": "shim-puller", "roles": ["r"]}
    ApiCreateUser.from_dict(model.user_body(spec, password="pw"))
    ApiUser.from_dict(model.user_body(spec))


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"name": "Docker-Hub"}, "name", "must be lowercase"),
        ({"name": "bad name"}, "name", "not a Nexus repository name"),
        ({"remoteUrl": "registry-1.docker.io"}, "remoteUrl", "http:// or https://"),
        ({"httpPort": 70000}, "httpPort", "not a port"),
        ({"indexType": "DOCKERHUB"}, "indexType", "not allowed"),
        ({"indexUrl": ""}, "indexUrl", "leave indexUrl out"),
        ({"type": "hosted", "httpPort": None}, "httpPort", "need a connector port"),
        ({"format": "npm"}, "format", "not allowed"),
        ({"remoteAuth": {"username": "u"}}, "remoteAuth", "both username and password"),
    ],
)
def test_repo_problems_name_the_field(override, field, message):
    spec = {**DEFAULT_REPOS[0], **override}
    problems = model.repo_problems(spec)
    assert any(f == field and message in p for f, p in problems), problems


def test_group_member_problems():
    group = {"name": "g", "format": "docker", "type": "group", "httpPort": 1, "members": ["a", "a"]}
    assert ("members", "['a', 'a'] lists a member twice") in model.repo_problems(group)


def test_fleet_problems_find_port_clashes_unknown_members_and_cycles():
    specs = [dict(s) for s in DEFAULT_REPOS]
    specs[2]["httpPort"] = 8083
    specs[3]["members"] = [*specs[3]["members"], "docker-quay"]
    problems = model.fleet_problems(specs)
    assert "docker-group: connector port 8083 is already used by docker-internal" in problems
    assert "docker-group: member 'docker-quay' is neither defined here nor listed as pre-existing" in problems
    assert not any("quay" in p for p in model.fleet_problems(specs, preexisting=["docker-quay"]))
    cyclic = [
        {"name": "a", "format": "docker", "type": "group", "members": ["b"]},
        {"name": "b", "format": "docker", "type": "group", "members": ["a"]},
    ]
    assert any(p.startswith("groups include each other") for p in model.fleet_problems(cyclic))


def test_members_come_before_their_groups():
    order = model.members_first(list(reversed(DEFAULT_REPOS)))
    assert order.index("docker-group") > max(order.index(m) for m in DEFAULT_REPOS[3]["members"])


def test_drift_ignores_unmanaged_fields_and_sees_member_order():
    desired = model.without_write_only(model.repo_body(DEFAULT_REPOS[3]))
    observed = {**desired, "format": "docker", "url": "http://nexus/repository/docker-group"}
    assert model.drift(desired, model.observed_view(desired, observed)) == []
    reordered = {**observed, "group": {"memberNames": ["docker-dockerhub", "docker-internal", "docker-ghcr"]}}
    assert model.drift(desired, model.observed_view(desired, reordered)) == ["group.memberNames"]


def test_write_only_password_is_never_compared_against_reads():
    spec = next(s for s in EXTRA_SPECS if s["name"] == "docker-private")
    desired = model.without_write_only(model.repo_body(spec))
    assert "password" not in desired["httpClient"]["authentication"]
    assert model.repo_body(spec)["httpClient"]["authentication"]["password"] == "p"  # body untouched
    observed = {
        **desired,
        "httpClient": {
            **desired["httpClient"],
            "authentication": {"type": "username", "username": "u", "password": None},
        },
    }
    assert model.drift(desired, model.observed_view(desired, observed)) == []


def test_secret_digest_is_keyed_and_detects_changes():
    assert model.secret_digest("salt", "pw") == model.secret_digest("salt", "pw")
    assert model.secret_digest("salt", "pw") != model.secret_digest("salt", "pw2")
    assert model.secret_digest("salt", "pw") != model.secret_digest("other", "pw")
    assert "pw" not in model.secret_digest("salt", "pw")


def test_realm_merge_keeps_everyone_elses_realms_in_order():
    active = ["NexusAuthenticatingRealm", "LdapRealm"]
    merged = model.merge_realms(active, ["DockerToken"])
    assert merged == ["NexusAuthenticatingRealm", "LdapRealm", "DockerToken"]
    assert model.merge_realms(merged, ["DockerToken"]) == merged
    assert model.unmerge_realms(merged, ["DockerToken"]) == active
