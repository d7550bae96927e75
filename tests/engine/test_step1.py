"""Stage 1 through the real engine, against the homelab's Nexus double and upstream registries."""

import base64
import json
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from pulumi import automation as auto

from components.settings import SECRET_KEYS
from tests.engine.harness import state_at_rest
from tests.engine.lab_stack import lab_stack, running_homelab
from tests.homelab.lab import Homelab

pytestmark = pytest.mark.engine

ENGINE_LAB = 21


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Homelab]:
    with running_homelab(tmp_path_factory.mktemp("engine-lab"), ENGINE_LAB) as homelab:
        yield homelab


@pytest.fixture
def admin(lab) -> Iterator[httpx.Client]:
    auth = ("admin", lab.secrets()["nexusAdminPassword"])
    with httpx.Client(
        base_url=f"{lab.nexus_url}/service/rest", auth=auth, timeout=5, trust_env=False
    ) as client:
        yield client


def skopeo_inspect(url: str, image: str, creds: str | None) -> subprocess.CompletedProcess:
    auth = ["--creds", creds] if creds else ["--no-creds"]
    return subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", *auth, f"docker://{url.removeprefix('http://')}/{image}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_stage1_lifecycle_through_the_engine(lab, admin, tmp_path):
    started = time.monotonic()
    digests = json.loads((lab.root / "digests.json").read_text())
    realms_before = admin.get("/v1/security/realms/active").json()
    with lab_stack(lab, tmp_path, "step1") as st:
        preview = st.preview()
        # stack, component, readiness, realms, 7 repos (4 docker, 2 pypi, apt-debian),
        # 2 roles, 2 users, pull and push checks
        assert preview.change_summary == {"create": 17}

        up = st.up()
        assert up.summary.result == "succeeded"
        step1 = up.outputs["step1"].value
        assert step1["checkDigest"] == digests["library/busybox:latest"]
        assert step1["checkAuthScheme"] == "bearer"
        group = admin.get("/v1/repositories/docker/group/docker-group").json()
        assert group["group"]["memberNames"] == ["docker-internal", "docker-dockerhub", "docker-ghcr"]
        assert group["docker"]["httpPort"] == 8083
        assert admin.get("/v1/security/realms/active").json() == [*realms_before, "DockerToken"]

        # A real registry client through the group: the pull user gets in, nobody else does.
        pull = f"shim-puller:{lab.secrets()['pullPassword']}"
        assert skopeo_inspect(lab.docker_group_url, "library/busybox:latest", pull).returncode == 0
        assert skopeo_inspect(lab.docker_group_url, "owner/tool:1.0", pull).returncode == 0
        assert skopeo_inspect(lab.docker_group_url, "library/busybox:latest", None).returncode != 0

        assert set(st.preview().change_summary) == {"same"}

        # Someone reorders the group members in the Nexus UI: refresh sees it, up repairs it.
        group["group"]["memberNames"] = ["docker-dockerhub", "docker-internal", "docker-ghcr"]
        assert admin.put("/v1/repositories/docker/group/docker-group", json=group).status_code == 204
        st.refresh()
        assert st.preview().change_summary.get("update") == 1
        st.up()
        got = admin.get("/v1/repositories/docker/group/docker-group").json()
        assert got["group"]["memberNames"] == ["docker-internal", "docker-dockerhub", "docker-ghcr"]

        # A repo deleted outside Pulumi is planned for re-creation, not an error.
        assert admin.delete("/v1/repositories/docker-ghcr").status_code == 204
        st.refresh()
        assert st.preview().change_summary.get("create") == 1
        assert st.up().summary.result == "succeeded"
        assert admin.get("/v1/repositories/docker/proxy/docker-ghcr").status_code == 200

        # No plaintext secret, nor its base64 form, in the state files (checkpoints, history).
        exported = state_at_rest(tmp_path / "state")
        assert "docker-group" in exported and "secretDigest" in exported  # the scan reads real state
        for key in SECRET_KEYS:
            value = lab.secrets()[key]
            assert value not in exported
            assert base64.b64encode(value.encode()).decode() not in exported

        history = st.history()
        assert [h.kind for h in history[:3]] == ["update", "refresh", "update"]

        assert st.destroy().summary.result == "succeeded"
        remaining = {r["name"] for r in admin.get("/v1/repositories").json()}
        assert remaining.isdisjoint({"docker-group", "docker-internal", "docker-dockerhub", "docker-ghcr"})
        assert admin.get("/v1/security/realms/active").json() == realms_before
        assert admin.get("/v1/security/users", params={"userId": "shim-puller"}).json() == []
    print(f"\nstage 1 lifecycle through the engine: {time.monotonic() - started:.1f}s")


def test_bad_repo_setting_fails_at_preview_and_nothing_reaches_nexus(lab, admin, tmp_path):
    before = admin.get("/v1/repositories").json()
    with lab_stack(lab, tmp_path, "bad") as st:
        st.set_config(
            "nexus-cutover:repos",
            auto.ConfigValue(
                json.dumps({"Docker-Ghcr": {"format": "docker", "type": "proxy", "remoteUrl": "ghcr.io"}})
            ),
            path=False,
        )
        with pytest.raises(auto.CommandError) as failed:
            st.preview()
    message = str(failed.value)
    assert (
        "nexus-cutover:repos.Docker-Ghcr.name: 'Docker-Ghcr': docker repository names must be lowercase"
        in message
    )
    assert (
        "nexus-cutover:repos.Docker-Ghcr.remoteUrl: 'ghcr.io' must be an http:// or https:// URL" in message
    )
    assert admin.get("/v1/repositories").json() == before


def test_repos_left_by_the_old_script_are_adopted_and_kept_on_destroy(lab, admin, tmp_path):
    old_script_body = {
        "name": "docker-ghcr",
        "online": True,
        "storage": {"blobStoreName": "default", "strictContentTypeValidation": False},
        "proxy": {"remoteUrl": "https://ghcr.io", "contentMaxAge": 60, "metadataMaxAge": 60},
        "negativeCache": {"enabled": False, "timeToLive": 1},
        "httpClient": {"blocked": False, "autoBlock": False},
        "docker": {"v1Enabled": False, "forceBasicAuth": True},
        "dockerProxy": {"indexType": "REGISTRY"},
    }
    assert admin.post("/v1/repositories/docker/proxy", json=old_script_body).status_code == 201
    with lab_stack(lab, tmp_path, "adopt") as st:
        with pytest.raises(auto.CommandError, match="docker-ghcr already exists in Nexus"):
            st.up()
        st.refresh()  # forget the half-finished update's pending operations
        config = lab.stack_config()["nexus-cutover:repos"]
        config["docker-ghcr"]["adopt"] = True
        st.set_config("nexus-cutover:repos", auto.ConfigValue(json.dumps(config)))
        assert st.up().summary.result == "succeeded"
        adopted = admin.get("/v1/repositories/docker/proxy/docker-ghcr").json()
        assert adopted["proxy"]["remoteUrl"] == config["docker-ghcr"]["remoteUrl"]
        assert adopted["docker"]["forceBasicAuth"] is False
        assert st.destroy().summary.result == "succeeded"
    assert admin.get("/v1/repositories/docker/proxy/docker-ghcr").status_code == 200
    assert admin.get("/v1/repositories/docker/group/docker-group").status_code == 404
    assert admin.delete("/v1/repositories/docker-ghcr").status_code == 204
