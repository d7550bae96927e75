"""The Nexus dynamic providers, method by method, against the Nexus double."""

import secrets

import httpx
import pytest

from providers.http import HttpError
from providers.nexus.provider import (
    ActiveRealmsProvider,
    NexusReadinessProvider,
    PullCheckProvider,
    RepositoryProvider,
    RoleProvider,
    UserProvider,
)
from providers.registry import RegistryCheckError
from tests.conftest import PROVIDER_LAB
from tests.homelab.addresses import LabAddresses
from tests.homelab.nexus_double import NexusDoubleProcess


@pytest.fixture
def connection(provider_lab):
    return {
        "url": provider_lab.nexus_url,
        "username": "admin",
        "password": provider_lab.secrets()["nexusAdminPassword"],
        "timeout": 5,
    }


@pytest.fixture
def admin(connection):
    with httpx.Client(
        base_url=connection["url"] + "/service/rest",
        auth=(connection["username"], connection["password"]),
        timeout=5,
        trust_env=False,
    ) as client:
        yield client


@pytest.fixture
def faults(provider_lab):
    with httpx.Client(base_url=provider_lab.nexus_url, timeout=5, trust_env=False) as client:
        yield client
        client.delete("/__double__/faults")


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def proxy_spec(lab, name):
    return {
        "name": name,
        "format": "docker",
        "type": "proxy",
        "remoteUrl": lab._upstreams()["dockerhub"][0].url,
        "indexType": "HUB",
    }


def props(connection, spec, **extra):
    return {"connection": connection, "spec": spec, "adopt": False, "deleteAdopted": False, **extra}


def test_repository_create_read_no_diff_and_delete(provider_lab, connection, admin):
    provider = RepositoryProvider()
    inputs = props(connection, proxy_spec(provider_lab, unique("proxy")))
    assert provider.check({}, inputs).failures == []

    created = provider.create(inputs)
    name = inputs["spec"]["name"]
    assert created.id == name
    assert created.outs["observed"]["proxy"]["remoteUrl"] == inputs["spec"]["remoteUrl"]
    assert created.outs["observed"]["docker"] == {
        "v1Enabled": False,
        "forceBasicAuth": False,
        "httpPort": None,
    }
    assert provider.diff(name, created.outs, inputs).changes is False

    read = provider.read(name, created.outs)
    assert provider.diff(name, read.outs, inputs).changes is False

    provider.delete(name, created.outs)
    assert admin.get(f"/v1/repositories/docker/proxy/{name}").status_code == 404


def test_drift_made_in_nexus_shows_after_read_and_update_repairs_it(provider_lab, connection, admin):
    provider = RepositoryProvider()
    member = props(connection, proxy_spec(provider_lab, unique("member")))
    hosted = props(
        connection, {"name": unique("hosted"), "format": "docker", "type": "hosted", "httpPort": 18082}
    )
    provider.create(member)
    provider.create(hosted)
    members = [hosted["spec"]["name"], member["spec"]["name"]]
    group = props(
        connection,
        {"name": unique("group"), "format": "docker", "type": "group", "httpPort": 18083, "members": members},
    )
    created = provider.create(group)
    name = group["spec"]["name"]

    body = admin.get(f"/v1/repositories/docker/group/{name}").json()
    body["group"]["memberNames"] = list(reversed(members))  # someone reorders it in the UI
    assert admin.put(f"/v1/repositories/docker/group/{name}", json=body).status_code == 204

    assert provider.diff(name, created.outs, group).changes is False  # state alone cannot know
    refreshed = provider.read(name, created.outs)
    assert refreshed.outs["observed"]["group"]["memberNames"] == list(reversed(members))
    assert provider.diff(name, refreshed.outs, group).changes is True

    provider.update(name, refreshed.outs, group)
    assert admin.get(f"/v1/repositories/docker/group/{name}").json()["group"]["memberNames"] == members
    for inputs in (group, hosted, member):
        provider.delete(inputs["spec"]["name"], inputs)


def test_repo_deleted_outside_pulumi_reads_as_gone_not_as_an_error(provider_lab, connection, admin):
    provider = RepositoryProvider()
    inputs = props(connection, proxy_spec(provider_lab, unique("gone")))
    created = provider.create(inputs)
    admin.delete(f"/v1/repositories/{inputs['spec']['name']}")
    read = provider.read(created.id, created.outs)
    assert read.id is None


