"""containerd's image pulls on a homelab node: real registry V2 traffic, containerd's host order.

What a pull does (containerd 1.7 remotes/docker with k3s's certs.d, read afresh per pull):
- hosts = the [host."..."] entries of certs.d/<registry>/hosts.toml (or certs.d/_default/)
  in file order, then the registry's default endpoint (`server`); no hosts.toml: the
  default endpoint only. The default endpoint of registry R is served here by the lab's
  stand-in for R (node.json `upstreams`); an R without one cannot be resolved (offline).
- resolve: HEAD manifests/<tag> on each host in turn; connection errors, auth failures,
  404 and 5xx alike move on to the next host -- the fallback trap. The manifest and every
  blob are then fetched trying the hosts in the same order again.
- requests to a mirror carry `?ns=<registry>`; a host's `rewrite` rules apply to the name.
- 401: Bearer (OAuth POST to the realm with the credentials, then GET with Basic on
  400/401/404/405, anonymous GET without credentials) or Basic; credentials come from the
  config.toml that containerd read when it started (configs."host:port".auth), or --creds.
- every blob's sha256 and size are checked; an index resolves to linux/amd64.
Content lands in the node's content store; one JSON line per pull goes to
var/log/containerd-pulls.log (no credentials in it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.homelab.node_tools.common import (
    CERTS_D,
    CONTENT_BLOBS,
    IMAGE_INDEX,
    PULL_LOG,
    RUNTIME_CONFIG,
    Node,
    now_iso,
    write_private,
)
from tests.homelab.node_tools.k3sconfig import DOCKER_HUB, DOCKER_HUB_HOST, _is_localhost

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX, "*/*"))
USER_AGENT = "containerd/v1.7.22-k3s1"
PLATFORM = ("linux", "amd64")
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
ALL_CAPABILITIES = frozenset({"pull", "resolve", "push"})

_REFERENCE = re.compile(
    r"^(?P<name>[a-z0-9A-Z.\-_:/]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


class PullError(Exception):
    """The pull failed; `not_found` picks containerd's NotFound code."""

    def __init__(self, message: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


# ---------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def object(self) -> str:
        """What resolve asks for: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str, normalize: bool = True) -> Reference:
    """docker's ParseNormalizedNamed (normalize) or containerd's strict form (ctr)."""
    match = _REFERENCE.match(text)
    if not match:
        raise PullError(f"failed to parse image reference {json.dumps(text)}: invalid reference format")
    name, tag, digest = match["name"], match["tag"], match["digest"]
    first, slash, rest = name.partition("/")
    if not slash or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        if not normalize:
            raise PullError(f"failed to resolve reference {json.dumps(text)}: object required")
        domain, path = DOCKER_HUB, name
    else:
        domain, path = first, rest
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not all(_PATH_COMPONENT.match(part) for part in path.split("/")):
        raise PullError(f"failed to parse image reference {json.dumps(text)}: invalid reference format")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(domain, path, tag, digest)


# ---------------------------------------------------------------------------------------
# Hosts for a registry (containerd ConfigureHosts + certs.d)
# ---------------------------------------------------------------------------------------


@dataclass
class RegistryHost:
    url: str  # the endpoint as configured, ending in its API root (…/v2)
    connect: str  # where requests really go (the default endpoint's stand-in, or url)
    host: str  # host[:port] of `url`: the key for credentials, the ns rule, the log
    capabilities: frozenset[str]
    is_default: bool
    rewrites: dict[str, str] = field(default_factory=dict)

    @property
    def served_by(self) -> str:
        return httpx.URL(self.connect).netloc.decode()


def _default_url(domain: str) -> str:
    if domain == DOCKER_HUB:
        return f"https://{DOCKER_HUB_HOST}/v2"
    host = domain
    port = host.rsplit(":", 1)[1] if ":" in host else ""
    scheme = "http" if _is_localhost(host) and port not in ("", "443") else "https"
    return f"{scheme}://{domain}/v2"


def _api_root(raw: str, override_path: bool) -> str:
    url = httpx.URL(raw)
    path = url.path.rstrip("/")
    if not path:
        path = "/v2"
    elif not override_path and not path.endswith("/v2"):
        path += "/v2"
    return str(url.copy_with(path=path, query=None))


def _host(url: str) -> str:
    return httpx.URL(url).netloc.decode()


def _default_host(node: Node, domain: str, url: str, capabilities: frozenset[str]) -> RegistryHost:
    """The registry's own endpoint (hosts.toml `server`); the canonical one is the lab's stand-in."""
    upstream = node.info.upstreams.get(domain)
    connect = url
    if url == _default_url(domain) and upstream:
        connect = _api_root(upstream, override_path=False)
    return RegistryHost(url, connect, _host(url), capabilities, is_default=True)


def registry_hosts(node: Node, domain: str, hosts_dir: Path | None) -> list[RegistryHost]:
    """The hosts a pull of `domain` tries, in order."""
    default = _default_url(domain)
    config_dir = None
    if hosts_dir is not None:
        for candidate in (hosts_dir / domain, hosts_dir / "_default"):
            if (candidate / "hosts.toml").is_file():
                config_dir = candidate
                break
    if config_dir is None:
        return [_default_host(node, domain, default, ALL_CAPABILITIES)]
    tree = tomllib.loads((config_dir / "hosts.toml").read_text())
    hosts: list[RegistryHost] = []
    for raw, entry in dict(tree.get("host") or {}).items():
        url = _api_root(raw if "://" in raw else f"https://{raw}", bool(entry.get("override_path")))
        capabilities = frozenset(entry.get("capabilities") or ALL_CAPABILITIES)
        hosts.append(
            RegistryHost(
                url,
                url,
                _host(url),
                capabilities,
                is_default=False,
                rewrites=dict(entry.get("rewrite") or {}),
            )
        )
    if node.info.disable_default_endpoint:
        return hosts  # k3s --disable-default-registry-endpoint: no fallback
    server = tree.get("server")
    server_url = _api_root(server, bool(tree.get("override_path"))) if server else default
    capabilities = frozenset(tree.get("capabilities") or ALL_CAPABILITIES)
    hosts.append(_default_host(node, domain, server_url, capabilities))
    return hosts


# ---------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------


def _credentials_from(entry: dict[str, Any]) -> tuple[str, str] | None:
    if entry.get("username"):
        return str(entry["username"]), str(entry.get("password", ""))
    if entry.get("auth"):
        user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
        return user, password
    return None


class Credentials:
    """containerd's per-host credentials: configs."host:port".auth as read at start, or --creds."""

    def __init__(self, node: Node, override: tuple[str, str] | None) -> None:
        self.override = override
        try:
            runtime = json.loads(node.path(RUNTIME_CONFIG).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            runtime = {}
        self.by_host: dict[str, dict[str, Any]] = dict(runtime.get("auth") or {})

    def for_host(self, host: RegistryHost, domain: str) -> tuple[str, str] | None:
        if self.override is not None:
            return self.override
        keys = [host.host]
        if host.is_default:
            keys += [domain, DOCKER_HUB_HOST] if domain == DOCKER_HUB else [domain]
        for key in keys:
            found = _credentials_from(self.by_host.get(key) or {})
            if found:
                return found
        return None


# ---------------------------------------------------------------------------------------
# Talking to one host
# ---------------------------------------------------------------------------------------


def _go_replacement(replacement: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", replacement)


def _describe(exc: httpx.HTTPError, method: str, url: str) -> str:
    target = httpx.URL(url)
    address = f"{target.host}:{target.port or (443 if target.scheme == 'https' else 80)}"
    text = str(exc)
    if isinstance(exc, httpx.TimeoutException):
        reason = f"dial tcp {address}: i/o timeout"
    elif "refused" in text.lower():
        reason = f"dial tcp {address}: connect: connection refused"
    elif "name or service not known" in text.lower() or "no address" in text.lower():
        reason = f"dial tcp: lookup {target.host}: no such host"
    elif isinstance(exc, httpx.ConnectError) and target.scheme == "https":
        reason = f"{exc.__class__.__name__}: {text or 'TLS handshake failed'}"
    else:
        reason = f"{exc.__class__.__name__}: {text}"
    return f"failed to do request: {method.title()} {json.dumps(url)}: {reason}"


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


class HostError(Exception):
    """One host failed one request; the pull may go on with the next host."""

    def __init__(self, message: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


class Session:
    """One pull's HTTP conversation: auth state per host, the faults that apply."""

    def __init__(self, node: Node, ref: Reference, credentials: Credentials, pull_fails: bool) -> None:
        self.node = node
        self.ref = ref
        self.credentials = credentials
        self.pull_fails = pull_fails
        self.client = httpx.Client(trust_env=False, timeout=TIMEOUT, follow_redirects=True)
        self.auth_headers: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        self.client.close()

    def _repository(self, host: RegistryHost) -> str:
        for pattern, replacement in host.rewrites.items():
            if re.search(pattern, self.ref.path):
                return re.sub(pattern, _go_replacement(replacement), self.ref.path)
        return self.ref.path

    def url(self, host: RegistryHost, kind: str, obj: str) -> str:
        url = f"{host.connect}/{self._repository(host)}/{kind}/{obj}"
        # containerd marks mirror requests with the registry they stand in for.
        is_proxy = host.host != self.ref.domain and not (
            self.ref.domain == DOCKER_HUB and host.host == DOCKER_HUB_HOST
        )
        if is_proxy and not host.is_default:
            url += f"?ns={self.ref.domain}"
        return url

    def request(self, host: RegistryHost, method: str, kind: str, obj: str, accept: str) -> httpx.Response:
        url = self.url(host, kind, obj)
        if self.pull_fails:
            raise HostError(f"unexpected status from {method} request to {url}: 500 Internal Server Error")
        headers = {"Accept": accept, "User-Agent": USER_AGENT, **self.auth_headers.get(host.host, {})}
        try:
            response = self.client.request(method, url, headers=headers)
            if response.status_code == 401 and "Authorization" not in headers:
                self.auth_headers[host.host] = self._authorize(host, response)
                headers.update(self.auth_headers[host.host])
                response = self.client.request(method, url, headers=headers)
        except httpx.HTTPError as exc:
            raise HostError(_describe(exc, method, url)) from None
        if response.status_code == 401:
            raise HostError(
                "pull access denied, repository does not exist or may require authorization: "
                f"authorization failed: {method} {url}: 401 Unauthorized"
            )
        if response.status_code == 404:
            raise HostError(f"{url}: not found", not_found=True)
        if response.status_code > 399:
            raise HostError(
                f"unexpected status from {method} request to {url}: "
                f"{response.status_code} {response.reason_phrase}"
            )
        return response

    def _authorize(self, host: RegistryHost, response: httpx.Response) -> dict[str, str]:
        scheme, params = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
        creds = self.credentials.for_host(host, self.ref.domain)
        if scheme == "basic":
            if creds is None:
                raise HostError(
                    "pull access denied, repository does not exist or may require authorization: "
                    "no basic auth credentials"
                )
            token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        if scheme != "bearer" or "realm" not in params:
            raise HostError(f"unsupported authorization challenge from {host.url}: {scheme or 'none'}")
        scope = params.get("scope") or f"repository:{self._repository(host)}:pull"
        return {
            "Authorization": f"Bearer {self._token(params['realm'], params.get('service'), scope, creds)}"
        }

    def _token(self, realm: str, service: str | None, scope: str, creds: tuple[str, str] | None) -> str:
        query = {"scope": scope, **({"service": service} if service else {})}
        try:
            if creds is not None:
                # containerd tries the OAuth POST first and falls back to GET + Basic.
                form = {
                    "grant_type": "password",
                    "username": creds[0],
                    "password": creds[1],
                    "client_id": "containerd-client",
                    "access_type": "online",
                    **query,
                }
                posted = self.client.post(realm, data=form, headers={"User-Agent": USER_AGENT})
                if posted.status_code == 200:
                    body = posted.json()
                    token = body.get("access_token") or body.get("token")
                    if token:
                        return str(token)
                elif posted.status_code not in (400, 401, 404, 405):
                    raise HostError(
                        f"failed to fetch oauth token: unexpected status from POST request to {realm}: "
                        f"{posted.status_code} {posted.reason_phrase}"
                    )
            got = self.client.get(realm, params=query, auth=creds, headers={"User-Agent": USER_AGENT})
        except httpx.HTTPError as exc:
            raise HostError(_describe(exc, "GET", realm)) from None
        if got.status_code != 200:
            kind = "" if creds else "anonymous "
            raise HostError(
                f"failed to fetch {kind}token: unexpected status from GET request to {realm}: "
                f"{got.status_code} {got.reason_phrase}"
            )
        body = got.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise HostError(f"failed to fetch token from {realm}: no token in the answer")
        return str(token)


# ---------------------------------------------------------------------------------------
# Content store and image records
# ---------------------------------------------------------------------------------------


class ImageStore:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.blobs = node.path(CONTENT_BLOBS)
        self.index_path = node.path(IMAGE_INDEX)

    def has(self, digest: str) -> bool:
        return (self.blobs / digest.removeprefix("sha256:")).is_file()

    def read(self, digest: str) -> bytes:
        return (self.blobs / digest.removeprefix("sha256:")).read_bytes()

    def write(self, digest: str, data: bytes) -> None:
        self.blobs.mkdir(parents=True, exist_ok=True)
        target = self.blobs / digest.removeprefix("sha256:")
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)

    def images(self) -> dict[str, dict[str, Any]]:
        try:
            return dict(json.loads(self.index_path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def save(self, images: dict[str, dict[str, Any]]) -> None:
        write_private(self.index_path, json.dumps(images, indent=2, sort_keys=True), mode=0o644)

    def record(self, ref: Reference, target: str, media_type: str, config: str, size: int) -> None:
        images = self.images()
        entry = {
            "target": target,
            "mediaType": media_type,
            "config": config,
            "size": size,
            "pulled": now_iso(),
        }
        images[str(ref)] = entry
        images[f"{ref.name}@{target}"] = entry  # CRI keeps the digest reference too
        self.save(images)

    def remove(self, names: list[str]) -> None:
        images = self.images()
        for name in names:
            images.pop(name, None)
        self.save(images)
        self._collect_garbage(images)

    def _collect_garbage(self, images: dict[str, dict[str, Any]]) -> None:
        keep: set[str] = set()
        for entry in images.values():
            keep.update(self._closure(entry["target"]))
        if self.blobs.is_dir():
            for blob in self.blobs.iterdir():
                if f"sha256:{blob.name}" not in keep:
                    blob.unlink(missing_ok=True)

    def _closure(self, digest: str) -> set[str]:
        found = {digest}
        if not self.has(digest):
            return found
        try:
            document = json.loads(self.read(digest))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return found
        if not isinstance(document, dict):
            return found
        for child in document.get("manifests") or []:
            found |= self._closure(child["digest"])
        if isinstance(document.get("config"), dict):
            found.add(document["config"]["digest"])
        for layer in document.get("layers") or []:
            found.add(layer["digest"])
        return found


# ---------------------------------------------------------------------------------------
# The pull
# ---------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class PullResult:
    ref: Reference
    digest: str
    image_id: str
    resolved_by: RegistryHost


class Pull:
    def __init__(
        self,
        node: Node,
        ref: Reference,
        hosts: list[RegistryHost],
        credentials: Credentials,
        tool: str,
    ) -> None:
        self.node = node
        self.ref = ref
        self.hosts = hosts
        self.tool = tool
        self.session = Session(node, ref, credentials, pull_fails=node.fault("pull-fails") is not None)
        self.store = ImageStore(node)
        self.errors: list[dict[str, str]] = []
        self.fetched: list[dict[str, str]] = []

    def _note(self, host: RegistryHost, stage: str, error: HostError) -> None:
        self.errors.append(
            {"endpoint": host.url, "host": host.served_by, "stage": stage, "error": str(error)}
        )

    def resolve(self) -> tuple[RegistryHost, str, str]:
        first: HostError | None = None
        for host in self.hosts:
            if "resolve" not in host.capabilities:
                continue
            try:
                response = self.session.request(host, "HEAD", "manifests", self.ref.object, MANIFEST_ACCEPT)
            except HostError as exc:
                self._note(host, "resolve", exc)
                if first is None and not exc.not_found:
                    first = exc
                continue
            digest = response.headers.get("Docker-Content-Digest") or self.ref.digest
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            if response.headers.get("Content-Length") == "0" and digest:
                # The HEAD's length is the descriptor's size; containerd refuses to fetch size 0.
                raise PullError(
                    f"unable to fetch descriptor ({digest}) which reports content size of zero: invalid argument"
                )
            if not digest:  # registries may omit it on HEAD: read the manifest to know it
                try:
                    got = self.session.request(host, "GET", "manifests", self.ref.object, MANIFEST_ACCEPT)
                except HostError as exc:
                    self._note(host, "resolve", exc)
                    first = first or exc
                    continue
                digest = _sha256(got.content)
                media_type = got.headers.get("Content-Type", "").split(";")[0].strip()
            return host, digest, media_type
        if first is not None:
            raise PullError(f'failed to resolve reference "{self.ref}": {first}')
        raise PullError(f'failed to resolve reference "{self.ref}": {self.ref}: not found', not_found=True)

    def fetch(self, kind: str, digest: str, accept: str, what: str, size: int | None = None) -> bytes:
        if kind == "blobs" and self.store.has(digest):
            self.fetched.append(
                {"what": what, "digest": digest, "served_by": "content-store", "via": "cache"}
            )
            return self.store.read(digest)
        first: HostError | None = None
        for host in self.hosts:
            if "pull" not in host.capabilities:
                continue
            try:
                response = self.session.request(host, "GET", kind, digest, accept)
            except HostError as exc:
                self._note(host, f"fetch {what}", exc)
                if first is None:
                    first = exc
                continue
            data = response.content
            actual = _sha256(data)
            if actual != digest or (size is not None and len(data) != size):
                raise PullError(
                    f"failed commit on ref {json.dumps(what + '-' + digest)}: unexpected commit digest "
                    f"{actual}, expected {digest}: failed precondition (from {host.url})"
                )
            self.store.write(digest, data)
            self.fetched.append(
                {
                    "what": what,
                    "digest": digest,
                    "served_by": host.served_by,
                    "via": "default-endpoint" if host.is_default else "mirror",
                }
            )
            return data
        raise PullError(f"failed to copy: httpReadSeeker: failed open: {first or digest + ': not found'}")

    def run(self) -> PullResult:
        host, digest, media_type = self.resolve()
        self.fetched.append(
            {
                "what": "resolve",
                "digest": digest,
                "served_by": host.served_by,
                "via": "default-endpoint" if host.is_default else "mirror",
            }
        )
        top = json.loads(self.fetch("manifests", digest, media_type or MANIFEST_ACCEPT, "manifest"))
        manifest, manifest_type = top, media_type or str(top.get("mediaType", ""))
        if manifest_type in INDEX_TYPES or "manifests" in top:
            chosen = next(
                (
                    m
                    for m in top.get("manifests") or []
                    if (m.get("platform") or {}).get("os") == PLATFORM[0]
                    and (m.get("platform") or {}).get("architecture") == PLATFORM[1]
                ),
                None,
            )
            if chosen is None:
                raise PullError(f"no match for platform in manifest {digest}: not found", not_found=True)
            manifest = json.loads(
                self.fetch(
                    "manifests", chosen["digest"], chosen.get("mediaType", MANIFEST_ACCEPT), "manifest"
                )
            )
        if "config" not in manifest:
            raise PullError(f"unsupported manifest media type {manifest_type!r} for {self.ref}")
        config = manifest["config"]
        self.fetch("blobs", config["digest"], config.get("mediaType", "*/*"), "config", config.get("size"))
        size = int(config.get("size") or 0)
        for layer in manifest.get("layers") or []:
            self.fetch("blobs", layer["digest"], layer.get("mediaType", "*/*"), "layer", layer.get("size"))
            size += int(layer.get("size") or 0)
        self.store.record(self.ref, digest, manifest_type, config["digest"], size)
        return PullResult(self.ref, digest, config["digest"], host)

    def log(self, result: PullResult | None, error: str | None, started: float) -> None:
        mirror_errors = [e for e in self.errors if not self._is_default(e["endpoint"])]
        vias = {f["via"] for f in self.fetched if f["via"] != "cache"}
        record: dict[str, Any] = {
            "time": now_iso(),
            "tool": self.tool,
            "image": str(self.ref),
            "ok": result is not None,
            "digest": result.digest if result else None,
            "image_id": result.image_id if result else None,
            "served_by": result.resolved_by.served_by if result else None,
            "endpoint": result.resolved_by.url if result else None,
            # "mirror" only if the tag and every fetched piece came from mirrors.
            "via": ("mirror" if vias == {"mirror"} else "default-endpoint") if result else None,
            "mirror_errors": mirror_errors,
            "errors": self.errors,
            "fetched": self.fetched,
            "error": error,
            "seconds": round(time.monotonic() - started, 3),
        }
        self.node.append_json_line(PULL_LOG, record)

    def _is_default(self, endpoint: str) -> bool:
        return any(h.url == endpoint and h.is_default for h in self.hosts)


def pull(
    node: Node,
    ref: Reference,
    hosts_dir: Path | None,
    creds: tuple[str, str] | None = None,
    tool: str = "crictl",
) -> PullResult:
    """Pull `ref` like containerd; always logs one line; raises PullError on failure."""
    started = time.monotonic()
    hosts = registry_hosts(node, ref.domain, hosts_dir)
    job = Pull(node, ref, hosts, Credentials(node, creds), tool)
    try:
        result = job.run()
    except PullError as exc:
        job.log(None, str(exc), started)
        raise
    except (ValueError, KeyError, TypeError) as exc:  # a registry sent something unusable
        message = f"failed to pull {ref}: {exc.__class__.__name__}: {exc}"
        job.log(None, message, started)
        raise PullError(message) from None
    finally:
        job.session.close()
    job.log(result, None, started)
    return result


def certs_d(node: Node) -> Path:
    return node.path(CERTS_D)
