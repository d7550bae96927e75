"""Real OCI registries for the homelab: Debian's `docker-registry` (distribution 2.8.2).

`RegistryServer` runs one registry process on a loopback address, either as a plain
registry (the docker.io / ghcr.io stand-ins) or as a pull-through cache (the legacy CT113
cache). `seed_images` fills a registry with tiny, deterministic images built in Python and
pushed with skopeo, so no docker engine and no internet are needed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx
import yaml

REGISTRY_BINARY = "/usr/bin/docker-registry"
SKOPEO_BINARY = "skopeo"

# The upstreams' standard contents (what the cutover's smoke pulls expect to find).
DOCKERHUB_IMAGES = ["library/busybox:latest", "library/alpine:3.20"]
GHCR_IMAGES = ["owner/tool:1.0"]

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
SKOPEO_TIMEOUT = 60.0
LOG_TAIL_LINES = 30

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

# Proxy variables must never route loopback traffic (or anything else) elsewhere.
_PROXY_VARS = frozenset(
    {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY"}
)
# distribution's repository-name grammar (reference.NameRegexp without a domain).
_REPO_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class RegistryError(RuntimeError):
    """A registry process or an image push did not do what was asked."""


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


# ---------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # Field 3, after the parenthesised command name (which may itself contain spaces).
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The registry leads its own session, so its process group id is its pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _wait_exited_unreaped(pid: int, timeout: float) -> bool | None:
    """Wait up to `timeout` for our child `pid` to exit, leaving it unreaped (a zombie).

    True: it is a zombie now, so its pid (and process group id) cannot be reused yet.
    False: still running. None: already reaped elsewhere, so the pid is no longer ours.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return None
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def stop_pid_file(pid_file: Path, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the registry recorded in `pid_file` (from any process); True if one was running.

    The pid is only signalled while /proc says it still runs `docker-registry` with the
    config that sits next to the pid file, so a recycled pid is never hit.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        pid_file.unlink(missing_ok=True)
        return False
    config = pid_file.parent / RegistryServer.CONFIG_NAME
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        cmdline = []
    ours = os.fsencode(REGISTRY_BINARY) in cmdline and os.fsencode(config) in cmdline
    running = ours and _pid_alive(pid)
    if running:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return running


class RegistryServer:
    """One `docker-registry serve` process; its config, storage, log and pid live in state_dir."""

    CONFIG_NAME = "config.yml"
    PID_NAME = "registry.pid"
    LOG_NAME = "registry.log"
    STORAGE_NAME = "storage"

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        state_dir: Path,
        proxy_remote_url: str | None = None,
        proxy_username: str | None = None,
        proxy_password: str | None = None,
    ) -> None:
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
        # Signs upload state only; fixed per instance so restarts within one run agree.
        self._http_secret = secrets.token_hex(16)
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None

    def __repr__(self) -> str:
        mode = f" proxy->{self.proxy_remote_url}" if self.proxy_remote_url else ""
        return f"RegistryServer({self.name!r} {self.url}{mode})"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

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
        return self.state_dir / self.STORAGE_NAME

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def config(self) -> dict[str, object]:
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
            "http": {
                "addr": self.address,
                # Set explicitly to silence the "no HTTP secret provided" warning.
                "secret": self._http_secret,
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
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

    def _address_in_use(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((self.host, self.port)) == 0

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Spawn the registry and wait until it answers GET /v2/ with 200."""
        if self.is_running():
            raise RegistryError(f"{self!r} is already running (pid {self.pid})")
        if not os.access(REGISTRY_BINARY, os.X_OK):
            raise RegistryError(f"{REGISTRY_BINARY} is missing: apt-get install docker-registry")
        # Without this check a stranger already on host:port would answer our readiness
        # probe while our own process dies on "address already in use".
        if self._address_in_use():
            raise RegistryError(f"{self.address} is already in use; cannot start {self.name}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(exist_ok=True)
        self._write_config()
        self._log_handle = self.log_path.open("ab")
        # The registry logs only to stdout/stderr; the file is where the log level applies.
        self._process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            cwd=self.state_dir,
            env=_child_env(),
            start_new_session=True,  # own process group: stop() takes everything with it
        )
        self.pid_file.write_text(f"{self._process.pid}\n")
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        with httpx.Client(trust_env=False, timeout=httpx.Timeout(1.0, connect=0.5)) as client:
            while time.monotonic() < deadline:
                code = self._process.poll()
                if code is not None:
                    raise RegistryError(
                        f"{self.name} exited with code {code} while starting; "
                        f"log tail ({self.log_path}):\n{_log_tail(self.log_path)}"
                    )
                try:
                    response = client.get(f"{self.url}/v2/")
                except httpx.HTTPError as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                else:
                    if response.status_code == 200:
                        return
                    last_error = f"GET /v2/ answered {response.status_code}"
                time.sleep(0.05)
        raise RegistryError(
            f"{self.name} at {self.url} not ready after {timeout:.0f}s ({last_error}); "
            f"log tail ({self.log_path}):\n{_log_tail(self.log_path)}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the process group, SIGKILL it after `timeout`; safe to call repeatedly."""
        process, self._process = self._process, None
        if process is not None:
            # Only while the leader is alive or an unreaped zombie does its pid surely
            # still name our group: wait without reaping, sweep the group, then reap.
            state = _wait_exited_unreaped(process.pid, 0) if process.returncode is None else None
            if state is False:
                _signal_group(process.pid, signal.SIGTERM)
                state = _wait_exited_unreaped(process.pid, timeout)
                if state is False:
                    _signal_group(process.pid, signal.SIGKILL)
                    state = _wait_exited_unreaped(process.pid, timeout)
            if state:
                _signal_group(process.pid, signal.SIGKILL)  # stragglers; none expected
            process.wait(timeout)
            self.pid_file.unlink(missing_ok=True)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    @classmethod
    def stop_from_pid_file(cls, state_dir: Path, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop a registry that another process started in `state_dir` (`make testbed-down`)."""
        return stop_pid_file(Path(state_dir) / cls.PID_NAME, timeout)

    def __enter__(self) -> Self:
        return self.start() if not self.is_running() else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


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
    env = _child_env()
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
