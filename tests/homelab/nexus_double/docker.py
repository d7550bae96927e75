"""Docker connectors: the registry V2 API a docker repository serves on its httpPort.

Hosted repositories serve what was pushed (the blob-upload and manifest-put flow that
skopeo and docker use); proxies fetch from `proxy.remoteUrl`, cache what they fetched and
return the same bytes, digest and media type; groups ask their members in order and the
first hit wins. Authentication is Basic or a DockerToken bearer token; authorization is
Nexus's repository-view privileges of the repository addressed (a group's members are not
checked separately, as in Nexus).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.homelab.nexus_double.exchange import Reply, Request
from tests.homelab.nexus_double.state import (
    DOCKER_TOKEN_REALM,
    NexusState,
    Repository,
    Upload,
    User,
    sha256_digest,
)

log = logging.getLogger("nexus.docker")

BASIC_CHALLENGE = 'BASIC realm="Sonatype Nexus Repository Manager"'
API_VERSION = {"Docker-Distribution-Api-Version": "registry/2.0"}
DEFAULT_UPSTREAM_TIMEOUT = 60.0
DEFAULT_UPSTREAM_RETRIES = 2
EULA_MESSAGE = (
    "Sonatype Nexus Repository Community Edition: the End User License Agreement has not "
    "been accepted; accept it with POST /service/rest/v1/system/eula before using repositories"
)
_ROUTE = re.compile(
    r"/v2/(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+|__[a-z0-9]+)*)/(?P<op>manifests|blobs|tags)/(?P<ref>.*)"
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def docker_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
    return Reply(status, body, {"Content-Type": "application/json", **(headers or {})})


@dataclass
class Found:
    """Content one leaf repository had (or fetched) for a request."""

    repository: str
    digest: str
    content_type: str
    data: bytes


class DockerConnector:
    def __init__(self, state: NexusState) -> None:
        self.state = state
        self.http = httpx.Client(trust_env=False, follow_redirects=True)

    def close(self) -> None:
        self.http.close()

    # -- entry ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        repository = self.state.repository_on_port(request.port)
        if repository is None:  # the connector is being unbound
            reply = docker_error(404, "NAME_UNKNOWN", "no repository on this port")
        else:
            reply = self._handle(request, repository)
            reply.repository = repository.name
        reply.headers.update(API_VERSION)
        return reply

    def _handle(self, request: Request, repository: Repository) -> Reply:
        if request.path == "/v2/token":
            return self.token(request, repository)
        user, failed = self._identify(request, repository)
        if failed is not None:
            return failed
        if request.path in ("/v2", "/v2/"):
            if user is None:
                return self._challenge(request, repository)
            return Reply(200, b"{}", {"Content-Type": "application/json"}, user=user.user_id)
        match = _ROUTE.fullmatch(request.path)
        if match is None:
            return docker_error(404, "NAME_UNKNOWN", "repository name not known to registry")
        if user is None:
            return self._challenge(request, repository)
        reply = self._content(request, repository, user, match)
        reply.user = user.user_id
        return reply

    def _content(self, request: Request, repository: Repository, user: User, match: re.Match[str]) -> Reply:
        if not self.state.eula_accepted:
            return docker_error(503, "UNAVAILABLE", EULA_MESSAGE)
        if not repository.online:
            return docker_error(503, "UNAVAILABLE", f"Repository {repository.name} is offline")
        name, op, ref = match["name"], match["op"], match["ref"]
        if request.method in ("GET", "HEAD"):
            actions = ["read"]
        elif request.method == "DELETE" and op == "manifests":
            actions = ["delete"]
        else:
            actions = ["add", "edit"]
        if not self.state.may(user, repository, actions):
            return docker_error(403, "DENIED", "access to the requested resource is not authorized")
        if op == "tags" and ref == "list" and request.method in ("GET", "HEAD"):
            return self.tags(repository, name)
        if op == "manifests" and request.method in ("GET", "HEAD"):
            return self.get_manifest(request, repository, name, ref, user)
        if op == "blobs" and request.method in ("GET", "HEAD") and _DIGEST.fullmatch(ref):
            return self.get_blob(request, repository, name, ref, user)
        if repository.type != "hosted":
            return docker_error(405, "UNSUPPORTED", f"{repository.type} repositories take no pushes")
        if op == "blobs" and (ref == "uploads/" or ref.startswith("uploads/")):
            return self.upload(request, repository, name, ref.removeprefix("uploads/"), user)
        if op == "manifests" and request.method == "PUT":
            return self.put_manifest(request, repository, name, ref, user)
        if op == "manifests" and request.method == "DELETE":
            return self.delete_manifest(repository, name, ref)
        return docker_error(405, "UNSUPPORTED", "The operation is unsupported.")

    # -- authentication -------------------------------------------------------------------

    def _identify(self, request: Request, repository: Repository) -> tuple[User | None, Reply | None]:
        """The caller, None if anonymous; a 401 reply when credentials were sent but fail."""
        if not request.headers.get("Authorization"):
            return None, None
        credentials = request.basic_credentials()
        user: User | None = None
        if credentials is not None and "NexusAuthenticatingRealm" in self.state.active_realms:
            user = self.state.authenticate(*credentials)
        token = request.bearer_token()
        if token is not None:
            user = self.state.user_for_token(token)
        if user is None:
            return None, self._challenge(request, repository)
        return user, None

    def _challenge(self, request: Request, repository: Repository) -> Reply:
        force_basic = bool((repository.config.get("docker") or {}).get("forceBasicAuth"))
        if DOCKER_TOKEN_REALM in self.state.active_realms and not force_basic:
            realm = f"{request.base_url}/v2/token"
            header = f'Bearer realm="{realm}",service="{realm}"'
        else:
            header = BASIC_CHALLENGE
        return docker_error(
            401,
            "UNAUTHORIZED",
            "access to the requested resource is not authorized",
            {"WWW-Authenticate": header},
        )

    def token(self, request: Request, repository: Repository) -> Reply:
        """GET /v2/token: a bearer token for a Basic-authenticated user (DockerToken realm)."""
        basic = {"WWW-Authenticate": BASIC_CHALLENGE}
        if DOCKER_TOKEN_REALM not in self.state.active_realms:
            return docker_error(401, "UNAUTHORIZED", "Docker Bearer Token Realm is not active", basic)
        credentials = request.basic_credentials()
        user = self.state.authenticate(*credentials) if credentials else None
        if user is None:
            return docker_error(401, "UNAUTHORIZED", "authentication required", basic)
        body = json.dumps({"token": self.state.issue_token(user)}).encode()
        return Reply(200, body, {"Content-Type": "application/json"}, user=user.user_id)

    # -- pulls ----------------------------------------------------------------------------

    def _leaves(self, repository: Repository) -> list[Repository]:
        leaves = []
        for leaf_name in self.state.expand_members(repository.name):
            leaf = self.state.repository_named(leaf_name)
            if leaf is not None and leaf.format == "docker" and leaf.online:
                leaves.append(leaf)
        return leaves

    def get_manifest(
        self, request: Request, repository: Repository, name: str, reference: str, user: User
    ) -> Reply:
        accept = request.headers.get_all("Accept") or []
        for leaf in self._leaves(repository):
            found = (
                self._proxy_manifest(leaf, name, reference, ", ".join(accept), user)
                if leaf.type == "proxy"
                else self._local_manifest(leaf.name, name, reference)
            )
            if found is not None:
                if request.method == "GET":
                    self.state.mark_downloaded(found.repository, f"v2/{name}/manifests/{reference}")
                headers = {
                    "Content-Type": found.content_type,
                    "Docker-Content-Digest": found.digest,
                    "ETag": f'"{found.digest}"',
                }
                return Reply(200, found.data, headers, served_by=found.repository)
        return docker_error(404, "MANIFEST_UNKNOWN", f"manifest unknown: {name}:{reference}")

    def get_blob(self, request: Request, repository: Repository, name: str, digest: str, user: User) -> Reply:
        for leaf in self._leaves(repository):
            found = (
                self._proxy_blob(leaf, name, digest, user)
                if leaf.type == "proxy"
                else self._local_blob(leaf.name, digest)
            )
            if found is not None:
                if request.method == "GET":
                    self.state.mark_downloaded(found.repository, f"v2/-/blobs/{digest}")
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Docker-Content-Digest": digest,
                    "ETag": f'"{digest}"',
                }
                return Reply(200, found.data, headers, served_by=found.repository)
        return docker_error(404, "BLOB_UNKNOWN", f"blob unknown to registry: {digest}")

    def tags(self, repository: Repository, name: str) -> Reply:
        tags: set[str] = set()
        known = False
        for leaf in self._leaves(repository):
            with self.state.lock:
                local = {tag for (image, tag) in self.state.content[leaf.name].tags if image == name}
            tags |= local
            known = known or bool(local)
            if leaf.type == "proxy" and not self._blocked(leaf):
                response = self._upstream(leaf, f"/v2/{name}/tags/list", None, name)
                if response is not None and response.status_code == 200:
                    tags |= set(response.json().get("tags") or [])
                    known = True
        if not known:
            return docker_error(404, "NAME_UNKNOWN", f"repository name not known to registry: {name}")
        body = json.dumps({"name": name, "tags": sorted(tags)}).encode()
        return Reply(200, body, {"Content-Type": "application/json"})

    def _local_manifest(self, leaf: str, name: str, reference: str) -> Found | None:
        with self.state.lock:
            content = self.state.content.get(leaf)
            if content is None:
                return None
            digest = reference
            if not _DIGEST.fullmatch(reference):
                entry = content.tags.get((name, reference))
                if entry is None:
                    return None
                digest = entry[0]
            content_type = content.manifests.get((name, digest))
            if content_type is None:
                return None
            return Found(leaf, digest, content_type, self.state.blob_bytes[digest])

    def _local_blob(self, leaf: str, digest: str) -> Found | None:
        with self.state.lock:
            content = self.state.content.get(leaf)
            if content is None or digest not in content.blobs:
                return None
            return Found(leaf, digest, "application/octet-stream", self.state.blob_bytes[digest])

    def _blocked(self, leaf: Repository) -> bool:
        return bool((leaf.config.get("httpClient") or {}).get("blocked"))

    def _negative(self, leaf: Repository, key: tuple[str, str, str]) -> bool:
        with self.state.lock:
            expires = self.state.content[leaf.name].negative.get(key)
            return expires is not None and expires > time.monotonic()

    def _remember_miss(self, leaf: Repository, key: tuple[str, str, str]) -> None:
        negative_cache = leaf.config.get("negativeCache") or {}
        if negative_cache.get("enabled"):
            with self.state.lock:
                ttl = 60.0 * float(negative_cache.get("timeToLive", 1440))
                self.state.content[leaf.name].negative[key] = time.monotonic() + ttl

    def _proxy_manifest(
        self, leaf: Repository, name: str, reference: str, accept: str, user: User
    ) -> Found | None:
        cached = self._local_manifest(leaf.name, name, reference)
        if cached is not None and _DIGEST.fullmatch(reference):
            return cached  # content-addressed: never stale
        if cached is not None:
            with self.state.lock:
                _, fetched_at = self.state.content[leaf.name].tags[(name, reference)]
            max_age = 60.0 * float(leaf.config["proxy"].get("metadataMaxAge", 1440))
            if max_age < 0 or time.monotonic() - fetched_at < max_age:
                return cached
        key = ("manifest", name, reference)
        if self._blocked(leaf) or self._negative(leaf, key):
            return cached
        response = self._upstream(leaf, f"/v2/{name}/manifests/{reference}", accept or None, name)
        if response is None or response.status_code >= 500:
            return cached  # remote trouble: serve what we have, stale or not
        if response.status_code != 200:
            if response.status_code == 404:
                self._remember_miss(leaf, key)
            return None
        data = response.content
        digest = sha256_digest(data)
        if _DIGEST.fullmatch(reference) and digest != reference:
            log.warning("%s: upstream manifest %s has digest %s", leaf.name, reference, digest)
            return None
        content_type = response.headers.get("Content-Type", "application/octet-stream")
        self.state.store_manifest(leaf.name, name, reference, data, content_type, user.user_id, None)
        return Found(leaf.name, digest, content_type, data)

    def _proxy_blob(self, leaf: Repository, name: str, digest: str, user: User) -> Found | None:
        cached = self._local_blob(leaf.name, digest)
        key = ("blob", name, digest)
        if cached is not None or self._blocked(leaf) or self._negative(leaf, key):
            return cached
        response = self._upstream(leaf, f"/v2/{name}/blobs/{digest}", None, name)
        if response is None or response.status_code != 200:
            if response is not None and response.status_code == 404:
                self._remember_miss(leaf, key)
            return None
        if sha256_digest(response.content) != digest:
            log.warning("%s: upstream blob %s failed digest verification", leaf.name, digest)
            return None
        self.state.store_blob(leaf.name, digest, response.content, user.user_id, None)
        return Found(leaf.name, digest, "application/octet-stream", response.content)

    def _upstream(self, leaf: Repository, path: str, accept: str | None, name: str) -> httpx.Response | None:
        """GET remoteUrl+path, answering the upstream's own Basic or Bearer challenge."""
        http_client = leaf.config.get("httpClient") or {}
        connection = http_client.get("connection") or {}
        authentication = http_client.get("authentication") or {}
        timeout = float(connection.get("timeout") or DEFAULT_UPSTREAM_TIMEOUT)
        retries = int(connection.get("retries", DEFAULT_UPSTREAM_RETRIES))
        credentials = None
        if authentication.get("type") == "username" and authentication.get("username"):
            credentials = (authentication["username"], authentication.get("password") or "")
        url = leaf.config["proxy"]["remoteUrl"].rstrip("/") + path
        headers = {"Accept": accept} if accept else {}
        for attempt in range(retries + 1):
            try:
                response = self.http.get(url, headers=headers, timeout=timeout)
                if response.status_code == 401:
                    response = self._answer_challenge(response, url, headers, credentials, name, timeout)
                return response
            except httpx.HTTPError as exc:
                # The path only: a remoteUrl may carry credentials in its userinfo.
                log.warning(
                    "%s: remote request for %s failed (attempt %d): %s",
                    leaf.name,
                    path,
                    attempt + 1,
                    type(exc).__name__,
                )
        return None

    def _answer_challenge(
        self,
        response: httpx.Response,
        url: str,
        headers: dict[str, str],
        credentials: tuple[str, str] | None,
        name: str,
        timeout: float,
    ) -> httpx.Response:
        scheme, _, params = response.headers.get("WWW-Authenticate", "").partition(" ")
        if scheme.lower() == "basic" and credentials is not None:
            return self.http.get(url, headers=headers, auth=credentials, timeout=timeout)
        if scheme.lower() != "bearer":
            return response
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        query = {"scope": fields.get("scope") or f"repository:{name}:pull"}
        if "service" in fields:
            query["service"] = fields["service"]
        token_response = self.http.get(
            fields.get("realm", ""), params=query, auth=credentials, timeout=timeout
        )
        if token_response.status_code != 200:
            return response
        grant = token_response.json()
        token = grant.get("token") or grant.get("access_token")
        return self.http.get(url, headers={**headers, "Authorization": f"Bearer {token}"}, timeout=timeout)

    # -- pushes (hosted) ------------------------------------------------------------------

    def upload(
        self, request: Request, repository: Repository, name: str, upload_id: str, user: User
    ) -> Reply:
        if not upload_id:
            if request.method != "POST":
                return docker_error(405, "UNSUPPORTED", "The operation is unsupported.")
            return self._start_upload(request, repository, name, user)
        with self.state.lock:
            upload = self.state.uploads.get(upload_id)
        if upload is None or upload.repository != repository.name or upload.name != name:
            return docker_error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
        location = f"/v2/{name}/blobs/uploads/{upload_id}"
        if request.method == "DELETE":
            with self.state.lock:
                self.state.uploads.pop(upload_id, None)
            return Reply(204)
        if request.method == "PATCH":
            upload.data += request.body
        elif request.method == "PUT":
            upload.data += request.body
            with self.state.lock:
                self.state.uploads.pop(upload_id, None)
            return self._finish_blob(request, repository, name, bytes(upload.data), user)
        elif request.method != "GET":
            return docker_error(405, "UNSUPPORTED", "The operation is unsupported.")
        return self._upload_progress(202 if request.method == "PATCH" else 204, location, upload_id, upload)

    def _upload_progress(self, status: int, location: str, upload_id: str, upload: Upload) -> Reply:
        headers = {
            "Location": location,
            "Docker-Upload-UUID": upload_id,
            "Range": f"0-{max(len(upload.data) - 1, 0)}",
        }
        return Reply(status, b"", headers)

    def _start_upload(self, request: Request, repository: Repository, name: str, user: User) -> Reply:
        if request.param("digest"):
            return self._finish_blob(request, repository, name, request.body, user)
        mount = request.param("mount")
        if mount and self._local_blob(repository.name, mount) is not None:
            return self._blob_created(name, mount)
        upload_id = str(uuid.uuid4())
        upload = Upload(repository.name, name)
        with self.state.lock:
            self.state.uploads[upload_id] = upload
        return self._upload_progress(202, f"/v2/{name}/blobs/uploads/{upload_id}", upload_id, upload)

    def _finish_blob(
        self, request: Request, repository: Repository, name: str, data: bytes, user: User
    ) -> Reply:
        digest = request.param("digest") or ""
        if not _DIGEST.fullmatch(digest) or sha256_digest(data) != digest:
            return docker_error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        self.state.store_blob(repository.name, digest, data, user.user_id, request.client_ip)
        return self._blob_created(name, digest)

    def _blob_created(self, name: str, digest: str) -> Reply:
        headers = {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
        return Reply(201, b"", headers)

    def put_manifest(
        self, request: Request, repository: Repository, name: str, reference: str, user: User
    ) -> Reply:
        data = request.body
        digest = sha256_digest(data)
        if _DIGEST.fullmatch(reference) and reference != digest:
            return docker_error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        try:
            manifest: dict[str, Any] = json.loads(data)
        except ValueError:
            return docker_error(400, "MANIFEST_INVALID", "manifest invalid")
        content_type = (request.headers.get("Content-Type") or manifest.get("mediaType") or "").split(";")[0]
        missing = self._missing_references(repository.name, name, manifest)
        if missing:
            return docker_error(400, "MANIFEST_BLOB_UNKNOWN", f"blob unknown to registry: {missing}")
        denied = self._write_policy_denies(repository, name, reference, digest)
        if denied:
            return docker_error(400, "DENIED", denied)
        self.state.store_manifest(
            repository.name, name, reference, data, content_type, user.user_id, request.client_ip
        )
        headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
        return Reply(201, b"", headers)

    def _missing_references(self, leaf: str, name: str, manifest: dict[str, Any]) -> str | None:
        with self.state.lock:
            content = self.state.content[leaf]
            for descriptor in [manifest.get("config") or {}, *(manifest.get("layers") or [])]:
                digest = descriptor.get("digest")
                if digest and digest not in content.blobs:
                    return digest
            for descriptor in manifest.get("manifests") or []:
                digest = descriptor.get("digest")
                if digest and (name, digest) not in content.manifests:
                    return digest
        return None

    def _write_policy_denies(
        self, repository: Repository, name: str, reference: str, digest: str
    ) -> str | None:
        storage = repository.config.get("storage") or {}
        policy = str(storage.get("writePolicy") or "allow").lower()
        if policy == "deny":
            return f"Repository is read only: {repository.name}"
        if policy != "allow_once" or _DIGEST.fullmatch(reference):
            return None
        if reference == "latest" and storage.get("latestPolicy"):
            return None
        with self.state.lock:
            existing = self.state.content[repository.name].tags.get((name, reference))
        if existing is not None and existing[0] != digest:
            return f"Cannot redeploy tag '{reference}' of {name}: repository does not allow updating assets"
        return None

    def delete_manifest(self, repository: Repository, name: str, reference: str) -> Reply:
        if not _DIGEST.fullmatch(reference):
            return docker_error(400, "UNSUPPORTED", "delete manifests by digest")
        with self.state.lock:
            content = self.state.content[repository.name]
            if content.manifests.pop((name, reference), None) is None:
                return docker_error(404, "MANIFEST_UNKNOWN", f"manifest unknown: {reference}")
            for key in [k for k, (d, _) in content.tags.items() if k[0] == name and d == reference]:
                del content.tags[key]
                self.state.assets.pop((repository.name, f"v2/{name}/manifests/{key[1]}"), None)
            self.state.assets.pop((repository.name, f"v2/{name}/manifests/{reference}"), None)
        return Reply(202)
