"""The REST API under /service/rest, answered the way Nexus 3 answers it.

Status codes, error bodies and validation order follow the resources in
sonatype/nexus-public (AbstractRepositoriesApiResource, AbstractGroupRepositoriesApiResource,
RoleApiResource, UserApiResource, RealmApiResource, CommunityEulaApiResource, StatusResource).
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nexus_api_client.models as m
from pydantic import StrictStr

from tests.homelab.nexus_double.contract import (
    JSON,
    REPOSITORY_MODELS,
    ApiError,
    PrivilegeResponse,
    bad_request,
    encode,
    message_error,
    parse,
    unexpected,
)
from tests.homelab.nexus_double.exchange import Reply, Request
from tests.homelab.nexus_double.state import (
    AVAILABLE_REALMS,
    DEFAULT_BLOB_STORE,
    DEFAULT_SOURCE,
    EULA_DISCLAIMER,
    NexusState,
    Repository,
    Role,
    User,
)

PREFIX = "/service/rest"
BASIC_CHALLENGE = 'BASIC realm="Sonatype Nexus Repository Manager"'
AUTHENTICATING_REALM = "NexusAuthenticatingRealm"
# ApiDocConstants in nexus-rest.
BLOBSTORE_NOT_FOUND = "Blob store not found"
BLOBSTORE_CHANGE_NOT_ALLOWED = "You cannot change a repository\u2019s blob store through the API"
DOCKER_LOWERCASE = "Docker repository names must be lowercase to support path-based routing"
NAME_NOT_UNIQUE = "Name is already used, must be unique (ignoring case)"
# GroupHandler.INSUFFICIENT_LICENSE: group deployment (writableMember) is a PRO feature.
INSUFFICIENT_LICENSE = (
    "Deploying to groups is a PRO-licensed feature. See https://links.sonatype.com/product-nexus-repository"
)
# Page sizes of the asset listing and of search.
ASSETS_PAGE = 10
SEARCH_PAGE = 50
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

Handler = Callable[[Request, User | None, re.Match[str]], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    authenticated: bool = True


def json_reply(status: int, body: bytes) -> Reply:
    return Reply(status, body, {"Content-Type": JSON})


def empty(status: int) -> Reply:
    return Reply(status)


class RestApi:
    """Routes /service/rest requests; `on_repositories_changed` re-binds docker connectors."""

    def __init__(self, state: NexusState, on_repositories_changed: Callable[[], None]) -> None:
        self.state = state
        self.on_repositories_changed = on_repositories_changed
        r = re.compile
        name = r"(?P<name>[^/]+)"
        self.routes = [
            Route("GET", r("/v1/status"), self.status, authenticated=False),
            Route("GET", r("/v1/status/writable"), self.status_writable, authenticated=False),
            Route("GET", r("/v1/system/eula"), self.get_eula),
            Route("POST", r("/v1/system/eula"), self.post_eula),
            Route("GET", r("/v1/repositories"), self.list_repositories),
            Route("GET", r("/v1/repositorySettings"), self.list_repository_settings),
            Route("GET", r(f"/v1/repositories/{name}"), self.get_repository_xo),
            Route("DELETE", r(f"/v1/repositories/{name}"), self.delete_repository),
            Route("POST", r("/v1/repositories/(?P<fmt>[^/]+)/(?P<type>[^/]+)"), self.create),
            Route("GET", r(f"/v1/repositories/(?P<fmt>[^/]+)/(?P<type>[^/]+)/{name}"), self.get),
            Route("PUT", r(f"/v1/repositories/(?P<fmt>[^/]+)/(?P<type>[^/]+)/{name}"), self.update),
            Route("GET", r("/v1/security/privileges"), self.list_privileges),
            Route("GET", r(f"/v1/security/privileges/{name}"), self.get_privilege),
            Route("GET", r("/v1/security/roles"), self.list_roles),
            Route("POST", r("/v1/security/roles"), self.create_role),
            Route("GET", r(f"/v1/security/roles/{name}"), self.get_role),
            Route("PUT", r(f"/v1/security/roles/{name}"), self.update_role),
            Route("DELETE", r(f"/v1/security/roles/{name}"), self.delete_role),
            Route("GET", r("/v1/security/users"), self.list_users),
            Route("POST", r("/v1/security/users"), self.create_user),
            Route("PUT", r(f"/v1/security/users/{name}"), self.update_user),
            Route("DELETE", r(f"/v1/security/users/{name}"), self.delete_user),
            Route("PUT", r(f"/v1/security/users/{name}/change-password"), self.change_password),
            Route("GET", r("/v1/security/realms/available"), self.available_realms),
            Route("GET", r("/v1/security/realms/active"), self.active_realms),
            Route("PUT", r("/v1/security/realms/active"), self.set_active_realms),
            Route("GET", r("/v1/search/assets"), self.search_assets),
            Route("GET", r("/v1/assets"), self.list_assets),
            Route("GET", r("/v1/assets/(?P<id>[^/]+)"), self.get_asset),
        ]

    # -- dispatch -------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        path = request.path.removeprefix(PREFIX)
        matches = [(route, route.pattern.fullmatch(path)) for route in self.routes]
        matches = [(route, match) for route, match in matches if match]
        if not matches:
            return empty(404)
        for route, match in matches:
            if route.method == request.method or (request.method == "HEAD" and route.method == "GET"):
                user = self._authenticate(request) if route.authenticated else None
                if route.authenticated and user is None:
                    return Reply(401, headers={"WWW-Authenticate": BASIC_CHALLENGE})
                if user is not None and not self.state.is_admin(user):
                    return Reply(403, user=user.user_id)  # every route here needs nexus:* rights
                try:
                    reply = route.handler(request, user, match)
                except ApiError as error:
                    reply = Reply(error.status, error.body(), {"Content-Type": error.content_type})
                reply.user = user.user_id if user else None
                return reply
        return Reply(405, headers={"Allow": ", ".join(sorted({r.method for r, _ in matches}))})

    def _authenticate(self, request: Request) -> User | None:
        credentials = request.basic_credentials()
        if credentials is None or AUTHENTICATING_REALM not in self.state.active_realms:
            return None
        return self.state.authenticate(*credentials)

    # -- status and EULA ----------------------------------------------------------------

    def status(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        return empty(200)

    def status_writable(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        starting = time.monotonic() - self.state.started < self.state.starting_seconds
        return empty(503 if starting else 200)

    def get_eula(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        payload = {"accepted": self.state.eula_accepted, "disclaimer": EULA_DISCLAIMER}
        return json_reply(200, encode(m.EulaStatus, payload))

    def post_eula(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        status: m.EulaStatus = parse(m.EulaStatus, request.body)
        if status.disclaimer != EULA_DISCLAIMER:
            # An IllegalArgumentException that no mapper claims: UnexpectedExceptionMapper.
            raise unexpected("java.lang.IllegalArgumentException: Invalid EULA disclaimer")
        with self.state.lock:
            self.state.eula_accepted = bool(status.accepted)
        return empty(204)

    # -- repositories ---------------------------------------------------------------------

    def _models(self, fmt: str, kind: str) -> tuple[Any, Any]:
        models = REPOSITORY_MODELS.get((fmt, kind))
        if models is None:
            raise message_error(404, f"The Nexus double does not implement {fmt} {kind} repositories")
        return models

    def _validate_repository(
        self, fmt: str, kind: str, config: dict[str, Any], *, creating: bool, path_name: str
    ) -> None:
        """The checks after binding, in Nexus's order; raises the first failing stage's 400."""
        name = config["name"]
        violations: list[tuple[str, str]] = []
        if fmt == "docker" and name != name.lower():
            violations.append(("PARAMETER arg0", DOCKER_LOWERCASE))
        if creating and self.state.name_taken(name):
            violations.append(("PARAMETER name", NAME_NOT_UNIQUE))
        if violations:
            raise bad_request(*violations)
        if kind == "group":
            self._validate_group(fmt, name, config["group"], creating=creating)
        if name != path_name:
            raise bad_request(("name", "Renaming a repository is not supported"))
        blob_store = config["storage"]["blobStoreName"]
        if blob_store != DEFAULT_BLOB_STORE:
            raise bad_request(("BlobStoreName", BLOBSTORE_NOT_FOUND))

    def _validate_group(self, fmt: str, name: str, group: dict[str, Any], *, creating: bool) -> None:
        members: list[str] = group["memberNames"]
        problems: list[tuple[str, str]] = []
        if group.get("writableMember"):
            problems.append(("HelperBean.writableMember", INSUFFICIENT_LICENSE))
        for member in members:
            repository = self.state.repository_named(member)
            if repository is None:
                problems.append(("HelperBean.memberNames", f"Member repository does not exist: {member}"))
            elif repository.format != fmt:
                problems.append(
                    (
                        "HelperBean.memberNames",
                        f"Member repository format does not match group repository format: {member}",
                    )
                )
        if problems:
            raise bad_request(*problems)
        if not creating:
            for member in members:
                if self.state.reaches(member, name):
                    raise bad_request(
                        (
                            "HelperBean.group.memberNames",
                            f"Group '{member}' has a member repository '{name}' and cannot be "
                            "added to this list.",
                        )
                    )

    def create(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        fmt, kind = match["fmt"], match["type"]
        request_model, _ = self._models(fmt, kind)
        model = parse(request_model, request.body)
        config = model.model_dump(by_alias=True, mode="json", exclude_unset=True)
        self._validate_repository(fmt, kind, config, creating=True, path_name=config["name"])
        with self.state.lock:
            if self.state.name_taken(config["name"]):  # lost a race with another POST
                raise bad_request(("PARAMETER name", NAME_NOT_UNIQUE))
            self.state.add_repository(Repository(config["name"], fmt, kind, config))
        self.on_repositories_changed()
        return Reply(201, repository=config["name"])

    def update(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        fmt, kind, name = match["fmt"], match["type"], match["name"]
        request_model, _ = self._models(fmt, kind)
        model = parse(request_model, request.body)
        config = model.model_dump(by_alias=True, mode="json", exclude_unset=True)
        self._validate_repository(fmt, kind, config, creating=False, path_name=name)
        with self.state.lock:
            existing = self.state.repository_named(name)
            if existing is None:
                return empty(404)
            if (existing.format, existing.type) != (fmt, kind):
                raise message_error(
                    400,
                    f"Repository {name} is a {existing.format} {existing.type} repository, not {fmt} {kind}",
                )
            if existing.config["storage"]["blobStoreName"] != config["storage"]["blobStoreName"]:
                raise bad_request(("BlobStoreName", BLOBSTORE_CHANGE_NOT_ALLOWED))
            self.state.replace_config(name, config)
        self.on_repositories_changed()
        return Reply(204, repository=name)

    def get(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        fmt, kind, name = match["fmt"], match["type"], match["name"]
        _, response_model = self._models(fmt, kind)
        repository = self.state.repository_named(name)
        if repository is None or (repository.format, repository.type) != (fmt, kind):
            raise message_error(404, "Repository not found")
        view = repository_view(repository, request.base_url)
        return Reply(200, encode(response_model, view), {"Content-Type": JSON}, repository=name)

    def delete_repository(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        removed = self.state.delete_repository(match["name"])
        if removed is None:
            return empty(404)
        self.on_repositories_changed()
        return Reply(204, repository=removed.name)

    def list_repositories(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        with self.state.lock:
            repositories = sorted(self.state.repositories.values(), key=lambda r: r.name)
            payload = [repository_xo(r, request.base_url) for r in repositories]
        return json_reply(200, encode(list[m.RepositoryXO], payload))

    def get_repository_xo(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        repository = self.state.repository_named(match["name"])
        if repository is None:
            return empty(404)
        return json_reply(200, encode(m.RepositoryXO, repository_xo(repository, request.base_url)))

    def list_repository_settings(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        with self.state.lock:
            repositories = sorted(self.state.repositories.values(), key=lambda r: r.name)
            views = [repository_view(r, request.base_url) for r in repositories]
        for repository, view in zip(repositories, views, strict=True):
            # Each item must also satisfy its own format's model, not just the abstract one.
            encode(REPOSITORY_MODELS[(repository.format, repository.type)][1], view)
        return json_reply(200, encode(list[m.AbstractApiRepository], views))

    # -- privileges and roles -----------------------------------------------------------

    def list_privileges(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        with self.state.lock:
            payload = [p.view() for p in sorted(self.state.privileges.values(), key=lambda p: p.name)]
        return json_reply(200, encode(list[PrivilegeResponse], payload))

    def get_privilege(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        with self.state.lock:
            privilege = self.state.privileges.get(match["name"])
            if privilege is None:
                raise message_error(404, f"Privilege '{match['name']}' not found.")
            return json_reply(200, encode(PrivilegeResponse, privilege.view()))

    def list_roles(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        source = request.param("source")
        if source and source != DEFAULT_SOURCE:
            raise message_error(400, f"Source '{source}' not found.")
        with self.state.lock:
            payload = [r.view() for r in sorted(self.state.roles.values(), key=lambda r: r.id)]
        return json_reply(200, encode(list[m.RoleXOResponse], payload))

    def _check_role_contents(self, role_id: str, body: m.RoleXORequest) -> None:
        for privilege in body.privileges or []:
            if privilege not in self.state.privileges:
                raise message_error(400, f"Privilege '{privilege}' contained in role '{role_id}' not found.")
        for contained in body.roles or []:
            if contained not in self.state.roles:
                raise message_error(400, f"Role '{contained}' contained in role '{role_id}' not found.")
        contained_roles = body.roles or []
        if role_id in contained_roles or any(
            role_id in self._nested_roles(contained) for contained in contained_roles
        ):
            raise message_error(
                400,
                f"Role '{role_id}' cannot contain itself either directly or indirectly through child roles.",
            )

    def _nested_roles(self, role_id: str) -> set[str]:
        seen: set[str] = set()
        pending = [role_id]
        while pending:
            role = self.state.roles.get(pending.pop())
            if role is not None and role.id not in seen:
                seen.add(role.id)
                pending += role.roles
        return seen

    def create_role(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        body: m.RoleXORequest = parse(m.RoleXORequest, request.body)
        with self.state.lock:
            if body.id in self.state.roles:
                raise message_error(400, f"Role '{body.id}' already exists, use a unique roleId.")
            self._check_role_contents(body.id, body)
            role = Role(
                body.id, body.name, body.description, list(body.privileges or []), list(body.roles or [])
            )
            self.state.roles[role.id] = role
            return json_reply(200, encode(m.RoleXOResponse, role.view()))

    def get_role(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        with self.state.lock:
            role = self.state.roles.get(match["name"])
            if role is None:
                raise message_error(404, f"Role '{match['name']}' not found.")
            return json_reply(200, encode(m.RoleXOResponse, role.view()))

    def update_role(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        role_id = match["name"]
        body: m.RoleXORequest = parse(m.RoleXORequest, request.body)
        if body.id != role_id:
            raise message_error(
                409, f"The Role id '{body.id}' does not match the id used in the path '{role_id}'."
            )
        with self.state.lock:
            role = self._modifiable_role(role_id)
            self._check_role_contents(role_id, body)
            role.name, role.description = body.name, body.description
            role.privileges, role.roles = list(body.privileges or []), list(body.roles or [])
        return empty(204)

    def delete_role(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        role_id = match["name"]
        with self.state.lock:
            self._modifiable_role(role_id)
            del self.state.roles[role_id]
        return empty(204)

    def _modifiable_role(self, role_id: str) -> Role:
        """The role to change or delete (caller holds the lock): 404 if missing, 400 if built in."""
        role = self.state.roles.get(role_id)
        if role is None:
            raise message_error(404, f"Role '{role_id}' not found.")
        if role.read_only:
            raise message_error(400, f"Role '{role_id}' is internal and cannot be modified or deleted.")
        return role

    # -- users ----------------------------------------------------------------------------

    def list_users(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        prefix = request.param("userId") or ""
        source = request.param("source")
        with self.state.lock:
            found = [
                u.view()
                for u in sorted(self.state.users.values(), key=lambda u: u.user_id)
                if u.user_id.startswith(prefix) and source in (None, "", DEFAULT_SOURCE)
            ]
        return json_reply(200, encode(list[m.ApiUser], found))

    def _check_user_fields(self, body: m.ApiCreateUser | m.ApiUser, password: str | None) -> None:
        """The bean constraints of ApiCreateUser / ApiUser that the generated model lacks."""
        problems: list[tuple[str, str]] = []
        if not body.user_id.strip():
            problems.append(("PARAMETER userId", "must not be blank"))
        for field_name, value in (
            ("firstName", body.first_name),
            ("lastName", body.last_name),
            ("emailAddress", body.email_address),
        ):
            if not value:
                problems.append((f"PARAMETER {field_name}", "must not be empty"))
        if body.email_address and not _EMAIL.match(body.email_address):
            problems.append(("PARAMETER emailAddress", "must be a well-formed email address"))
        if password is not None and not password:
            problems.append(("PARAMETER password", "must not be empty"))
        if not body.roles:
            problems.append(("PARAMETER roles", "must not be empty"))
        if problems:
            raise bad_request(*problems)

    def _check_roles_exist(self, roles: list[str]) -> None:
        missing = [role for role in roles if role not in self.state.roles]
        if missing:
            raise bad_request(*[("roles", f"Unable to locate roleId: {role}") for role in missing])

    def create_user(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        body: m.ApiCreateUser = parse(m.ApiCreateUser, request.body)
        self._check_user_fields(body, body.password)
        with self.state.lock:
            self._check_roles_exist(list(body.roles or []))
            if body.user_id in self.state.users:
                # Nexus answers a duplicate userId with an unmapped DuplicateUserException.
                raise unexpected(
                    "org.sonatype.nexus.security.user.DuplicateUserException: "
                    f"User '{body.user_id}' already exists."
                )
            created = User(
                body.user_id,
                body.first_name,
                body.last_name,
                body.email_address,
                body.status,
                list(dict.fromkeys(body.roles or [])),
            )
            created.set_password(body.password)
            self.state.users[created.user_id] = created
            return json_reply(200, encode(m.ApiUser, created.view()))

    def update_user(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        user_id = match["name"]
        body: m.ApiUser = parse(m.ApiUser, request.body)
        if body.user_id != user_id:
            raise message_error(400, "The path's userId does not match the body")
        self._check_user_fields(body, None)
        with self.state.lock:
            self._check_roles_exist(list(body.roles or []))
            if body.source != DEFAULT_SOURCE:
                raise message_error(404, f"Unable to locate source: {body.source}")
            target = self.state.users.get(user_id)
            if target is None:
                raise message_error(404, f"User '{user_id}' not found.")
            target.first_name, target.last_name = body.first_name or "", body.last_name or ""
            target.email, target.status = body.email_address or "", body.status
            target.roles = list(dict.fromkeys(body.roles or []))
        return empty(204)

    def delete_user(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        user_id = match["name"]
        with self.state.lock:
            if self.state.users.pop(user_id, None) is None:
                raise message_error(404, f"User '{user_id}' not found.")
            for token in [t for t, entry in self.state.tokens.items() if entry.user_id == user_id]:
                del self.state.tokens[token]
        return empty(204)

    def change_password(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        user_id = match["name"]
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "text/plain":
            return empty(415)  # the resource @Consumes(TEXT_PLAIN) only
        password = request.body.decode("utf-8", errors="replace")
        if not password.strip():
            raise message_error(400, "Password must be supplied.")
        with self.state.lock:
            target = self.state.users.get(user_id)
            if target is None:
                raise message_error(404, f"User '{user_id}' not found.")
            target.set_password(password)
        return empty(204)

    # -- realms ---------------------------------------------------------------------------

    def available_realms(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        payload = [{"id": ident, "name": name} for ident, name in AVAILABLE_REALMS]
        return json_reply(200, encode(list[m.RealmApiXO], payload))

    def active_realms(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        with self.state.lock:
            return json_reply(200, encode(list[StrictStr], list(self.state.active_realms)))

    def set_active_realms(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        realm_ids: list[str] = parse(list[StrictStr], request.body)
        known = {ident for ident, _ in AVAILABLE_REALMS}
        unknown = [realm for realm in realm_ids if realm not in known]
        if unknown:
            raise message_error(400, f"Unknown realmIds: [{', '.join(unknown)}]")
        with self.state.lock:
            self.state.active_realms = list(dict.fromkeys(realm_ids))
        return empty(204)

    # -- assets and search ----------------------------------------------------------------

    def _page(self, items: list[dict[str, Any]], request: Request, size: int) -> Reply:
        token = request.param("continuationToken")
        start = 0
        if token:
            try:
                start = int(token, 16)
            except ValueError:
                raise message_error(400, "Invalid continuation token") from None
        page = items[start : start + size]
        more = start + size < len(items)
        payload = {"items": page, "continuationToken": f"{start + size:08x}" if more else None}
        return json_reply(200, encode(m.PageAssetXO, payload))

    def search_assets(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        repository = request.param("repository") or request.param("repository_name")
        name = request.param("name")
        version = request.param("version")
        fmt = request.param("format")
        with self.state.lock:
            pool = [repository] if repository else sorted(self.state.repositories)
            leaves = [leaf for entry in pool for leaf in self.state.expand_members(entry)]
            formats = {n: r.format for n, r in self.state.repositories.items()}
        found = [
            asset.view(request.base_url)
            for asset in self.state.assets_of(leaves)
            # Search finds components' assets; docker blobs belong to no component.
            if asset.component is not None
            and _glob(name, asset.component)
            and (version is None or asset.path.endswith(f"/manifests/{version}"))
            and (fmt is None or formats.get(asset.repository) == fmt)
        ]
        return self._page(found, request, SEARCH_PAGE)

    def list_assets(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        repository = request.param("repository")
        if not repository:
            raise bad_request(("PARAMETER repository", "must not be null"))
        if self.state.repository_named(repository) is None:
            raise message_error(404, f"Repository '{repository}' not found")
        leaves = self.state.expand_members(repository)
        items = [asset.view(request.base_url) for asset in self.state.assets_of(leaves)]
        return self._page(items, request, ASSETS_PAGE)

    def get_asset(self, request: Request, user: User | None, match: re.Match[str]) -> Reply:
        with self.state.lock:
            for asset in self.state.assets.values():
                if asset.id == match["id"]:
                    return json_reply(200, encode(m.AssetXO, asset.view(request.base_url)))
        return empty(404)


def _glob(pattern: str | None, value: str) -> bool:
    """Search terms match exactly, or as a prefix when they end in '*'."""
    if pattern is None:
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def repository_xo(repository: Repository, base_url: str) -> dict[str, Any]:
    """RepositoryXO.fromRepository: proxies carry only their remoteUrl as attributes."""
    attributes: dict[str, Any] = {}
    if repository.type == "proxy":
        attributes = {"proxy": {"remoteUrl": repository.config["proxy"]["remoteUrl"]}}
    return {
        "name": repository.name,
        "format": repository.format,
        "type": repository.type,
        "url": f"{base_url}/repository/{repository.name}",
        "attributes": attributes,
    }


def repository_view(repository: Repository, base_url: str) -> dict[str, Any]:
    """GET /v1/repositories/{format}/{type}/{name}, as SimpleApiRepositoryAdapter builds it.

    Secrets are write-only (the adapter passes null for the password); storage of proxies
    and groups has no writePolicy; a hosted writePolicy comes back as the enum's name.
    """
    config = copy.deepcopy(repository.config)
    storage = {
        "blobStoreName": config["storage"]["blobStoreName"],
        "strictContentTypeValidation": config["storage"]["strictContentTypeValidation"],
    }
    if repository.type == "hosted":
        storage["writePolicy"] = str(config["storage"].get("writePolicy") or "ALLOW").upper()
        if repository.format == "docker":
            storage["latestPolicy"] = config["storage"].get("latestPolicy")
    view: dict[str, Any] = {
        "name": repository.name,
        "url": f"{base_url}/repository/{repository.name}",
        "online": config["online"],
        "storage": storage,
    }
    if repository.type in ("hosted", "proxy"):
        view["cleanup"] = config.get("cleanup")
    if repository.type == "hosted":
        view["component"] = {
            "proprietaryComponents": (config.get("component") or {}).get("proprietaryComponents", False)
        }
    if repository.type == "proxy":
        http_client = config.get("httpClient") or {}
        authentication = http_client.get("authentication")
        if authentication is not None:
            authentication = {**authentication, "password": None, "bearerToken": None}
        view |= {
            "proxy": config["proxy"],
            "negativeCache": config["negativeCache"],
            "httpClient": {
                "blocked": http_client.get("blocked", False),
                "autoBlock": http_client.get("autoBlock", False),
                "connection": http_client.get("connection"),
                "authentication": authentication,
            },
            "routingRuleName": config.get("routingRuleName"),
            "replication": None,
        }
    if repository.type == "group":
        view["group"] = {
            "memberNames": config["group"]["memberNames"],
            "writableMember": config["group"].get("writableMember"),
        }
    if repository.format == "docker":
        view["docker"] = config["docker"]
        if repository.type == "proxy":
            view["dockerProxy"] = config["dockerProxy"]
    if repository.format == "pypi" and repository.type == "proxy":
        view["pypi"] = config.get("pypi") or {"removeQuarantinedVersions": False}
    if repository.format == "apt":
        view["apt"] = config["apt"]
        if "aptSigning" in config:
            view["aptSigning"] = {**config["aptSigning"], "passphrase": None}
    view |= {"format": repository.format, "type": repository.type}
    return view
