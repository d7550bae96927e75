"""The Nexus double behaves like Nexus 3 and keeps Sonatype's REST contract.

Real processes on loopback (labs 80-89): the double itself, a Debian docker-registry as
the docker.io upstream, and skopeo as the docker client. Request bodies are written here
by hand, independently of the double's code.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nexus_api_client.models as m
import pytest
from pydantic import StrictStr, TypeAdapter

from tests.homelab.addresses import LabAddresses
from tests.homelab.nexus_double import NexusDoubleProcess, stop_pidfile
from tests.homelab.registries import (
    DOCKERHUB_IMAGES,
    REGISTRY_BINARY,
    RegistryServer,
    seed_images,
)

pytestmark = pytest.mark.skipif(
    not os.access(REGISTRY_BINARY, os.X_OK) or shutil.which("skopeo") is None,
    reason="needs Debian's docker-registry and skopeo",
)

LAB = LabAddresses(80)  # the double under test
UPSTREAM_LAB = LabAddresses(81)  # the docker.io stand-in
OTHER_LAB = LabAddresses(82)  # a second double, for pid-file control
ADMIN_PASSWORD = "admin-Secret-4711"
PULLER_PASSWORD = "puller-Secret-0815"
HOSTED_PORT = 8082
GROUP_PORT = 8083
PROXY_PORT = 8084
API = "/service/rest"
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)

# ---------------------------------------------------------------------------------------
# Request bodies, as a provider would write them
# ---------------------------------------------------------------------------------------


def proxy_body(name: str, remote_url: str, http_port: int | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "online": True,
        "storage": {"blobStoreName": "default", "strictContentTypeValidation": True},
        "proxy": {"remoteUrl": remote_url, "contentMaxAge": 1440, "metadataMaxAge": 1440},
        "negativeCache": {"enabled": True, "timeToLive": 1440},
        "httpClient": {"blocked": False, "autoBlock": True},
        "docker": {"v1Enabled": False, "forceBasicAuth": False, "httpPort": http_port},
        "dockerProxy": {"indexType": "REGISTRY", "cacheForeignLayers": False},
    }


def hosted_body(name: str, http_port: int | None) -> dict[str, Any]:
    return {
        "name": name,
        "online": True,
        "storage": {
            "blobStoreName": "default",
            "strictContentTypeValidation": True,
            "writePolicy": "allow_once",
            "latestPolicy": True,
        },
        "docker": {"v1Enabled": False, "forceBasicAuth": False, "httpPort": http_port},
    }


def group_body(name: str, members: list[str], http_port: int | None) -> dict[str, Any]:
    return {
        "name": name,
        "online": True,
        "storage": {"blobStoreName": "default", "strictContentTypeValidation": True},
        "group": {"memberNames": members},
        "docker": {"v1Enabled": False, "forceBasicAuth": False, "httpPort": http_port},
    }


def user_body(user_id: str, password: str, roles: list[str]) -> dict[str, Any]:
    return {
        "userId": user_id,
        "firstName": "Image",
        "lastName": "Puller",
        "emailAddress": f"{user_id}@homelab.test",
        "password": password,
        "status": "active",
        "roles": roles,
    }


# ---------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, dict[str, str]]]:
    """docker.io stand-in with the runbook's images; shared, only ever read."""
    server = RegistryServer(
        "dockerhub", UPSTREAM_LAB.upstream_dockerhub, 5000, tmp_path_factory.mktemp("dockerhub")
    )
    with server:
        yield server, seed_images(server.url, DOCKERHUB_IMAGES)


@pytest.fixture(scope="module")
def nexus_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NexusDoubleProcess]:
    """One process for the module (starting one costs seconds); each test resets it."""
    double = NexusDoubleProcess(
        LAB.nexus, tmp_path_factory.mktemp("nexus"), ADMIN_PASSWORD, eula_accepted=True
    )
    with double:
        yield double


@pytest.fixture
def nexus(nexus_process: NexusDoubleProcess) -> Iterator[NexusDoubleProcess]:
    """The shared double, fresh; afterwards its log must show no bug of its own."""
    nexus_process.reset()
    logged_before = len(nexus_process.log_text())
    yield nexus_process
    logged = nexus_process.log_text()[logged_before:]
    assert "CONTRACT VIOLATION" not in logged and "Unexpected error" not in logged, logged


