"""Docker registry V2 clients' view of a mirror: does it answer, and does it serve a pull?

Pure part: `parse_challenge`, `token_params`, `verify_digest`. I/O part: `check_pull`,
which goes through the registry auth flow (bearer token or basic) the way containerd does.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode

from providers.http import Endpoint, HttpError

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryCheckError(RuntimeError):
    """The mirror did not serve the pull; the message carries the HTTP evidence."""


@dataclass(frozen=True)
class PullEvidence:
    ping_status: int
    auth_scheme: str
    digest: str
    media_type: str

    def as_dict(self) -> dict[str, str | int]:
        """camelCase, like every other output of this program."""
        return {
            "pingStatus": self.ping_status,
            "authScheme": self.auth_scheme,
            "digest": self.digest,
            "mediaType": self.media_type,
        }


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """('bearer'|'basic'|'', params) from a WWW-Authenticate header."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


def token_params(challenge: dict[str, str], repository: str, actions: str) -> dict[str, str]:
    params = {"scope": f"repository:{repository}:{actions}"}
    if "service" in challenge:
        params["service"] = challenge["service"]
    return params


def verify_digest(body: bytes, announced: str) -> str:
    """The content digest of `body`; raises when the registry announced another one."""
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if announced and announced != actual:
        raise RegistryCheckError(f"manifest digest mismatch: registry said {announced}, content is {actual}")
    return actual


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class Fetch(Protocol):
    """One GET/HEAD as some client sees the registry: (status, lower-case headers, body)."""

    def __call__(
        self, what: str, url: str, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]: ...


def endpoint_fetch(registry: Endpoint) -> Fetch:
    """Fetch from where pulumi runs (httpx, with the endpoint's timeout and retries)."""

    def fetch(what: str, url: str, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        response = registry.request(what, "GET", url, headers=headers, ok=(200,), allowed=(401, 403, 404))
        return response.status_code, response.headers, response.content

    return fetch


def login(
    fetch: Fetch, base_url: str, repository: str, actions: str, username: str, password: str
) -> tuple[int, str, dict[str, str]]:
    """Ping /v2/ and answer its challenge as `username`: (ping status, scheme used, headers
    that authorize the next requests), the way containerd and docker clients do."""
    ping_status, ping_headers, _ = fetch("ping the registry", f"{base_url}/v2/", {})
    if ping_status not in (200, 401):
        raise RegistryCheckError(f"GET {base_url}/v2/ -> {ping_status} (a registry answers 200 or 401)")
    challenge = ping_headers.get("www-authenticate", "")
    scheme, params = parse_challenge(challenge)
    if ping_status == 200 or scheme == "basic":
        return ping_status, "basic", {"Authorization": basic_header(username, password)}
    if scheme != "bearer" or "realm" not in params:
        raise RegistryCheckError(f"GET {base_url}/v2/ -> 401 with an unusable challenge {challenge!r}")
    query = urlencode(token_params(params, repository, actions))
    status, _, body = fetch(
        f"get a {actions} token for {repository} as {username}",
        f"{params['realm']}?{query}",
        {"Authorization": basic_header(username, password)},
    )
    token = json.loads(body or b"{}") if status == 200 else {}
    bearer = token.get("token") or token.get("access_token")
    if not bearer:
        raise RegistryCheckError(f"{params['realm']} gave {username} no {actions} token (HTTP {status})")
    return ping_status, "bearer", {"Authorization": f"Bearer {bearer}"}


def manifest(
    fetch: Fetch, base_url: str, repository: str, reference: str, headers: Mapping[str, str], query: str = ""
) -> tuple[str, str]:
    """(digest, media type) of repository:reference; the digest is checked against the bytes."""
    url = f"{base_url}/v2/{repository}/manifests/{reference}{query}"
    status, got, body = fetch(
        f"pull the manifest of {repository}:{reference}", url, {**headers, "Accept": MANIFEST_ACCEPT}
    )
    if status != 200:
        raise RegistryCheckError(f"GET {url} -> {status}: {body[:300].decode(errors='replace')}")
    return verify_digest(body, got.get("docker-content-digest", "")), got.get("content-type", "")


def check_pull(
    registry: Endpoint, repository: str, reference: str, username: str, password: str
) -> PullEvidence:
    """Fetch the manifest of repository:reference through `registry` as `username`."""
    fetch, base = endpoint_fetch(registry), registry.base_url.rstrip("/")
    try:
        ping_status, scheme, headers = login(fetch, base, repository, "pull", username, password)
        digest, media_type = manifest(fetch, base, repository, reference, headers)
    except HttpError as err:
        raise RegistryCheckError(str(err)) from None
    return PullEvidence(ping_status, scheme, digest, media_type)


DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def canary_image(tag: str) -> tuple[bytes, bytes, bytes]:
    """(layer, config, manifest) of a tiny image that exists nowhere but where we push it:
    one file naming its tag. Deterministic for a given tag."""
    payload = f"nexus-cutover canary {tag}\n".encode()
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("nexus-cutover-canary")
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        archive.addfile(info, io.BytesIO(payload))
    tar = tar_buffer.getvalue()
    layer = gzip.compress(tar, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"org.nexus-cutover.canary": tag}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": _sha(config)},
            "layers": [{"mediaType": DOCKER_LAYER, "size": len(layer), "digest": _sha(layer)}],
        },
        sort_keys=True,
    ).encode()
    return layer, config, manifest


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_canary(registry: Endpoint, repository: str, tag: str, username: str, password: str) -> str:
    """Push the canary image as `username` (a push-scoped login, as CI's would be) and
    return its manifest digest."""
    try:
        base = registry.base_url.rstrip("/")
        _, _, headers = login(endpoint_fetch(registry), base, repository, "push,pull", username, password)
        layer, config, manifest = canary_image(tag)
        for blob in (layer, config):
            digest = _sha(blob)
            head = registry.request(
                f"look for blob {digest[:19]}",
                "HEAD",
                f"/v2/{repository}/blobs/{digest}",
                headers=headers,
                allowed=(404,),
            )
            if head.status_code == 200:
                continue
            started = registry.request(
                f"start a blob upload to {repository} as {username}",
                "POST",
                f"/v2/{repository}/blobs/uploads/",
                headers=headers,
                ok=(202,),
            )
            location = started.headers["location"]
            separator = "&" if "?" in location else "?"
            registry.request(
                f"upload blob {digest[:19]} to {repository}",
                "PUT",
                f"{location}{separator}digest={digest}",
                content=blob,
                headers={**headers, "Content-Type": "application/octet-stream"},
                ok=(201, 204),
            )
        pushed = registry.request(
            f"push the manifest of {repository}:{tag} as {username}",
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            content=manifest,
            headers={**headers, "Content-Type": DOCKER_MANIFEST},
            ok=(201, 200),
        )
    except HttpError as err:
        raise RegistryCheckError(str(err)) from None
    return pushed.headers.get("docker-content-digest") or _sha(manifest)
