"""Everything the double remembers, in memory, behind one lock.

Security (users, roles, privileges, realms, docker tokens), repositories and what they
hold, the EULA flag, the request log and the injected faults. The REST and connector
handlers only read and change it through `NexusState`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ADMIN_USER = "admin"
ANONYMOUS_USER = "anonymous"
ADMIN_ROLE = "nx-admin"
ANONYMOUS_ROLE = "nx-anonymous"
NX_ALL = "nx-all"
DEFAULT_BLOB_STORE = "default"
DEFAULT_SOURCE = "default"
DOCKER_TOKEN_REALM = "DockerToken"
TOKEN_TTL_SECONDS = 3600.0
REQUEST_LOG_LIMIT = 5000

# GET /v1/security/realms/available of a Community Edition instance (ids and names).
AVAILABLE_REALMS: list[tuple[str, str]] = [
    ("NexusAuthenticatingRealm", "Local Authenticating Realm"),
    ("ConanToken", "Conan Bearer Token Realm"),
    ("DefaultRole", "Default Role Realm"),
    ("DockerToken", "Docker Bearer Token Realm"),
    ("LdapRealm", "LDAP Realm"),
    ("NpmToken", "npm Bearer Token Realm"),
    ("NuGetApiKey", "NuGet API-Key Realm"),
    ("rutauth-realm", "Rut Auth Realm"),
]

# EulaStatus.EXPECTED_DISCLAIMER (nexus-core, CommunityEulaApiResource).
EULA_DISCLAIMER = (
    "Use of Sonatype Nexus Repository - Community Edition is governed by the End User License "
    "Agreement at https://links.sonatype.com/products/nxrm/ce-eula. By returning the value from "
    "\u2018accepted:false\u2019 to \u2018accepted:true\u2019, you acknowledge that you have read "
    "and agree to the End User License Agreement at https://links.sonatype.com/products/nxrm/ce-eula."
)

# Repository-view actions in privilege ids ("*" is ALL), RepositoryFormatSecurityContributor.
VIEW_ACTIONS = ["*", "browse", "read", "edit", "add", "delete"]
FORMATS = ("docker", "pypi", "apt")


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """Nexus's date format: 2024-01-01T00:00:00.000+00:00."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+00:00"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------
# Security
# ---------------------------------------------------------------------------------------


@dataclass
class Privilege:
    name: str
    type: str
    description: str
    read_only: bool = True
    attributes: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        """The ApiPrivilege* shape of this privilege's type."""
        return {
            "type": self.type,
            "name": self.name,
            "description": self.description,
            "readOnly": self.read_only,
            **self.attributes,
        }

    def grants_view(self, fmt: str, repository: str, action: str) -> bool:
        if self.type == "wildcard":
            return self.attributes.get("pattern") == "nexus:*"
        if self.type != "repository-view":
            return False
        actions = self.attributes.get("actions", [])
        return (
            self.attributes.get("format") in (fmt, "*")
            and self.attributes.get("repository") in (repository, "*")
            and ("ALL" in actions or action.upper() in actions)
        )


def view_privilege(fmt: str, repository: str, action: str) -> Privilege:
    """RepositoryViewPrivilegeDescriptor.privilege(format, name, action)."""
    actions_text = "All privileges" if action == "*" else f"{action.capitalize()} privilege"
    if repository != "*":
        target = repository
    elif fmt == "*":
        target = "all"
    else:
        target = f"all '{fmt}'-format"
    return Privilege(
        name=f"nx-repository-view-{fmt}-{repository}-{action}",
        type="repository-view",
        description=f"{actions_text} for {target} repository views",
        attributes={
            "format": fmt,
            "repository": repository,
            "actions": ["ALL" if action == "*" else action.upper()],
        },
    )


@dataclass
class Role:
    id: str
    name: str
    description: str | None
    privileges: list[str]
    roles: list[str]
    read_only: bool = False

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": DEFAULT_SOURCE,
            "name": self.name,
            "description": self.description,
            "privileges": list(self.privileges),
            "roles": list(self.roles),
            "readOnly": self.read_only,
        }


def _hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000)


@dataclass
class User:
    user_id: str
    first_name: str
    last_name: str
    email: str
    status: str
    roles: list[str]
    salt: bytes = field(default_factory=lambda: secrets.token_bytes(16), repr=False)
    password_hash: bytes = field(default=b"", repr=False)

    def set_password(self, password: str) -> None:
        self.salt = secrets.token_bytes(16)
        self.password_hash = _hash_password(password, self.salt)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and hmac.compare_digest(
            self.password_hash, _hash_password(password, self.salt)
        )

    def view(self) -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "emailAddress": self.email,
            "source": DEFAULT_SOURCE,
            "status": self.status,
            "readOnly": False,
            "roles": list(self.roles),
            "externalRoles": [],
        }


