"""Real docker-registry processes on loopback, seeded by skopeo (no docker, no internet)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests.homelab.addresses import LabAddresses
from tests.homelab.registries import (
    DOCKERHUB_IMAGES,
    GHCR_IMAGES,
    REGISTRY_BINARY,
    RegistryError,
    RegistryServer,
    build_oci_layout,
    manifest_digest,
    parse_reference,
    pull_image,
    read_seed_marker,
    seed_images,
    skopeo_inspect,
)

pytestmark = pytest.mark.skipif(
    not os.access(REGISTRY_BINARY, os.X_OK) or shutil.which("skopeo") is None,
    reason="needs Debian's docker-registry and skopeo",
)

# Labs 90+ are this module's own (addresses.py: tests use 21 and up, `make testbed-up` 20).
LAB = LabAddresses(90)
OTHER_LAB = LabAddresses(91)
PORT = 5000

StartRegistry = Callable[..., RegistryServer]  # the start_registry fixture (conftest.py)


def _pid_gone(pid: int) -> bool:
    """No process, or only an unreaped zombie, has this pid."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return status.rsplit(")", 1)[1].split()[0] == "Z"


def test_seeded_upstream_serves_the_digests_seeding_returned(start_registry: StartRegistry):
    upstream = start_registry("dockerhub", LAB.upstream_dockerhub)

    digests = seed_images(upstream.url, DOCKERHUB_IMAGES)

    assert list(digests) == DOCKERHUB_IMAGES
    assert len(set(digests.values())) == len(DOCKERHUB_IMAGES)  # each image has its own content
    inspected = skopeo_inspect(upstream.url, "library/busybox:latest")
    assert inspected["Digest"] == digests["library/busybox:latest"]
    assert (inspected["Architecture"], inspected["Os"]) == ("amd64", "linux")
    assert manifest_digest(upstream.url, "library/alpine:3.20") == digests["library/alpine:3.20"]


def test_seeding_gives_the_same_digests_every_time_in_every_registry(
    start_registry: StartRegistry,
):
    first = start_registry("dockerhub", LAB.upstream_dockerhub)
    second = start_registry("ghcr", LAB.upstream_ghcr)

    images = DOCKERHUB_IMAGES + GHCR_IMAGES
    assert seed_images(first.url, images) == seed_images(second.url, images)
    # Pushing again over the same tags changes nothing either.
    assert seed_images(first.url, GHCR_IMAGES) == seed_images(second.url, GHCR_IMAGES)