def test_existing_repo_is_refused_unless_adopted_and_adopted_one_survives_delete(
    provider_lab, connection, admin
):
    provider = RepositoryProvider()
    spec = proxy_spec(provider_lab, unique("legacy"))
    old_script_body = {
        "name": spec["name"],
        "online": True,
        "storage": {"blobStoreName": "default", "strictContentTypeValidation": False},
        "proxy": {"remoteUrl": spec["remoteUrl"], "contentMaxAge": 60, "metadataMaxAge": 60},
        "negativeCache": {"enabled": False, "timeToLive": 1},
        "httpClient": {"blocked": False, "autoBlock": False},
        "docker": {"v1Enabled": False, "forceBasicAuth": True},
        "dockerProxy": {"indexType": "HUB"},
    }
    assert admin.post("/v1/repositories/docker/proxy", json=old_script_body).status_code == 201

    with pytest.raises(
        RuntimeError, match=rf"repository {spec['name']} already exists in Nexus .* set adopt: true"
    ):
        provider.create(props(connection, spec))

    adopted = provider.create(props(connection, spec, adopt=True))
    assert adopted.outs["adopted"] is True
    got = admin.get(f"/v1/repositories/docker/proxy/{spec['name']}").json()
    assert got["proxy"]["contentMaxAge"] == 1440 and got["docker"]["forceBasicAuth"] is False

    provider.delete(adopted.id, adopted.outs)
    assert admin.get(f"/v1/repositories/docker/proxy/{spec['name']}").status_code == 200
    provider.delete(adopted.id, {**adopted.outs, "deleteAdopted": True})
    assert admin.get(f"/v1/repositories/docker/proxy/{spec['name']}").status_code == 404


def test_nexus_validation_errors_are_surfaced_with_method_path_and_messages(provider_lab, connection):
    provider = RepositoryProvider()
    spec = {**proxy_spec(provider_lab, unique("bad")), "name": "Upper-Case"}
    assert provider.check({}, props(connection, spec)).failures  # check catches it first ...
    with pytest.raises(HttpError) as failed:  # ... and Nexus's own answer is just as clear
        provider.create(props(connection, spec))
    message = str(failed.value)
    assert (
        "create repository Upper-Case: POST /service/rest/v1/repositories/docker/proxy -> HTTP 400" in message
    )
    assert "lowercase" in message.lower()


def test_gateway_errors_are_retried_then_reported(provider_lab, connection, faults):
    provider = RepositoryProvider()
    inputs = props(connection, proxy_spec(provider_lab, unique("flaky")))
    created = provider.create(inputs)
    path_regex = f"^/service/rest/v1/repositories/docker/proxy/{inputs['spec']['name']}$"

    faults.post(
        "/__double__/faults",
        json={"method": "GET", "path_regex": path_regex, "action": "status", "status": 503, "times": 2},
    )
    assert provider.read(created.id, created.outs).id == created.id  # two 503s, then success

    faults.post(
        "/__double__/faults",
        json={"method": "GET", "path_regex": path_regex, "action": "status", "status": 503},
    )
    with pytest.raises(HttpError, match=r"-> HTTP 503[\s\S]*kept failing"):
        provider.read(created.id, created.outs)
    faults.delete("/__double__/faults")
    provider.delete(created.id, created.outs)


def test_post_is_not_retried_on_gateway_errors(provider_lab, connection, faults, admin):
    provider = RepositoryProvider()
    inputs = props(connection, proxy_spec(provider_lab, unique("once")))
    faults.post(
        "/__double__/faults",
        json={
            "method": "POST",
            "path_regex": "^/service/rest/v1/repositories/docker/proxy$",
            "action": "status",
            "status": 502,
            "times": 1,
        },
    )
    with pytest.raises(HttpError, match="HTTP 502"):
        provider.create(inputs)
    assert admin.get(f"/v1/repositories/docker/proxy/{inputs['spec']['name']}").status_code == 404


def test_timeouts_end_with_a_message_naming_the_call(provider_lab, connection, faults):
    faults.post(
        "/__double__/faults",
        json={"path_regex": "^/service/rest/v1/security/realms/active$", "action": "delay", "seconds": 3},
    )
    provider = ActiveRealmsProvider()
    slow = {**connection, "timeout": 0.5}
    with pytest.raises(
        HttpError, match=r"read the active realms: GET /service/rest/v1/security/realms/active -> no answer"
    ):
        provider.create({"connection": slow, "required": ["DockerToken"]})


def test_wrong_admin_password_says_so(connection):
    with pytest.raises(HttpError, match=r"HTTP 401[\s\S]*admin user/password"):
        RepositoryProvider().read(
            "x",
            props({**connection, "password": "wrong"}, {"name": "x", "format": "docker", "type": "proxy"}),
        )