@dataclass
class DockerToken:
    user_id: str
    expires: float


# ---------------------------------------------------------------------------------------
# Repositories and content
# ---------------------------------------------------------------------------------------


@dataclass
class Repository:
    name: str
    format: str
    type: str
    config: dict[str, Any]  # the validated request body (aliases), secrets included

    @property
    def online(self) -> bool:
        return bool(self.config.get("online", True))

    @property
    def http_port(self) -> int | None:
        docker = self.config.get("docker") or {}
        port = docker.get("httpPort")
        return port if isinstance(port, int) else None

    @property
    def members(self) -> list[str]:
        return list((self.config.get("group") or {}).get("memberNames") or [])


@dataclass
class Asset:
    repository: str
    path: str
    component: str | None  # docker image name for manifests; blobs belong to no component
    digest: str
    content_type: str
    size: int
    sha1: str
    created: datetime
    uploader: str | None
    uploader_ip: str | None
    last_downloaded: datetime | None = None

    @property
    def id(self) -> str:
        raw = f"{self.repository}:{hashlib.md5(self.path.encode()).hexdigest()}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def view(self, base_url: str) -> dict[str, Any]:
        return {
            "downloadUrl": f"{base_url}/repository/{self.repository}/{self.path}",
            "path": self.path,
            "id": self.id,
            "repository": self.repository,
            "format": "docker",
            "checksum": {"sha1": self.sha1, "sha256": self.digest.removeprefix("sha256:")},
            "contentType": self.content_type,
            "lastModified": iso(self.created),
            "lastDownloaded": iso(self.last_downloaded),
            "uploader": self.uploader,
            "uploaderIp": self.uploader_ip,
            "fileSize": self.size,
            "blobCreated": iso(self.created),
            "blobStoreName": DEFAULT_BLOB_STORE,
        }


@dataclass
class Upload:
    repository: str
    name: str
    data: bytearray = field(default_factory=bytearray)


@dataclass
class DockerContent:
    """What one docker repository holds (hosted: pushed; proxy: cached)."""

    manifests: dict[tuple[str, str], str] = field(default_factory=dict)  # (name, digest) -> type
    tags: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)  # -> digest, at
    blobs: set[str] = field(default_factory=set)
    negative: dict[tuple[str, str, str], float] = field(default_factory=dict)  # -> expires


# ---------------------------------------------------------------------------------------
# Faults and the request log
# ---------------------------------------------------------------------------------------


@dataclass
class Fault:
    path_regex: str
    action: str  # status | delay | reset
    method: str | None = None
    status: int = 503
    seconds: float = 0.0
    times: int | None = None  # None: until cleared
    port: int | None = None

    def matches(self, method: str, path: str, port: int) -> bool:
        return (
            (self.method is None or self.method.upper() == method)
            and (self.port is None or self.port == port)
            and re.search(self.path_regex, path) is not None
        )