def client(double: NexusDoubleProcess, auth: tuple[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=double.url, auth=auth or double.admin_auth, trust_env=False, timeout=10.0)


def connector(double: NexusDoubleProcess, port: int, auth: tuple[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=f"http://{double.host}:{port}", auth=auth, trust_env=False, timeout=30.0)


def create(api: httpx.Client, path: str, body: dict[str, Any]) -> None:
    """POST a repository ("repositories/docker/hosted", ...: Nexus answers 201) or a role or
    user ("security/roles", "security/users": 200)."""
    response = api.post(f"{API}/v1/{path}", json=body)
    assert response.status_code == (201 if path.startswith("repositories/") else 200), response.text


def build_mirror(double: NexusDoubleProcess, upstream_url: str) -> None:
    """The runbook's step 1: proxy, hosted and group, DockerToken realm, a pull role/user."""
    with client(double) as api:
        for path, body in (
            ("docker/proxy", proxy_body("docker-dockerhub", upstream_url, PROXY_PORT)),
            ("docker/hosted", hosted_body("docker-internal", HOSTED_PORT)),
            ("docker/group", group_body("docker-group", ["docker-internal", "docker-dockerhub"], GROUP_PORT)),
        ):
            create(api, f"repositories/{path}", body)
        active = api.get(f"{API}/v1/security/realms/active").json()
        assert api.put(f"{API}/v1/security/realms/active", json=[*active, "DockerToken"]).status_code == 204
        role = {
            "id": "docker-pull",
            "name": "docker-pull",
            "description": "pull through docker-group",
            "privileges": ["nx-repository-view-docker-docker-group-read"],
            "roles": [],
        }
        create(api, "security/roles", role)
        create(api, "security/users", user_body("puller", PULLER_PASSWORD, ["docker-pull"]))


def skopeo(args: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """skopeo with its own permissive policy and no host registries.conf."""
    policy = workdir / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
    (workdir / "registries.conf").write_text("")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["CONTAINERS_REGISTRIES_CONF"] = str(workdir / "registries.conf")
    return subprocess.run(
        ["skopeo", "--policy", str(policy), "--tmpdir", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def validate(schema: Any, payload: Any) -> None:
    """What nexus_api_client itself does with a response: strict pydantic validation."""
    TypeAdapter(schema).validate_json(json.dumps(payload), strict=True)


# ---------------------------------------------------------------------------------------
# Status, auth, EULA
# ---------------------------------------------------------------------------------------


def test_management_needs_admin_credentials(nexus: NexusDoubleProcess) -> None:
    with httpx.Client(base_url=nexus.url, trust_env=False, timeout=5.0) as anonymous:
        response = anonymous.get(f"{API}/v1/repositories")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'BASIC realm="Sonatype Nexus Repository Manager"'
    with client(nexus, ("admin", "wrong")) as wrong:
        assert wrong.get(f"{API}/v1/repositories").status_code == 401
    with client(nexus) as api:
        body = user_body("viewer", "viewer-pw", ["nx-anonymous"])
        create(api, "security/users", body)
    with client(nexus, ("viewer", "viewer-pw")) as viewer:
        assert viewer.get(f"{API}/v1/repositories").status_code == 403
        assert viewer.get(f"{API}/v1/status").status_code == 200


def test_eula_gates_docker_content_until_accepted(
    nexus: NexusDoubleProcess, upstream: tuple[RegistryServer, dict[str, str]]
) -> None:
    registry, digests = upstream
    double = nexus
    double.reset(eula_accepted=False)
    build_mirror(double, registry.url)
    with client(double) as api:
        eula = api.get(f"{API}/v1/system/eula").json()
        assert eula["accepted"] is False
    with connector(double, GROUP_PORT, ("puller", PULLER_PASSWORD)) as registry_client:
        assert registry_client.get("/v2/").status_code == 200  # login works, content does not
        refused = registry_client.get(
            "/v2/library/busybox/manifests/latest", headers={"Accept": MANIFEST_ACCEPT}
        )
        assert refused.status_code == 503
        assert "End User License Agreement has not been accepted" in refused.text
        with client(double) as api:
            wrong = api.post(f"{API}/v1/system/eula", json={"accepted": True, "disclaimer": "I agree"})
            assert wrong.status_code == 500  # Nexus: an unmapped IllegalArgumentException
            assert api.post(f"{API}/v1/system/eula", json={**eula, "accepted": True}).status_code == 204
            assert api.get(f"{API}/v1/system/eula").json()["accepted"] is True
        served = registry_client.get(
            "/v2/library/busybox/manifests/latest", headers={"Accept": MANIFEST_ACCEPT}
        )
        assert served.status_code == 200
        assert served.headers["Docker-Content-Digest"] == digests["library/busybox:latest"]


# ---------------------------------------------------------------------------------------
# Repositories
# ---------------------------------------------------------------------------------------


def test_docker_repositories_are_created_read_updated_and_deleted(nexus: NexusDoubleProcess) -> None:
    with client(nexus) as api:
        proxy = proxy_body("docker-dockerhub", "http://127.81.0.2:5000")
        proxy["httpClient"]["authentication"] = {
            "type": "username",
            "username": "hub",
            "password": "hub-Secret-1",
        }
        create(api, "repositories/docker/proxy", proxy)
        create(api, "repositories/docker/hosted", hosted_body("docker-internal", None))
        members = ["docker-internal", "docker-dockerhub"]
        create(api, "repositories/docker/group", group_body("docker-group", members, None))

        got = api.get(f"{API}/v1/repositories/docker/proxy/docker-dockerhub").json()
        assert (got["format"], got["type"]) == ("docker", "proxy")
        assert got["url"] == f"{nexus.url}/repository/docker-dockerhub"
        assert got["httpClient"]["authentication"]["username"] == "hub"
        assert got["httpClient"]["authentication"]["password"] is None  # write-only
        assert (
            api.get(f"{API}/v1/repositories/docker/hosted/docker-internal").json()["storage"]["writePolicy"]
            == "ALLOW_ONCE"
        )
        group = api.get(f"{API}/v1/repositories/docker/group/docker-group").json()
        assert group["group"]["memberNames"] == members  # order as given
        # Asked for with the wrong type, a repository is not found.
        assert api.get(f"{API}/v1/repositories/docker/hosted/docker-group").status_code == 404

        # Read-modify-write: a GET body goes back as a PUT body (Nexus ignores format/type/url).
        hosted = api.get(f"{API}/v1/repositories/docker/hosted/docker-internal").json()
        hosted["docker"]["httpPort"] = None
        assert api.put(f"{API}/v1/repositories/docker/hosted/docker-internal", json=hosted).status_code == 204
        reordered = group_body("docker-group", list(reversed(members)), None)
        assert api.put(f"{API}/v1/repositories/docker/group/docker-group", json=reordered).status_code == 204
        assert api.get(f"{API}/v1/repositories/docker/group/docker-group").json()["group"][
            "memberNames"
        ] == list(reversed(members))
        listed = {r["name"]: r for r in api.get(f"{API}/v1/repositories").json()}
        assert listed["docker-dockerhub"]["attributes"] == {"proxy": {"remoteUrl": "http://127.81.0.2:5000"}}

        assert api.delete(f"{API}/v1/repositories/docker-internal").status_code == 204
        assert api.get(f"{API}/v1/repositories/docker/hosted/docker-internal").status_code == 404
        assert api.delete(f"{API}/v1/repositories/docker-internal").status_code == 404
        # Deleting a member takes it out of its groups, as Nexus does.
        assert api.get(f"{API}/v1/repositories/docker/group/docker-group").json()["group"]["memberNames"] == [
            "docker-dockerhub"
        ]
        missing = hosted_body("nowhere", None)
        assert api.put(f"{API}/v1/repositories/docker/hosted/nowhere", json=missing).status_code == 404
    assert "hub-Secret-1" not in nexus.log_text()


def test_invalid_repository_requests_get_nexus_400_bodies(nexus: NexusDoubleProcess) -> None:
    with client(nexus) as api:
        uppercase = api.post(
            f"{API}/v1/repositories/docker/hosted", json=hosted_body("Docker-Internal", None)
        )
        assert uppercase.status_code == 400
        assert uppercase.json() == [
            {
                "id": "PARAMETER arg0",
                "message": "Docker repository names must be lowercase to support path-based routing",
            }
        ]

        no_docker = hosted_body("docker-internal", None)
        del no_docker["docker"]
        missing = api.post(f"{API}/v1/repositories/docker/hosted", json=no_docker)
        assert (missing.status_code, missing.json()) == (
            400,
            [{"id": "PARAMETER docker", "message": "must not be null"}],
        )

        no_force = hosted_body("docker-internal", None)
        del no_force["docker"]["forceBasicAuth"]
        assert api.post(f"{API}/v1/repositories/docker/hosted", json=no_force).json() == [
            {"id": "PARAMETER forceBasicAuth", "message": "must not be null"}
        ]

        stringly = hosted_body("docker-internal", None)
        stringly["online"] = "yes"
        typed = api.post(f"{API}/v1/repositories/docker/hosted", json=stringly)
        assert typed.status_code == 400
        assert [error["id"] for error in typed.json()] == ["online"]

        ghost = api.post(
            f"{API}/v1/repositories/docker/group", json=group_body("docker-group", ["docker-ghost"], None)
        )
        assert ghost.status_code == 400
        assert ghost.json() == [
            {"id": "HelperBean.memberNames", "message": "Member repository does not exist: docker-ghost"}
        ]

        other_store = hosted_body("docker-internal", None)
        other_store["storage"]["blobStoreName"] = "s3"
        assert api.post(f"{API}/v1/repositories/docker/hosted", json=other_store).json() == [
            {"id": "BlobStoreName", "message": "Blob store not found"}
        ]

        create(api, "repositories/docker/hosted", hosted_body("docker-internal", None))
        duplicate = api.post(
            f"{API}/v1/repositories/docker/hosted", json=hosted_body("docker-internal", None)
        )
        assert duplicate.json() == [
            {"id": "PARAMETER name", "message": "Name is already used, must be unique (ignoring case)"}
        ]

        renamed = api.put(
            f"{API}/v1/repositories/docker/hosted/docker-internal", json=hosted_body("docker-other", None)
        )
        assert renamed.json() == [{"id": "name", "message": "Renaming a repository is not supported"}]

        pypi = {
            "name": "pypi-group",
            "online": True,
            "storage": {"blobStoreName": "default", "strictContentTypeValidation": True},
            "group": {"memberNames": ["docker-internal"]},
        }
        wrong_format = api.post(f"{API}/v1/repositories/pypi/group", json=pypi)
        assert (
            wrong_format.json()[0]["message"]
            == "Member repository format does not match group repository format: docker-internal"
        )

        broken = api.post(
            f"{API}/v1/repositories/docker/hosted",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert broken.status_code == 400
        assert broken.json()["id"] == "*"


def test_pypi_and_apt_repositories_round_trip(nexus: NexusDoubleProcess) -> None:
    storage = {"blobStoreName": "default", "strictContentTypeValidation": True}
    proxy = {"remoteUrl": "https://pypi.org", "contentMaxAge": 1440, "metadataMaxAge": 1440}
    negative = {"enabled": True, "timeToLive": 1440}
    with client(nexus) as api:
        body = {
            "name": "pypi-proxy",
            "online": True,
            "storage": storage,
            "proxy": proxy,
            "negativeCache": negative,
        }
        create(api, "repositories/pypi/proxy", body)
        group = {
            "name": "pypi-group",
            "online": True,
            "storage": storage,
            "group": {"memberNames": ["pypi-proxy"]},
        }
        create(api, "repositories/pypi/group", group)
        apt = {
            "name": "apt-debian",
            "online": True,
            "storage": storage,
            "proxy": {**proxy, "remoteUrl": "http://deb.debian.org/debian"},
            "negativeCache": negative,
            "httpClient": {"blocked": False, "autoBlock": True},
            "apt": {"distribution": "bookworm", "flat": False},
        }
        create(api, "repositories/apt/proxy", apt)
        validate(m.PyPiProxyApiRepository, api.get(f"{API}/v1/repositories/pypi/proxy/pypi-proxy").json())
        validate(
            m.SimpleApiGroupDeployRepository, api.get(f"{API}/v1/repositories/pypi/group/pypi-group").json()
        )
        assert (
            api.get(f"{API}/v1/repositories/apt/proxy/apt-debian").json()["apt"]["distribution"] == "bookworm"
        )


def test_repository_privileges_come_and_go_with_the_repository(nexus: NexusDoubleProcess) -> None:
    with client(nexus) as api:
        create(api, "repositories/docker/hosted", hosted_body("docker-internal", None))
        names = {p["name"] for p in api.get(f"{API}/v1/security/privileges").json()}
        expected = {
            f"nx-repository-view-docker-docker-internal-{a}"
            for a in ("read", "browse", "add", "edit", "delete", "*")
        }
        assert expected <= names and "nx-all" in names
        read = api.get(f"{API}/v1/security/privileges/nx-repository-view-docker-docker-internal-read").json()
        assert (read["type"], read["format"], read["repository"], read["actions"]) == (
            "repository-view",
            "docker",
            "docker-internal",
            ["READ"],
        )
        role = {
            "id": "pushers",
            "name": "pushers",
            "privileges": ["nx-repository-view-docker-docker-internal-add"],
            "roles": [],
        }
        create(api, "security/roles", role)
        assert api.delete(f"{API}/v1/repositories/docker-internal").status_code == 204
        assert (
            api.get(
                f"{API}/v1/security/privileges/nx-repository-view-docker-docker-internal-read"
            ).status_code
            == 404
        )
        assert api.get(f"{API}/v1/security/roles/pushers").json()["privileges"] == []


# ---------------------------------------------------------------------------------------
# Security: roles, users, realms
# ---------------------------------------------------------------------------------------


def test_roles_are_managed_and_unknown_references_rejected(nexus: NexusDoubleProcess) -> None:
    with client(nexus) as api:
        role = {
            "id": "docker-pull",
            "name": "Docker pull",
            "description": "d",
            "privileges": ["nx-repository-view-docker-*-read"],
            "roles": [],
        }
        created = api.post(f"{API}/v1/security/roles", json=role)
        assert created.status_code == 200
        assert created.json() == {**role, "source": "default", "readOnly": False}
        assert api.post(f"{API}/v1/security/roles", json=role).status_code == 400  # duplicate
        unknown = api.post(f"{API}/v1/security/roles", json={**role, "id": "x", "privileges": ["nx-nope"]})
        assert (unknown.status_code, unknown.json()) == (
            400,
            "Privilege 'nx-nope' contained in role 'x' not found.",
        )
        nested = api.post(
            f"{API}/v1/security/roles", json={**role, "id": "y", "privileges": [], "roles": ["ghost"]}
        )
        assert nested.status_code == 400
        outer = {"id": "outer", "name": "outer", "privileges": [], "roles": ["docker-pull"]}
        create(api, "security/roles", outer)
        assert (
            api.put(f"{API}/v1/security/roles/docker-pull", json={**role, "roles": ["outer"]}).status_code
            == 400
        )  # a cycle
        assert (
            api.put(f"{API}/v1/security/roles/docker-pull", json={**role, "description": "new"}).status_code
            == 204
        )
        assert api.get(f"{API}/v1/security/roles/docker-pull").json()["description"] == "new"
        assert (
            api.put(f"{API}/v1/security/roles/docker-pull", json={**role, "id": "other"}).status_code == 409
        )
        assert (
            api.put(f"{API}/v1/security/roles/nx-admin", json={**role, "id": "nx-admin"}).status_code == 400
        )  # built-in
        assert api.delete(f"{API}/v1/security/roles/outer").status_code == 204
        assert api.get(f"{API}/v1/security/roles/outer").status_code == 404
        assert api.delete(f"{API}/v1/security/roles/outer").status_code == 404
        assert {"nx-admin", "nx-anonymous", "docker-pull"} <= {
            r["id"] for r in api.get(f"{API}/v1/security/roles").json()
        }


def test_users_are_managed_and_search_is_by_prefix(nexus: NexusDoubleProcess) -> None:
    with client(nexus) as api:
        create(api, "security/users", user_body("puller", PULLER_PASSWORD, ["nx-anonymous"]))
        create(api, "security/users", user_body("puller2", "pw-2", ["nx-anonymous"]))
        found = api.get(f"{API}/v1/security/users", params={"userId": "puller"}).json()
        assert [u["userId"] for u in found] == ["puller", "puller2"]  # callers filter exactly
        assert all("password" not in u for u in found)
        unknown_role = api.post(f"{API}/v1/security/users", json=user_body("other", "pw", ["ghost-role"]))
        assert (unknown_role.status_code, unknown_role.json()) == (
            400,
            [{"id": "roles", "message": "Unable to locate roleId: ghost-role"}],
        )
        assert (
            api.post(
                f"{API}/v1/security/users", json={**user_body("x", "pw", ["nx-anonymous"]), "roles": []}
            ).status_code
            == 400
        )

        user = found[0]
        assert api.put(f"{API}/v1/security/users/puller2", json=user).status_code == 400  # id mismatch
        assert (
            api.put(f"{API}/v1/security/users/puller", json={**user, "roles": ["ghost"]}).status_code == 400
        )
        assert (
            api.put(f"{API}/v1/security/users/puller", json={**user, "lastName": "Renamed"}).status_code
            == 204
        )
        assert (
            api.get(f"{API}/v1/security/users", params={"userId": "puller"}).json()[0]["lastName"]
            == "Renamed"
        )

        url = f"{API}/v1/security/users/puller/change-password"
        assert (
            api.put(url, content=b"new-pw", headers={"Content-Type": "application/json"}).status_code == 415
        )
        assert api.put(url, content=b"new-pw", headers={"Content-Type": "text/plain"}).status_code == 204
        assert (
            api.put(
                f"{API}/v1/security/users/ghost/change-password",
                content=b"x",
                headers={"Content-Type": "text/plain"},
            ).status_code
            == 404
        )
        assert api.delete(f"{API}/v1/security/users/puller2").status_code == 204
        assert api.delete(f"{API}/v1/security/users/puller2").status_code == 404
    assert "new-pw" not in nexus.log_text()


def test_realms_are_read_merged_and_written_whole(nexus: NexusDoubleProcess) -> None:
    with client(nexus) as api:
        available = {r["id"] for r in api.get(f"{API}/v1/security/realms/available").json()}
        assert {"NexusAuthenticatingRealm", "DockerToken", "NpmToken", "NuGetApiKey"} <= available
        active = api.get(f"{API}/v1/security/realms/active").json()
        assert active == ["NexusAuthenticatingRealm"]
        merged = [*active, "DockerToken"]
        assert api.put(f"{API}/v1/security/realms/active", json=merged).status_code == 204
        assert api.get(f"{API}/v1/security/realms/active").json() == merged
        bad = api.put(f"{API}/v1/security/realms/active", json=[*merged, "NoSuchRealm"])
        assert (bad.status_code, bad.json()) == (400, "Unknown realmIds: [NoSuchRealm]")
        assert api.get(f"{API}/v1/security/realms/active").json() == merged


# ---------------------------------------------------------------------------------------
# Docker connectors
# ---------------------------------------------------------------------------------------


def test_group_pull_with_skopeo_is_served_by_the_proxy_member(
    nexus: NexusDoubleProcess, upstream: tuple[RegistryServer, dict[str, str]], tmp_path: Path
) -> None:
    registry, digests = upstream
    build_mirror(nexus, registry.url)
    nexus.clear_requests()
    image = f"docker://{nexus.host}:{GROUP_PORT}/library/busybox:latest"
    pulled = skopeo(
        ["inspect", "--tls-verify=false", "--creds", f"puller:{PULLER_PASSWORD}", image], tmp_path
    )
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["Digest"] == digests["library/busybox:latest"]
    refused = skopeo(["inspect", "--tls-verify=false", "--no-creds", image], tmp_path)
    assert refused.returncode != 0

    served = [
        r
        for r in nexus.requests(kind="docker", port=GROUP_PORT)
        if r["path"] == "/v2/library/busybox/manifests/latest" and r["status"] == 200
    ]
    assert served and {r["served_by"] for r in served} == {"docker-dockerhub"}
    assert {r["repository"] for r in served} == {"docker-group"} and {r["user"] for r in served} == {"puller"}
    with client(nexus) as api:
        page = api.get(
            f"{API}/v1/search/assets", params={"repository": "docker-group", "name": "library/busybox"}
        ).json()
        validate(m.PageAssetXO, page)
        manifests = [a for a in page["items"] if a["path"] == "v2/library/busybox/manifests/latest"]
        assert manifests and manifests[0]["repository"] == "docker-dockerhub"
        assert manifests[0]["lastDownloaded"] is not None
        blobs = api.get(f"{API}/v1/assets", params={"repository": "docker-dockerhub"}).json()["items"]
        assert any(a["path"].startswith("v2/-/blobs/sha256:") and a["lastDownloaded"] for a in blobs)


def test_connector_challenges_tokens_and_privileges(
    nexus: NexusDoubleProcess, upstream: tuple[RegistryServer, dict[str, str]]
) -> None:
    registry, _ = upstream
    build_mirror(nexus, registry.url)
    base = f"http://{nexus.host}:{GROUP_PORT}"
    with connector(nexus, GROUP_PORT) as anonymous:
        challenge = anonymous.get("/v2/")
        assert challenge.status_code == 401
        assert (
            challenge.headers["WWW-Authenticate"]
            == f'Bearer realm="{base}/v2/token",service="{base}/v2/token"'
        )
        token = anonymous.get(
            "/v2/token",
            params={"service": f"{base}/v2/token", "scope": "repository:library/busybox:pull"},
            auth=("puller", PULLER_PASSWORD),
        )
        assert token.status_code == 200
        bearer = {"Authorization": f"Bearer {token.json()['token']}"}
        assert (
            anonymous.get("/v2/", headers=bearer).headers["Docker-Distribution-Api-Version"] == "registry/2.0"
        )
        pulled = anonymous.get(
            "/v2/library/alpine/manifests/3.20", headers={**bearer, "Accept": MANIFEST_ACCEPT}
        )
        assert pulled.status_code == 200
        assert anonymous.get("/v2/token", auth=("puller", "wrong")).status_code == 401

    with client(nexus) as api:
        searcher = {"id": "searcher", "name": "searcher", "privileges": ["nx-search-read"], "roles": []}
        create(api, "security/roles", searcher)
        create(api, "security/users", user_body("nobody", "nobody-pw", ["searcher"]))
        forced = group_body("docker-group", ["docker-internal", "docker-dockerhub"], GROUP_PORT)
        forced["docker"]["forceBasicAuth"] = True
        assert api.put(f"{API}/v1/repositories/docker/group/docker-group", json=forced).status_code == 204
    with connector(nexus, GROUP_PORT) as anonymous:
        assert (
            anonymous.get("/v2/").headers["WWW-Authenticate"]
            == 'BASIC realm="Sonatype Nexus Repository Manager"'
        )
    with connector(nexus, GROUP_PORT, ("nobody", "nobody-pw")) as nobody:
        assert nobody.get("/v2/").status_code == 200  # authenticated, but no read privilege
        denied = nobody.get("/v2/library/busybox/manifests/latest", headers={"Accept": MANIFEST_ACCEPT})
        assert denied.status_code == 403
        assert denied.json()["errors"][0]["code"] == "DENIED"

    with client(nexus) as api:
        url = f"{API}/v1/security/users/puller/change-password"
        assert (
            api.put(url, content=b"puller-New-1", headers={"Content-Type": "text/plain"}).status_code == 204
        )
    with connector(nexus, GROUP_PORT, ("puller", PULLER_PASSWORD)) as old:
        assert old.get("/v2/").status_code == 401
    with connector(nexus, GROUP_PORT, ("puller", "puller-New-1")) as new:
        assert new.get("/v2/").status_code == 200


def test_skopeo_pushes_into_hosted_and_the_group_serves_it(
    nexus: NexusDoubleProcess, upstream: tuple[RegistryServer, dict[str, str]], tmp_path: Path
) -> None:
    registry, _ = upstream
    build_mirror(nexus, registry.url)
    with client(nexus) as api:
        role = {
            "id": "docker-push",
            "name": "docker-push",
            "privileges": [f"nx-repository-view-docker-docker-internal-{a}" for a in ("read", "add", "edit")],
            "roles": [],
        }
        create(api, "security/roles", role)
        create(api, "security/users", user_body("builder", "builder-pw", ["docker-push"]))
    source = f"docker://{registry.address}/library/alpine:3.20"
    target = f"docker://{nexus.host}:{HOSTED_PORT}/builds/alpine:3.20"
    denied = skopeo(
        [
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"puller:{PULLER_PASSWORD}",
            source,
            target,
        ],
        tmp_path,
    )
    assert denied.returncode != 0  # a pull role cannot push
    pushed = skopeo(
        [
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
            "builder:builder-pw",
            source,
            target,
        ],
        tmp_path,
    )
    assert pushed.returncode == 0, pushed.stderr

    nexus.clear_requests()
    image = f"docker://{nexus.host}:{GROUP_PORT}/builds/alpine:3.20"
    inspected = skopeo(
        ["inspect", "--tls-verify=false", "--creds", f"puller:{PULLER_PASSWORD}", image], tmp_path
    )
    assert inspected.returncode == 0, inspected.stderr
    served = {
        r["served_by"]
        for r in nexus.requests(kind="docker")
        if r["status"] == 200 and "/manifests/" in r["path"]
    }
    assert served == {"docker-internal"}
    # The seed image's label names what was pushed: the upstream's alpine.
    assert json.loads(inspected.stdout)["Labels"]["org.opencontainers.image.title"] == "library/alpine:3.20"


def test_connector_ports_follow_repository_updates(nexus: NexusDoubleProcess) -> None:
    with client(nexus) as api:
        create(api, "repositories/docker/hosted", hosted_body("docker-internal", HOSTED_PORT))
        assert nexus.connectors()["bound"] == {str(HOSTED_PORT): "docker-internal"}
        assert (
            api.put(
                f"{API}/v1/repositories/docker/hosted/docker-internal",
                json=hosted_body("docker-internal", 8092),
            ).status_code
            == 204
        )
        assert nexus.connectors()["bound"] == {"8092": "docker-internal"}
        with pytest.raises(httpx.ConnectError), connector(nexus, HOSTED_PORT) as gone:
            gone.get("/v2/")
        with socket.socket() as squatter:
            squatter.bind((nexus.host, 8095))
            squatter.listen()
            create(api, "repositories/docker/hosted", hosted_body("docker-busy", 8095))
        assert "Could not start docker connector for repository docker-busy" in nexus.log_text()
        nexus.set_connectors(up=False)
        with pytest.raises(httpx.ConnectError), connector(nexus, 8092) as down:
            down.get("/v2/")
        status = nexus.set_connectors(up=True)
        assert status["bound"] == {"8092": "docker-internal", "8095": "docker-busy"}
        assert api.delete(f"{API}/v1/repositories/docker-internal").status_code == 204
        assert "8092" not in nexus.connectors()["bound"]


# ---------------------------------------------------------------------------------------
# Faults, contract, logs, process control
# ---------------------------------------------------------------------------------------


def test_injected_503_is_answered_twice_then_clears(nexus: NexusDoubleProcess) -> None:
    nexus.add_fault(r"^/service/rest/v1/repositories/docker/.*", method="POST", status=503, times=2)
    with client(nexus) as api:
        body = hosted_body("docker-internal", None)
        first, second = (api.post(f"{API}/v1/repositories/docker/hosted", json=body) for _ in range(2))
        assert (first.status_code, second.status_code) == (503, 503)
        create(api, "repositories/docker/hosted", body)
        assert [r["fault"] for r in nexus.requests(kind="rest") if r["method"] == "POST"] == [
            "status",
            "status",
            None,
        ]

        nexus.add_fault(r"/v1/security/roles$", action="delay", seconds=1.0)
        with pytest.raises(httpx.ReadTimeout):
            api.get(f"{API}/v1/security/roles", timeout=0.3)
        nexus.clear_faults()
        nexus.add_fault(r"/v1/status$", action="reset", times=1)
        with pytest.raises(httpx.TransportError):
            api.get(f"{API}/v1/status")
        assert api.get(f"{API}/v1/status").status_code == 200


def test_every_get_endpoint_answers_within_the_models(
    nexus: NexusDoubleProcess, upstream: tuple[RegistryServer, dict[str, str]]
) -> None:
    registry, _ = upstream
    build_mirror(nexus, registry.url)
    with connector(nexus, GROUP_PORT, ("puller", PULLER_PASSWORD)) as pull:
        assert (
            pull.get("/v2/library/busybox/manifests/latest", headers={"Accept": MANIFEST_ACCEPT}).status_code
            == 200
        )
    with client(nexus) as api:

        def get(path: str, **params: str) -> Any:
            response = api.get(f"{API}{path}", params=params)
            assert response.status_code == 200, (path, response.text)
            return response.json()

        validate(m.EulaStatus, get("/v1/system/eula"))
        validate(list[m.RepositoryXO], get("/v1/repositories"))
        validate(m.RepositoryXO, get("/v1/repositories/docker-group"))
        validate(list[m.AbstractApiRepository], get("/v1/repositorySettings"))
        validate(m.DockerProxyApiRepository, get("/v1/repositories/docker/proxy/docker-dockerhub"))
        validate(m.DockerHostedApiRepository, get("/v1/repositories/docker/hosted/docker-internal"))
        validate(m.DockerGroupApiRepository, get("/v1/repositories/docker/group/docker-group"))
        validate(list[m.RoleXOResponse], get("/v1/security/roles"))
        validate(m.RoleXOResponse, get("/v1/security/roles/docker-pull"))
        validate(list[m.ApiUser], get("/v1/security/users"))
        validate(list[m.RealmApiXO], get("/v1/security/realms/available"))
        validate(list[StrictStr], get("/v1/security/realms/active"))
        validate(m.PageAssetXO, get("/v1/search/assets", repository="docker-group"))
        assets = get("/v1/assets", repository="docker-dockerhub")
        validate(m.PageAssetXO, assets)
        validate(m.AssetXO, get(f"/v1/assets/{assets['items'][0]['id']}"))
        privileges = get("/v1/security/privileges")
        validate(m.ApiPrivilegeRequest, get("/v1/security/privileges/nx-all"))
        # Nexus's own names for "all" privileges carry '*', which the generated model's
        # name pattern does not allow; everything else in them matches the model.
        starred = [p for p in privileges if "*" in p["name"]]
        validate(list[m.ApiPrivilegeRequest], [p for p in privileges if "*" not in p["name"]])
        validate(list[m.ApiPrivilegeRequest], [{**p, "name": p["name"].replace("*", "all")} for p in starred])
        assert "nx-repository-view-docker-docker-group-*" in {p["name"] for p in starred}


def test_log_names_requests_but_never_secrets(
    nexus: NexusDoubleProcess, upstream: tuple[RegistryServer, dict[str, str]]
) -> None:
    registry, _ = upstream
    build_mirror(nexus, registry.url)
    with connector(nexus, GROUP_PORT) as registry_client:
        token = registry_client.get("/v2/token", auth=("puller", PULLER_PASSWORD)).json()["token"]
        registry_client.get(
            "/v2/library/busybox/manifests/latest",
            headers={"Authorization": f"Bearer {token}", "Accept": MANIFEST_ACCEPT},
        )
    log = nexus.log_text()
    assert (
        "GET /v2/library/busybox/manifests/latest :8083 -> 200 user=puller repository=docker-group served-by=docker-dockerhub"
        in log
    )
    assert "POST /service/rest/v1/security/users :8081 -> 200 user=admin" in log
    for secret in (ADMIN_PASSWORD, PULLER_PASSWORD, token, "Authorization", "Basic "):
        assert secret not in log


def test_command_line_instance_starts_fresh_and_stop_pidfile_ends_it(tmp_path: Path) -> None:
    state_dir = tmp_path / "other"
    double = NexusDoubleProcess(OTHER_LAB.nexus, state_dir, ADMIN_PASSWORD, starting_seconds=2.0)
    try:
        double.start()
        assert oct((state_dir / "admin.password").stat().st_mode & 0o777) == "0o600"
        with httpx.Client(base_url=double.url, trust_env=False, timeout=5.0) as anonymous:
            assert anonymous.get(f"{API}/v1/status").status_code == 200
            assert anonymous.get(f"{API}/v1/status/writable").status_code == 503  # still starting
            deadline = time.monotonic() + 5
            while anonymous.get(f"{API}/v1/status/writable").status_code == 503:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        with client(double) as api:
            assert api.get(f"{API}/v1/system/eula").json()["accepted"] is False  # no --eula-accepted
        pid = int((state_dir / "nexus.pid").read_text())
        assert stop_pidfile(state_dir) is True
        deadline = time.monotonic() + 5
        while double.is_running() and time.monotonic() < deadline:  # is_running reaps our child
            time.sleep(0.05)
        assert not double.is_running() and not Path(f"/proc/{pid}").exists()
        assert stop_pidfile(state_dir) is False
    finally:
        double.stop()
        double.stop()  # idempotent
