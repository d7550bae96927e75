"""Real OCI registries for the homelab: Debian's `docker-registry` (distribution 2.8.2).

`RegistryServer` runs one registry process on a loopback address, either as a plain
registry (the docker.io / ghcr.io stand-ins) or as a pull-through cache (the legacy CT113
cache). `seed_images` fills a registry with tiny, deterministic images built in Python and
pushed with skopeo, so no docker engine and no internet are needed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import secrets
import ssl
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Self

import httpx
import yaml

from tests.homelab.node_tools.k3sconfig import default_host
from tests.homelab.node_tools.real_containerd import DEFAULT_ENDPOINTS_PKI
from tests.homelab.pki import serving_identity
from tests.homelab.processes import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    Daemon,
    StartStop,
    child_env,
    command_line,
    http_probe,
    port_open,
    stop_pid_file,
)

REGISTRY_BINARY = "/usr/bin/docker-registry"
SKOPEO_BINARY = "skopeo"
DEFAULT_ENDPOINT_PORT = 443  # containerd reaches a registry's default endpoint over HTTPS

# The upstreams' standard contents (what the cutover's smoke pulls expect to find).
DOCKERHUB_IMAGES = ["library/busybox:latest", "library/alpine:3.20"]
GHCR_IMAGES = ["owner/tool:1.0"]

SKOPEO_TIMEOUT = 60.0

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
# Everything a containerd-style client accepts, so the registry never down-converts.
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))

# All image content is dated here so layer, config and manifest digests are stable.
FIXED_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
FIXED_CREATED = "2024-01-01T00:00:00Z"

# distribution's repository-name grammar (reference.NameRegexp without a domain).
_REPO_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class RegistryError(RuntimeError):
    """A registry process or an image push did not do what was asked."""


class RegistryServer(StartStop):
    """One `docker-registry serve` process; its config, storage, log and pid live in state_dir."""

    CONFIG_NAME = "config.yml"
    PID_NAME = "registry.pid"
    LOG_NAME = "registry.log"
    STORAGE_NAME = "storage"
    reuse_running = True  # `with` takes a running registry as it is

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        state_dir: Path,
        proxy_remote_url: str | None = None,
        proxy_username: str | None = None,
        proxy_password: str | None = None,
        tls: tuple[Path, Path, Path] | None = None,
        storage_dir: Path | None = None,
    ) -> None:
        """`tls` (ca.crt, server.crt, server.key) serves HTTPS; `storage_dir` shares another
        registry's storage (a second front on the same images)."""
        if (proxy_username is None) != (proxy_password is None):
            raise ValueError("proxy_username and proxy_password go together")
        if proxy_username is not None and proxy_remote_url is None:
            raise ValueError("proxy credentials need proxy_remote_url")
        self.name = name
        self.host = host
        self.port = port
        self.state_dir = Path(state_dir)
        self.proxy_remote_url = proxy_remote_url
        self.proxy_username = proxy_username
        self.proxy_password = proxy_password
        self.tls = tls
        self._storage_dir = storage_dir
        # Signs upload state only; fixed per instance so restarts within one run agree.
        self._http_secret = secrets.token_hex(16)
        # The registry logs only to stdout/stderr; the file is where the log level applies.
        self._daemon = Daemon(
            name,
            [REGISTRY_BINARY, "serve", str(self.config_path)],
            self.pid_file,
            self.log_path,
            cwd=self.state_dir,
            error=RegistryError,
        )

    def __repr__(self) -> str:
        mode = f" proxy->{self.proxy_remote_url}" if self.proxy_remote_url else ""
        return f"RegistryServer({self.name!r} {self.url}{mode})"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """host:port, the form image references and skopeo use."""
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.state_dir / self.CONFIG_NAME

    @property
    def pid_file(self) -> Path:
        return self.state_dir / self.PID_NAME

    @property
    def log_path(self) -> Path:
        return self.state_dir / self.LOG_NAME

    @property
    def storage_dir(self) -> Path:
        return self._storage_dir or self.state_dir / self.STORAGE_NAME

    @property
    def pid(self) -> int | None:
        return self._daemon.pid

    def config(self) -> dict[str, object]:
        http: dict[str, object] = {
            "addr": self.address,
            # Set explicitly to silence the "no HTTP secret provided" warning.
            "secret": self._http_secret,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self.tls is not None:
            http["tls"] = {"certificate": str(self.tls[1]), "key": str(self.tls[2])}
        config: dict[str, object] = {
            "version": 0.1,
            "log": {
                "level": "info",
                "formatter": "text",
                "fields": {"service": "registry", "registry": self.name},
            },
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                # Blob descriptors from memory: fewer stat calls, nothing persistent.
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": http,
        }
        if self.proxy_remote_url is not None:
            proxy: dict[str, str] = {"remoteurl": self.proxy_remote_url}
            if self.proxy_username is not None and self.proxy_password is not None:
                proxy["username"] = self.proxy_username
                proxy["password"] = self.proxy_password
            config["proxy"] = proxy
        return config

    def _write_config(self) -> None:
        text = yaml.safe_dump(self.config(), sort_keys=False)
        # 0600 from creation: the file can hold the upstream password and the HTTP secret.
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(self.config_path, 0o600)  # O_CREAT's mode does not apply to an old file

    def is_running(self) -> bool:
        return self._daemon.is_running()

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Spawn the registry and wait until it answers GET /v2/ with 200."""
        if self.is_running():
            raise RegistryError(f"{self!r} is already running (pid {self.pid})")
        if not os.access(REGISTRY_BINARY, os.X_OK):
            raise RegistryError(f"{REGISTRY_BINARY} is missing: apt-get install docker-registry")
        # Without this check a stranger already on host:port would answer our readiness
        # probe while our own process dies on "address already in use".
        if port_open(self.host, self.port):
            raise RegistryError(f"{self.address} is already in use; cannot start {self.name}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(exist_ok=True)
        self._write_config()
        verify = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else True
        with httpx.Client(trust_env=False, verify=verify, timeout=httpx.Timeout(1.0, connect=0.5)) as client:
            self._daemon.start(http_probe(client, f"{self.url}/v2/"), timeout)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the process group, SIGKILL it after `timeout`; safe to call repeatedly."""
        self._daemon.stop(timeout)

    @classmethod
    def stop_from_pid_file(cls, state_dir: Path, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop a registry that another process started in `state_dir` (`make testbed-down`).

        The pid is only signalled while /proc says it still runs `docker-registry` with the
        config that sits next to the pid file, so a recycled pid is never hit.
        """
        config = str(Path(state_dir) / cls.CONFIG_NAME)

        def ours(pid: int) -> bool:
            args = command_line(pid)
            return REGISTRY_BINARY in args and config in args

        return stop_pid_file(Path(state_dir) / cls.PID_NAME, ours, timeout)


def default_endpoints_tls(upstreams: Mapping[str, str], lab_root: Path) -> tuple[Path, Path, Path]:
    """TLS for the registries' default endpoints as a real containerd reaches them: one
    certificate for every registry's default host (registry-1.docker.io, ghcr.io) and the
    addresses of their stand-ins (`upstreams`: registry -> address), from a lab CA that the
    nodes' real containerd trusts. Each front is then a RegistryServer on
    DEFAULT_ENDPOINT_PORT of the stand-in's address, sharing its storage, with this `tls`."""
    return serving_identity(
        Path(lab_root) / DEFAULT_ENDPOINTS_PKI,
        "homelab default endpoints CA",
        sorted(default_host(registry) for registry in upstreams),
        sorted(set(upstreams.values())),
    )


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------


def parse_reference(reference: str) -> tuple[str, str]:
    """'library/busybox:latest' -> ('library/busybox', 'latest'); no registry host allowed."""
    repository, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        raise ValueError(f"image reference {reference!r} needs an explicit :tag")
    if not _REPO_RE.fullmatch(repository):
        raise ValueError(f"{repository!r} is not a valid repository name (no host part)")
    if not _TAG_RE.fullmatch(tag):
        raise ValueError(f"{tag!r} is not a valid tag")
    return repository, tag


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _layer_tar(reference: str) -> bytes:
    """A small root filesystem whose bytes depend only on `reference`."""
    entries: list[tuple[str, bytes | None, int]] = [
        ("bin/", None, 0o755),
        ("bin/hello", f"#!/bin/sh\necho 'hello from {reference}'\n".encode(), 0o755),
        ("etc/", None, 0o755),
        ("etc/homelab-image", f"{reference}\n".encode(), 0o644),
        ("etc/os-release", b'ID=homelab\nNAME="nexus-cutover homelab seed"\n', 0o644),
    ]
    buffer = io.BytesIO()
    # USTAR: no PAX records (which could carry sub-second times); order is the list order.
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = FIXED_EPOCH
            info.mode = mode
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _write_blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = _sha256(data)
    (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def build_oci_layout(layout: Path, reference: str) -> str:
    """Write a one-image OCI layout for `reference` into `layout`; return its manifest digest.

    The tag inside the layout is the reference's tag, so skopeo reads it as
    `oci:<layout>:<tag>`.
    """
    _, tag = parse_reference(reference)
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    tar_bytes = _layer_tar(reference)
    # mtime=0 and no file name keep the gzip header (and so the layer digest) fixed.
    layer = _write_blob(layout, gzip.compress(tar_bytes, compresslevel=9, mtime=0))
    labels = {"org.opencontainers.image.title": reference}
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": FIXED_CREATED,
        "config": {
            "Cmd": ["/bin/hello"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [_sha256(tar_bytes)]},
        "history": [{"created": FIXED_CREATED, "created_by": f"homelab seed {reference}"}],
    }
    config = _write_blob(layout, _canonical_json(image_config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **config},
        "layers": [{"mediaType": OCI_LAYER_GZIP, **layer}],
        "annotations": labels,
    }
    manifest_blob = _write_blob(layout, _canonical_json(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                **manifest_blob,
                "annotations": {"org.opencontainers.image.ref.name": tag},
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    (layout / "index.json").write_bytes(_canonical_json(index))
    (layout / "oci-layout").write_bytes(_canonical_json({"imageLayoutVersion": "1.0.0"}))
    return str(manifest_blob["digest"])


def _registry_address(registry_url: str) -> str:
    url = httpx.URL(registry_url)
    if url.scheme != "http" or not url.host or url.port is None or url.path not in ("", "/"):
        raise ValueError(f"registry URL must look like http://host:port, got {registry_url!r}")
    return f"{url.host}:{url.port}"


def _skopeo(args: list[str], workdir: Path, timeout: float = SKOPEO_TIMEOUT) -> str:
    """Run skopeo isolated from the host's containers config; return stdout, raise on failure."""
    policy = workdir / "policy.json"
    if not policy.exists():
        # Our own permissive policy and an empty registries.conf: a host policy that
        # demands signatures, or mirror/alias rules, must not change what we push or read.
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
        (workdir / "registries.conf").write_text("")
    env = child_env()
    env["CONTAINERS_REGISTRIES_CONF"] = str(workdir / "registries.conf")
    command = [SKOPEO_BINARY, "--policy", str(policy), "--tmpdir", str(workdir), *args]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RegistryError(f"skopeo timed out after {timeout:.0f}s: {' '.join(command)}") from exc
    except FileNotFoundError as exc:
        raise RegistryError("skopeo is missing: apt-get install skopeo") from exc
    if result.returncode != 0:
        raise RegistryError(
            f"skopeo failed (exit {result.returncode}): {' '.join(command)}\n{result.stderr.strip()}"
        )
    return result.stdout


def manifest_digest(registry_url: str, reference: str, timeout: float = 5.0) -> str:
    """The Docker-Content-Digest a registry reports for `reference` (repo:tag)."""
    repository, tag = parse_reference(reference)
    with httpx.Client(trust_env=False, timeout=timeout) as client:
        response = client.head(
            f"{registry_url.rstrip('/')}/v2/{repository}/manifests/{tag}",
            headers={"Accept": MANIFEST_ACCEPT},
        )
    if response.status_code != 200:
        raise RegistryError(f"HEAD {reference} on {registry_url}: {response.status_code}")
    digest = response.headers.get("Docker-Content-Digest")
    if not digest:
        raise RegistryError(f"{registry_url} sent no Docker-Content-Digest for {reference}")
    return digest


def seed_images(registry_url: str, images: Iterable[str], manifest_format: str = "v2s2") -> dict[str, str]:
    """Push one tiny image per reference into `registry_url`; return reference -> digest.

    `manifest_format` is skopeo's --format: "v2s2" (docker schema 2, what Docker Hub
    mostly serves and every client accepts) or "oci" (kept as built).
    """
    address = _registry_address(registry_url)
    if manifest_format not in ("v2s2", "oci"):
        raise ValueError(f"manifest_format must be 'v2s2' or 'oci', not {manifest_format!r}")
    references = list(images)
    for reference in references:
        parse_reference(reference)  # fail on a bad name before pushing anything
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="homelab-seed-") as tmp:
        workdir = Path(tmp)
        for number, reference in enumerate(references):
            layout = workdir / f"layout-{number}"
            build_oci_layout(layout, reference)
            _, tag = parse_reference(reference)
            _skopeo(
                [
                    "copy",
                    "--quiet",
                    "--dest-tls-verify=false",
                    "--dest-no-creds",
                    "--format",
                    manifest_format,
                    f"oci:{layout}:{tag}",
                    f"docker://{address}/{reference}",
                ],
                workdir,
            )
            digests[reference] = manifest_digest(registry_url, reference)
    return digests


def skopeo_inspect(registry_url: str, reference: str) -> Mapping[str, object]:
    """`skopeo inspect` of `reference` in `registry_url`, as a client would see it."""
    address = _registry_address(registry_url)
    parse_reference(reference)
    with tempfile.TemporaryDirectory(prefix="homelab-inspect-") as tmp:
        out = _skopeo(
            ["inspect", "--tls-verify=false", "--no-creds", f"docker://{address}/{reference}"],
            Path(tmp),
        )
    return json.loads(out)


def pull_image(registry_url: str, reference: str, dest: Path) -> Path:
    """Pull `reference` with every blob into skopeo's `dir:` format at `dest`; return dest.

    Unlike `skopeo_inspect` (manifest and config only) this fetches the layers too, so
    it proves a registry, or a pull-through cache, can serve the whole image.
    """
    address = _registry_address(registry_url)
    parse_reference(reference)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="homelab-pull-") as tmp:
        _skopeo(
            [
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                "--src-no-creds",
                f"docker://{address}/{reference}",
                f"dir:{dest}",
            ],
            Path(tmp),
        )
    return dest


def read_seed_marker(image_dir: Path) -> str:
    """The reference a seeded image was built for, read from a `pull_image` directory."""
    manifest = json.loads((image_dir / "manifest.json").read_text())
    layer = image_dir / str(manifest["layers"][0]["digest"]).removeprefix("sha256:")
    with tarfile.open(layer, mode="r:gz") as tar:
        member = tar.extractfile("etc/homelab-image")
        if member is None:
            raise RegistryError(f"{image_dir} is not a seeded homelab image")
        return member.read().decode().strip()