class NexusState:
    """The one shared state object; every public method takes the lock."""

    def __init__(self, admin_password: str, *, eula_accepted: bool, starting_seconds: float):
        self.lock = threading.RLock()
        self.reset(admin_password, eula_accepted=eula_accepted, starting_seconds=starting_seconds)

    def reset(self, admin_password: str, *, eula_accepted: bool, starting_seconds: float) -> None:
        """Back to a freshly installed instance, as if the process had just started."""
        with self.lock:
            self.started = time.monotonic()
            self.starting_seconds = starting_seconds
            self.eula_accepted = eula_accepted
            self.active_realms: list[str] = ["NexusAuthenticatingRealm"]
            self.privileges: dict[str, Privilege] = {}
            self.roles: dict[str, Role] = {}
            self.users: dict[str, User] = {}
            self.tokens: dict[str, DockerToken] = {}
            self.repositories: dict[str, Repository] = {}
            self.content: dict[str, DockerContent] = {}
            self.blob_bytes: dict[str, bytes] = {}  # the "default" blob store, by digest
            self.assets: dict[tuple[str, str], Asset] = {}  # (repository, path)
            self.uploads: dict[str, Upload] = {}
            self.faults: list[Fault] = []
            self.requests: list[dict[str, Any]] = []
            self.connectors_up = True
            self._seed_security(admin_password)

    def _seed_security(self, admin_password: str) -> None:
        """NexusSecurityContributor and RepositoryFormatSecurityContributor's initial model."""
        builtin = [
            Privilege(NX_ALL, "wildcard", "All permissions", attributes={"pattern": "nexus:*"}),
            Privilege(
                "nx-search-read",
                "application",
                "Read permission for Search",
                attributes={"domain": "search", "actions": ["READ"]},
            ),
            Privilege(
                "nx-healthcheck-read",
                "application",
                "Read permission for Healthcheck",
                attributes={"domain": "healthcheck", "actions": ["READ"]},
            ),
        ]
        builtin += [view_privilege("*", "*", action) for action in VIEW_ACTIONS]
        builtin += [view_privilege(fmt, "*", action) for fmt in FORMATS for action in VIEW_ACTIONS]
        self.privileges = {privilege.name: privilege for privilege in builtin}
        self.roles = {
            ADMIN_ROLE: Role(ADMIN_ROLE, ADMIN_ROLE, "Administrator Role", [NX_ALL], [], True),
            ANONYMOUS_ROLE: Role(
                ANONYMOUS_ROLE,
                ANONYMOUS_ROLE,
                "Anonymous Role",
                [
                    "nx-search-read",
                    "nx-healthcheck-read",
                    "nx-repository-view-*-*-browse",
                    "nx-repository-view-*-*-read",
                ],
                [],
                True,
            ),
        }
        admin = User(ADMIN_USER, "Administrator", "User", "admin@example.org", "active", [ADMIN_ROLE])
        admin.set_password(admin_password)
        anonymous = User(
            ANONYMOUS_USER, "Anonymous", "User", "anonymous@example.org", "disabled", [ANONYMOUS_ROLE]
        )
        self.users = {admin.user_id: admin, anonymous.user_id: anonymous}

    # -- authentication and authorization ---------------------------------------------

    def authenticate(self, user_id: str, password: str) -> User | None:
        with self.lock:
            user = self.users.get(user_id)
            if user is None or user.status not in ("active", "changepassword"):
                return None
            return user if user.check_password(password) else None

    def issue_token(self, user: User) -> str:
        token = f"DockerToken.{secrets.token_urlsafe(24)}"
        with self.lock:
            self.tokens[token] = DockerToken(user.user_id, time.monotonic() + TOKEN_TTL_SECONDS)
        return token

    def user_for_token(self, token: str) -> User | None:
        with self.lock:
            if DOCKER_TOKEN_REALM not in self.active_realms:
                return None
            entry = self.tokens.get(token)
            if entry is None or entry.expires < time.monotonic():
                return None
            user = self.users.get(entry.user_id)
            return user if user is not None and user.status == "active" else None

    def effective_privileges(self, user: User) -> list[Privilege]:
        """Privileges through the user's roles, nested roles included (cycles ignored)."""
        with self.lock:
            seen: set[str] = set()
            pending = list(user.roles)
            names: list[str] = []
            while pending:
                role = self.roles.get(pending.pop())
                if role is None or role.id in seen:
                    continue
                seen.add(role.id)
                names += role.privileges
                pending += role.roles
            return [self.privileges[name] for name in names if name in self.privileges]

    def is_admin(self, user: User) -> bool:
        return any(p.name == NX_ALL for p in self.effective_privileges(user))

    def may(self, user: User, repository: Repository, actions: Iterable[str]) -> bool:
        privileges = self.effective_privileges(user)
        return all(
            any(p.grants_view(repository.format, repository.name, action) for p in privileges)
            for action in actions
        )

    # -- repositories -------------------------------------------------------------------

    def repository_named(self, name: str) -> Repository | None:
        with self.lock:
            return self.repositories.get(name)

    def name_taken(self, name: str) -> bool:
        with self.lock:
            return any(existing.lower() == name.lower() for existing in self.repositories)

    def add_repository(self, repository: Repository) -> None:
        with self.lock:
            self.repositories[repository.name] = repository
            self.content[repository.name] = DockerContent()
            for action in VIEW_ACTIONS:
                privilege = view_privilege(repository.format, repository.name, action)
                self.privileges[privilege.name] = privilege

    def replace_config(self, name: str, config: dict[str, Any]) -> None:
        with self.lock:
            self.repositories[name].config = config

    def delete_repository(self, name: str) -> Repository | None:
        """RepositoryManagerImpl.delete: out of every group, its privileges out of every role."""
        with self.lock:
            repository = self.repositories.pop(name, None)
            if repository is None:
                return None
            self.content.pop(name, None)
            for other in self.repositories.values():
                group = other.config.get("group")
                if group and name in group.get("memberNames", []):
                    group["memberNames"] = [n for n in group["memberNames"] if n != name]
            removed = {view_privilege(repository.format, name, action).name for action in VIEW_ACTIONS}
            for privilege in removed:
                self.privileges.pop(privilege, None)
            for role in self.roles.values():
                role.privileges = [p for p in role.privileges if p not in removed]
            for key in [key for key in self.assets if key[0] == name]:
                del self.assets[key]
            return repository

    def connector_ports(self) -> dict[int, str]:
        """Port -> docker repository, the first one created winning a shared port."""
        with self.lock:
            ports: dict[int, str] = {}
            for repository in self.repositories.values():
                port = repository.http_port
                if repository.format == "docker" and port is not None and port not in ports:
                    ports[port] = repository.name
            return ports

    def repository_on_port(self, port: int) -> Repository | None:
        with self.lock:
            name = self.connector_ports().get(port)
            return self.repositories.get(name) if name else None

    # -- content --------------------------------------------------------------------------

    def store_blob(self, repository: str, digest: str, data: bytes, user: str | None, ip: str | None) -> None:
        with self.lock:
            self.blob_bytes[digest] = data
            self.content[repository].blobs.add(digest)
            self._record_asset(
                repository, f"v2/-/blobs/{digest}", None, digest, data, "application/octet-stream", user, ip
            )

    def store_manifest(
        self,
        repository: str,
        name: str,
        reference: str,
        data: bytes,
        content_type: str,
        user: str | None,
        ip: str | None,
    ) -> str:
        digest = sha256_digest(data)
        with self.lock:
            content = self.content[repository]
            self.blob_bytes[digest] = data
            content.manifests[(name, digest)] = content_type
            if not reference.startswith("sha256:"):
                content.tags[(name, reference)] = (digest, time.monotonic())
                self._record_asset(
                    repository, f"v2/{name}/manifests/{reference}", name, digest, data, content_type, user, ip
                )
            self._record_asset(
                repository, f"v2/{name}/manifests/{digest}", name, digest, data, content_type, user, ip
            )
        return digest

    def _record_asset(
        self,
        repository: str,
        path: str,
        component: str | None,
        digest: str,
        data: bytes,
        content_type: str,
        user: str | None,
        ip: str | None,
    ) -> None:
        previous = self.assets.get((repository, path))
        self.assets[(repository, path)] = Asset(
            repository=repository,
            path=path,
            component=component,
            digest=digest,
            content_type=content_type,
            size=len(data),
            sha1=hashlib.sha1(data).hexdigest(),
            created=now(),
            uploader=user,
            uploader_ip=ip,
            last_downloaded=previous.last_downloaded if previous else None,
        )

    def mark_downloaded(self, repository: str, path: str) -> None:
        with self.lock:
            asset = self.assets.get((repository, path))
            if asset is not None:
                asset.last_downloaded = now()

    def expand_members(self, name: str, seen: set[str] | None = None) -> list[str]:
        """A repository's leaf repositories: itself, or a group's members in order, recursively."""
        seen = set() if seen is None else seen
        with self.lock:
            repository = self.repositories.get(name)
            if repository is None or name in seen:
                return []
            seen.add(name)
            if repository.type != "group":
                return [name]
            leaves: list[str] = []
            for member in repository.members:
                leaves += [leaf for leaf in self.expand_members(member, seen) if leaf not in leaves]
            return leaves

    def reaches(self, name: str, target: str) -> bool:
        """True when `target` is `name` or is reachable through group memberships from it."""
        with self.lock:
            seen: set[str] = set()
            pending = [name]
            while pending:
                current = pending.pop()
                if current == target:
                    return True
                repository = self.repositories.get(current)
                if repository is not None and current not in seen:
                    seen.add(current)
                    pending += repository.members
            return False

    def port_conflicts(self) -> list[tuple[str, int, str]]:
        """(repository, port, holder) for docker repositories whose port another one holds."""
        with self.lock:
            holders = self.connector_ports()
            return [
                (repository.name, port, holders[port])
                for repository in self.repositories.values()
                if repository.format == "docker"
                and (port := repository.http_port) is not None
                and holders.get(port) != repository.name
            ]

    def assets_of(self, repositories: list[str]) -> list[Asset]:
        with self.lock:
            return [
                copy.copy(asset)
                for asset in sorted(self.assets.values(), key=lambda a: (a.repository, a.path))
                if asset.repository in repositories
            ]

    # -- faults and request log ----------------------------------------------------------

    def take_fault(self, method: str, path: str, port: int) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path, port):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
            return None

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)
            del self.requests[:-REQUEST_LOG_LIMIT]