def test_realm_merge_keeps_other_realms_and_delete_removes_only_ours(connection, admin):
    original = admin.get("/v1/security/realms/active").json()
    admin.put("/v1/security/realms/active", json=[*original, "NpmToken"])  # someone else's choice
    provider = ActiveRealmsProvider()
    created = provider.create({"connection": connection, "required": ["DockerToken"]})
    assert created.outs["active"] == [*original, "NpmToken", "DockerToken"]
    assert admin.get("/v1/security/realms/active").json() == [*original, "NpmToken", "DockerToken"]
    assert created.outs["added"] == ["DockerToken"]
    provider.delete("active-realms", created.outs)
    assert admin.get("/v1/security/realms/active").json() == [*original, "NpmToken"]
    admin.put("/v1/security/realms/active", json=original)


def test_user_password_is_write_only_and_changed_through_change_password(provider_lab, connection, admin):
    role = RoleProvider()
    role_inputs = {
        "connection": connection,
        "spec": {"id": unique("pull"), "privileges": ["nx-repository-view-docker-*-read"]},
        "adopt": False,
    }
    role.create(role_inputs)
    users = UserProvider()
    user_id = unique("puller")
    inputs = {
        "connection": connection,
        "spec": {"userId": user_id, "roles": [role_inputs["spec"]["id"]]},
        "password": "first-Pw-1",
        "adopt": False,
    }
    created = users.create(inputs)
    assert "first-Pw-1" not in repr(created.outs["observed"]) and created.outs["secretDigest"]
    assert users.diff(user_id, created.outs, inputs).changes is False

    rotated = {**inputs, "password": "second-Pw-2"}
    assert users.diff(user_id, created.outs, rotated).changes is True
    users.update(user_id, created.outs, rotated)

    # Any REST call tells a known user (403: not an admin) from a wrong password (401).
    def status(password):
        url = f"{connection['url']}/service/rest/v1/repositories"
        return httpx.get(url, auth=(user_id, password), timeout=5, trust_env=False).status_code

    assert status("second-Pw-2") == 403 and status("first-Pw-1") == 401

    users.delete(user_id, created.outs)
    role.delete(role_inputs["spec"]["id"], role_inputs)


def test_eula_is_accepted_only_when_the_operator_said_so(tmp_path):
    nexus = NexusDoubleProcess(LabAddresses(PROVIDER_LAB).nexus.replace(".0.1", ".0.9"), tmp_path, "admin-pw")
    nexus.start()
    try:
        connection = {"url": nexus.url, "username": "admin", "password": "admin-pw", "timeout": 5}

        def eula():
            url = f"{nexus.url}/service/rest/v1/system/eula"
            return httpx.get(url, auth=("admin", "admin-pw"), trust_env=False).json()

        readiness = NexusReadinessProvider()
        with pytest.raises(RuntimeError, match="acceptNexusEula true"):
            readiness.create({"connection": connection, "acceptEula": False, "waitSeconds": 5})
        assert eula()["accepted"] is False
        created = readiness.create({"connection": connection, "acceptEula": True, "waitSeconds": 5})
        assert created.outs["ready"] is True
        assert eula()["accepted"] is True
    finally:
        nexus.stop()


def test_pull_check_fails_with_http_evidence_when_the_group_does_not_serve(provider_lab):
    check = PullCheckProvider()
    inputs = {
        "registryUrl": "http://127.22.0.250:8083",  # nothing listens there
        "repository": "library/busybox",
        "reference": "latest",
        "username": "shim-puller",
        "password": "pw",
        "timeout": 1,
    }
    with pytest.raises(RegistryCheckError, match=r"Step 1 check failed[\s\S]*GET /v2/ -> no answer"):
        check.create(inputs)


def test_pip_and_apt_repositories_go_through_the_same_lifecycle(connection, admin):
    provider = RepositoryProvider()
    proxy = props(
        connection,
        {"name": unique("pypi-proxy"), "format": "pypi", "type": "proxy", "remoteUrl": "https://pypi.org"},
    )
    group = props(
        connection,
        {"name": unique("pypi-group"), "format": "pypi", "type": "group", "members": [proxy["spec"]["name"]]},
    )
    apt = props(
        connection,
        {
            "name": unique("apt-debian"),
            "format": "apt",
            "type": "proxy",
            "remoteUrl": "http://deb.debian.org/debian",
            "distribution": "trixie",
        },
    )
    created = [provider.create(p) for p in (proxy, group, apt)]
    for inputs, result in zip((proxy, group, apt), created, strict=True):
        assert provider.diff(result.id, provider.read(result.id, result.outs).outs, inputs).changes is False
    assert (
        admin.get(f"/v1/repositories/apt/proxy/{apt['spec']['name']}").json()["apt"]["distribution"]
        == "trixie"
    )
    for inputs, result in zip((group, proxy, apt), (created[1], created[0], created[2]), strict=True):
        provider.delete(result.id, inputs)