def test_oci_layouts_are_byte_identical_across_builds(tmp_path: Path):
    first = build_oci_layout(tmp_path / "a", "owner/tool:1.0")
    second = build_oci_layout(tmp_path / "b", "owner/tool:1.0")
    other = build_oci_layout(tmp_path / "c", "owner/other:1.0")

    assert first == second != other
    names = sorted(p.name for p in (tmp_path / "a" / "blobs" / "sha256").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b" / "blobs" / "sha256").iterdir())


def test_pull_through_registry_serves_images_of_its_upstream(start_registry: StartRegistry, tmp_path: Path):
    upstream = start_registry("dockerhub", LAB.upstream_dockerhub)
    digests = seed_images(upstream.url, DOCKERHUB_IMAGES)
    cache = start_registry("legacy-cache", LAB.legacy_cache, proxy_remote_url=upstream.url)

    inspected = skopeo_inspect(cache.url, "library/busybox:latest")
    image = pull_image(cache.url, "library/busybox:latest", tmp_path / "pulled")

    assert inspected["Digest"] == digests["library/busybox:latest"]
    assert read_seed_marker(image) == "library/busybox:latest"  # the layers came through too
    assert "Registry configured as a proxy cache to" in cache.log_path.read_text()


def test_pull_through_registry_keeps_serving_what_it_cached_after_upstream_stops(
    start_registry: StartRegistry,
):
    upstream = start_registry("dockerhub", LAB.upstream_dockerhub)
    digests = seed_images(upstream.url, DOCKERHUB_IMAGES)
    cache = start_registry("legacy-cache", LAB.legacy_cache, proxy_remote_url=upstream.url)
    skopeo_inspect(cache.url, "library/busybox:latest")

    upstream.stop()

    assert skopeo_inspect(cache.url, "library/busybox:latest")["Digest"] == digests["library/busybox:latest"]
    with pytest.raises(RegistryError, match="manifest unknown"):
        skopeo_inspect(cache.url, "library/alpine:3.20")  # never pulled, so never cached


def test_pull_through_registry_will_not_start_while_its_upstream_is_down(
    start_registry: StartRegistry,
):
    # distribution 2.8.2 pings <remoteurl>/v2/ while starting and panics if that fails.
    with pytest.raises(RegistryError, match="exited with code") as failure:
        start_registry(
            "legacy-cache",
            LAB.legacy_cache,
            proxy_remote_url=f"http://{LAB.upstream_dockerhub}:{PORT}",
        )
    assert "connection refused" in str(failure.value)


def test_stop_leaves_no_registry_process_behind(start_registry: StartRegistry):
    server = start_registry("dockerhub", LAB.upstream_dockerhub)
    pid = server.pid
    assert pid is not None and server.pid_file.read_text().strip() == str(pid)

    server.stop()
    server.stop()  # idempotent

    assert _pid_gone(pid)
    assert not server.pid_file.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/v2/", timeout=1.0, trust_env=False)


def test_another_process_can_stop_a_registry_through_its_pid_file(start_registry: StartRegistry):
    server = start_registry("dockerhub", OTHER_LAB.upstream_dockerhub)
    pid = server.pid
    assert pid is not None

    # What `make testbed-down` does: a fresh interpreter that only knows the state dir.
    code = "import sys; from pathlib import Path; from tests.homelab.registries import RegistryServer; sys.exit(0 if RegistryServer.stop_from_pid_file(Path(sys.argv[1])) else 3)"
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code, str(server.state_dir)], cwd=root, check=True, timeout=30)

    assert _pid_gone(pid)
    assert not server.pid_file.exists()
    assert RegistryServer.stop_from_pid_file(server.state_dir) is False  # nothing left to stop
    server.stop()  # reaps the zombie; still safe


def test_stale_pid_file_never_signals_an_unrelated_process(tmp_path: Path):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / RegistryServer.PID_NAME).write_text(f"{bystander.pid}\n")
        assert RegistryServer.stop_from_pid_file(tmp_path) is False
        assert bystander.poll() is None
        assert not (tmp_path / RegistryServer.PID_NAME).exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_registry_refuses_an_address_that_is_already_taken(start_registry: StartRegistry):
    first = start_registry("dockerhub", LAB.upstream_dockerhub)

    with pytest.raises(RegistryError, match="already in use"):
        start_registry("impostor", first.host)
    assert httpx.get(f"{first.url}/v2/", timeout=1.0, trust_env=False).status_code == 200


def test_config_is_private_and_describes_a_pull_through_cache(tmp_path: Path):
    server = RegistryServer(
        "legacy-cache",
        LAB.legacy_cache,
        5002,
        tmp_path,
        proxy_remote_url="http://127.90.0.3:5000",
        proxy_username="robot",
        proxy_password="s3cret",
    )
    server._write_config()

    assert stat.S_IMODE(server.config_path.stat().st_mode) == 0o600
    config = yaml.safe_load(server.config_path.read_text())
    assert config["http"]["addr"] == f"{LAB.legacy_cache}:5002"
    assert config["proxy"] == {
        "remoteurl": "http://127.90.0.3:5000",
        "username": "robot",
        "password": "s3cret",
    }
    assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "storage")
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["log"]["level"] == "info"
    assert "auth" not in config


@pytest.mark.parametrize(
    "reference", ["busybox", "library/busybox", "127.0.0.1:5000/x:1", "Upper/case:1", "a/b:bad/tag"]
)
def test_references_need_a_plain_repository_and_a_tag(reference: str):
    with pytest.raises(ValueError):
        parse_reference(reference)
