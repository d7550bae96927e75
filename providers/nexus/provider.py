"""Nexus as Pulumi dynamic providers (I/O part): readiness, repos, realms, roles, users, and
the Step 1 pull check. Each method opens its own HTTP client from plain-data inputs.

Passwords are write-only in Nexus: they are compared through a keyed digest kept in state
as a secret, never against what Nexus returns, and never printed.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    UpdateResult,
)

from providers.engine import Provider
from providers.http import Endpoint, HttpError
from providers.nexus import model
from providers.registry import RegistryCheckError, check_pull, push_canary

REST = "/service/rest"


def endpoint(connection: Mapping[str, Any], *, authenticated: bool = True) -> Endpoint:
    """The Nexus REST API as described by a resource's `connection` input."""
    return Endpoint(
        base_url=connection["url"].rstrip("/") + REST,
        username=connection.get("username", "") if authenticated else "",
        password=connection.get("password", "") if authenticated else "",
        timeout=float(connection.get("timeout", 30)),
        ca_bundle=connection.get("caBundle", ""),
    )


def note(message: str) -> None:
    """Shown by the engine under the resource (pulumi.log is not, from a provider)."""
    print(message, file=sys.stderr, flush=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- readiness and EULA ------------------------------------------------------------------


class NexusReadinessProvider(Provider):
    """Waits until Nexus is writable and its Community Edition EULA is accepted."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = (
            olds.get("acceptEula") != news.get("acceptEula")
            or olds.get("connection", {}).get("url") != news["connection"]["url"]
        )
        return DiffResult(changes=changed or not olds.get("ready"))

    def _ensure(self, props: dict[str, Any]) -> dict[str, Any]:
        connection = props["connection"]
        deadline = time.monotonic() + float(props.get("waitSeconds", 300))
        status = endpoint(connection, authenticated=False)
        while True:
            writable = status.request(
                "wait for Nexus to be writable",
                "GET",
                "/v1/status/writable",
                ok=(200,),
                allowed=(503,),
            )
            if writable.status_code == 200:
                break
            if time.monotonic() > deadline:
                raise HttpError(
                    f"Nexus at {connection['url']} answered /v1/status/writable with 503 for "
                    f"{props.get('waitSeconds', 300)}s: it is starting or read-only; check its log"
                )
            time.sleep(2)
        api = endpoint(connection)
        eula = api.request("read the EULA status", "GET", "/v1/system/eula", ok=(200,), allowed=(404,))
        accepted = eula.status_code == 404 or eula.json().get("accepted") is True
        if not accepted:
            if not props.get("acceptEula"):
                raise RuntimeError(
                    f"Nexus at {connection['url']} asks for its Community Edition EULA to be accepted "
                    "before it serves content. Read it (GET /service/rest/v1/system/eula); accepting "
                    "is the operator's decision: pulumi config set nexus-cutover:acceptNexusEula true, "
                    "then pulumi up again."
                )
            body = {**eula.json(), "accepted": True}
            api.request(
                "accept the EULA (acceptNexusEula is true)",
                "POST",
                "/v1/system/eula",
                json_body=body,
            )
            note("accepted the Nexus Community Edition EULA as configured (acceptNexusEula: true)")
        return {**props, "ready": True, "eulaAccepted": True, "checkedAt": _now()}

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["connection"]["url"], outs=self._ensure(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._ensure(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            api = endpoint(props["connection"])
            eula = api.request("read the EULA status", "GET", "/v1/system/eula", ok=(200,), allowed=(404,))
            ready = eula.status_code == 404 or eula.json().get("accepted") is True
        except HttpError:
            ready = False
        return ReadResult(id_, {**props, "ready": ready})


class NexusReady(Resource):
    """Nexus writable and, where it asks for one, its EULA accepted (only if configured)."""

    ready: pulumi.Output[bool]

    def __init__(
        self,
        name: str,
        connection: pulumi.Input[Mapping[str, Any]],
        accept_eula: bool,
        wait_seconds: float = 300,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "connection": connection,
            "acceptEula": accept_eula,
            "waitSeconds": wait_seconds,
            "ready": None,
            "eulaAccepted": None,
            "checkedAt": None,
        }
        super().__init__(NexusReadinessProvider(), name, props, opts)


# --- objects with an id: repos, roles, users ----------------------------------------------


class NexusObjectProvider(Provider):
    """Create-or-adopt, update, delete, read and drift for one kind of Nexus object.

    Subclasses say how to address, send and fetch their kind; the state keeps `observed`
    (the managed fields as Nexus last returned them) so a refresh shows drift and a second
    `pulumi up` with nothing changed reports no changes.
    """

    kind = "object"
    replace_on: tuple[str, ...] = ()

    # -- per kind
    def key(self, inputs: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def problems(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        return []

    def desired(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def fetch(self, api: Endpoint, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    def send(self, api: Endpoint, inputs: Mapping[str, Any], *, exists: bool) -> None:
        raise NotImplementedError

    def remove(self, api: Endpoint, inputs: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def secret(self, inputs: Mapping[str, Any]) -> str:
        """The write-only secret of this object ("" when it has none)."""
        return ""

    def rotate(self, api: Endpoint, inputs: Mapping[str, Any]) -> None:
        """Apply a changed secret when `send` does not carry it."""

    # -- shared
    def _identity(self, inputs: Mapping[str, Any]) -> tuple[str, ...]:
        spec = inputs.get("spec") or {}
        return tuple(str(spec.get(k)) for k in self.replace_on)

    def _observed(self, api: Endpoint, inputs: Mapping[str, Any]) -> dict[str, Any]:
        # Some deployments (HA) answer 404 right after a create: give them a moment.
        for delay in (0, 0.5, 1, 2, 4):
            time.sleep(delay)
            if (got := self.fetch(api, inputs)) is not None:
                return model.observed_view(self.desired(inputs), got)
        raise HttpError(f"{self.kind} {self.key(inputs)} was written but Nexus does not return it")

    def _outs(self, api: Endpoint, inputs: Mapping[str, Any], salt: str, adopted: bool) -> dict[str, Any]:
        secret = self.secret(inputs)
        return {
            **inputs,
            "observed": self._observed(api, inputs),
            "adopted": adopted,
            "salt": salt,
            "secretDigest": model.secret_digest(salt, secret) if secret else "",
        }

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [CheckFailure(f, p) for f, p in self.problems(news)])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["spec"] if self._identity(olds) != self._identity(news) else []
        drifted = model.drift(self.desired(news), olds.get("observed") or {})
        secret = self.secret(news)
        new_digest = model.secret_digest(olds.get("salt", ""), secret) if secret else ""
        secret_changed = new_digest != olds.get("secretDigest", "")
        return DiffResult(
            changes=bool(replaces or drifted or secret_changed),
            replaces=replaces,
            delete_before_replace=True,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        api = endpoint(props["connection"])
        exists = self.fetch(api, props) is not None
        if exists and not props.get("adopt"):
            raise RuntimeError(
                f"{self.kind} {self.key(props)} already exists in Nexus and is not managed by this "
                f"stack: set adopt: true for it in the stack config to take it over (its settings "
                f"will be overwritten), or remove it in Nexus"
            )
        try:
            self.send(api, props, exists=exists)
        except HttpError as err:
            if exists or err.status is not None or not self._landed(api, props):
                raise
            note(f"{self.kind} {self.key(props)}: the create got no answer but landed in Nexus")
        if exists:
            self.rotate(api, props)
            note(f"adopted existing {self.kind} {self.key(props)}")
        salt = secrets.token_hex(16)
        return CreateResult(id_=self.key(props), outs=self._outs(api, props, salt, adopted=exists))

    def _landed(self, api: Endpoint, props: Mapping[str, Any]) -> bool:
        """After a create that got no answer (timeout, reset): a slow Nexus may still finish
        it, and then the object is this create's. Looks for it for one more timeout."""
        deadline = time.monotonic() + api.timeout
        while self.fetch(api, props) is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(1.0)
        return True

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        api = endpoint(news["connection"])
        salt = olds.get("salt") or secrets.token_hex(16)
        self.send(api, news, exists=True)
        secret = self.secret(news)
        if secret and model.secret_digest(salt, secret) != olds.get("secretDigest"):
            self.rotate(api, news)
        return UpdateResult(outs=self._outs(api, news, salt, adopted=bool(olds.get("adopted"))))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if props.get("adopted") and not props.get("deleteAdopted"):
            note(f"left adopted {self.kind} {self.key(props)} in Nexus (deleteAdopted is false)")
            return
        self.remove(endpoint(props["connection"]), props)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        api = endpoint(props["connection"])
        got = self.fetch(api, props)
        if got is None:
            note(f"{self.kind} {self.key(props)} is gone from Nexus: the next up creates it again")
            return ReadResult(None, {})
        return ReadResult(id_, {**props, "observed": model.observed_view(self.desired(props), got)})


class RepositoryProvider(NexusObjectProvider):
    kind = "repository"
    replace_on = ("name", "format", "type")

    def key(self, inputs: Mapping[str, Any]) -> str:
        return inputs["spec"]["name"]

    def problems(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [
            (f"spec.{field}", problem) for field, problem in model.repo_problems(inputs.get("spec") or {})
        ]

    def desired(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return model.without_write_only(model.repo_body(inputs["spec"]))

    def _path(self, inputs: Mapping[str, Any]) -> str:
        return f"{model.repo_path(inputs['spec'])}/{self.key(inputs)}"

    def fetch(self, api: Endpoint, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        got = api.request(f"read repository {self.key(inputs)}", "GET", self._path(inputs), allowed=(404,))
        if got.status_code == 404:
            return None
        body = got.json()
        # Nexus takes writePolicy in lower case and returns it in upper case.
        if isinstance((body.get("storage") or {}).get("writePolicy"), str):
            body["storage"]["writePolicy"] = body["storage"]["writePolicy"].lower()
        return body

    def send(self, api: Endpoint, inputs: Mapping[str, Any], *, exists: bool) -> None:
        body = model.repo_body(inputs["spec"])
        if exists:
            api.request(f"update repository {self.key(inputs)}", "PUT", self._path(inputs), json_body=body)
        else:
            api.request(
                f"create repository {self.key(inputs)}",
                "POST",
                model.repo_path(inputs["spec"]),
                json_body=body,
            )

    def remove(self, api: Endpoint, inputs: Mapping[str, Any]) -> None:
        path = f"/v1/repositories/{self.key(inputs)}"
        api.request(f"delete repository {self.key(inputs)}", "DELETE", path, allowed=(404,))

    def secret(self, inputs: Mapping[str, Any]) -> str:
        return (inputs["spec"].get("remoteAuth") or {}).get("password", "")


class RoleProvider(NexusObjectProvider):
    kind = "role"
    replace_on = ("id",)

    def key(self, inputs: Mapping[str, Any]) -> str:
        return inputs["spec"]["id"]

    def desired(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        body = model.role_body(inputs["spec"])
        return {k: body[k] for k in model.ROLE_MANAGED}

    def fetch(self, api: Endpoint, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        path = f"/v1/security/roles/{self.key(inputs)}"
        got = api.request(f"read role {self.key(inputs)}", "GET", path, allowed=(404,))
        return None if got.status_code == 404 else got.json()

    def send(self, api: Endpoint, inputs: Mapping[str, Any], *, exists: bool) -> None:
        body = model.role_body(inputs["spec"])
        if exists:
            path = f"/v1/security/roles/{self.key(inputs)}"
            api.request(f"update role {self.key(inputs)}", "PUT", path, json_body=body)
        else:
            api.request(f"create role {self.key(inputs)}", "POST", "/v1/security/roles", json_body=body)

    def remove(self, api: Endpoint, inputs: Mapping[str, Any]) -> None:
        path = f"/v1/security/roles/{self.key(inputs)}"
        api.request(f"delete role {self.key(inputs)}", "DELETE", path, allowed=(404,))


class UserProvider(NexusObjectProvider):
    kind = "user"
    replace_on = ("userId",)

    def key(self, inputs: Mapping[str, Any]) -> str:
        return inputs["spec"]["userId"]

    def problems(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [] if inputs.get("password") else [("password", "the user's password must not be empty")]

    def desired(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        body = model.user_body(inputs["spec"])
        return {k: body[k] for k in model.USER_MANAGED}

    def fetch(self, api: Endpoint, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        user_id = self.key(inputs)
        found = api.request(
            f"look up user {user_id}", "GET", "/v1/security/users", params={"userId": user_id}
        )
        # userId is a search term: other users may start with the same letters.
        return next((u for u in found.json() if u.get("userId") == user_id), None)

    def send(self, api: Endpoint, inputs: Mapping[str, Any], *, exists: bool) -> None:
        user_id = self.key(inputs)
        if exists:
            body = model.user_body(inputs["spec"])
            api.request(f"update user {user_id}", "PUT", f"/v1/security/users/{user_id}", json_body=body)
        else:
            body = model.user_body(inputs["spec"], password=inputs["password"])
            api.request(f"create user {user_id}", "POST", "/v1/security/users", json_body=body)

    def remove(self, api: Endpoint, inputs: Mapping[str, Any]) -> None:
        user_id = self.key(inputs)
        api.request(f"delete user {user_id}", "DELETE", f"/v1/security/users/{user_id}", allowed=(404,))

    def secret(self, inputs: Mapping[str, Any]) -> str:
        return inputs.get("password", "")

    def rotate(self, api: Endpoint, inputs: Mapping[str, Any]) -> None:
        user_id = self.key(inputs)
        api.request(
            f"change the password of user {user_id}",
            "PUT",
            f"/v1/security/users/{user_id}/change-password",
            content=inputs["password"],
            headers={"Content-Type": "text/plain"},
        )


class _NexusObject(Resource):
    observed: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        provider: NexusObjectProvider,
        name: str,
        props: dict[str, Any],
        opts: pulumi.ResourceOptions | None,
    ) -> None:
        outs = {"observed": None, "adopted": None, "salt": None, "secretDigest": None}
        secret_outs = pulumi.ResourceOptions(additional_secret_outputs=["secretDigest", "salt"])
        super().__init__(provider, name, {**props, **outs}, pulumi.ResourceOptions.merge(secret_outs, opts))


class NexusRepository(_NexusObject):
    """A Nexus repository from a spec (see providers.nexus.model.repo_body)."""

    def __init__(
        self,
        name: str,
        connection: pulumi.Input[Mapping[str, Any]],
        spec: pulumi.Input[Mapping[str, Any]],
        adopt: bool = False,
        delete_adopted: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "connection": connection,
            "spec": spec,
            "adopt": adopt,
            "deleteAdopted": delete_adopted,
        }
        super().__init__(RepositoryProvider(), name, props, opts)


class NexusRole(_NexusObject):
    def __init__(
        self,
        name: str,
        connection: pulumi.Input[Mapping[str, Any]],
        spec: pulumi.Input[Mapping[str, Any]],
        adopt: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"connection": connection, "spec": spec, "adopt": adopt, "deleteAdopted": False}
        super().__init__(RoleProvider(), name, props, opts)


class NexusUser(_NexusObject):
    def __init__(
        self,
        name: str,
        connection: pulumi.Input[Mapping[str, Any]],
        spec: pulumi.Input[Mapping[str, Any]],
        password: pulumi.Input[str],
        adopt: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "connection": connection,
            "spec": spec,
            "password": pulumi.Output.secret(password),
            "adopt": adopt,
            "deleteAdopted": False,
        }
        super().__init__(UserProvider(), name, props, opts)


# --- active realms (one list shared with whoever else configures Nexus) -------------------


class ActiveRealmsProvider(Provider):
    """Adds the realms we need to Nexus's active list; removes only those we added."""

    def _active(self, api: Endpoint) -> list[str]:
        return api.request("read the active realms", "GET", "/v1/security/realms/active").json()

    def _write(self, api: Endpoint, realms: list[str]) -> None:
        api.request("write the active realms", "PUT", "/v1/security/realms/active", json_body=realms)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        active = olds.get("active") or []
        missing = [r for r in news["required"] if r not in active]
        return DiffResult(changes=bool(missing) or olds.get("required") != news["required"])

    def _apply(self, props: dict[str, Any], added_before: list[str]) -> dict[str, Any]:
        api = endpoint(props["connection"])
        active = self._active(api)
        # Realms we added earlier but no longer need go; everyone else's stay.
        no_longer = [r for r in added_before if r not in props["required"]]
        wanted = model.merge_realms(model.unmerge_realms(active, no_longer), props["required"])
        if wanted != active:
            self._write(api, wanted)
        added = [r for r in props["required"] if r in added_before or r not in active]
        return {**props, "active": wanted, "added": added}

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="active-realms", outs=self._apply(props, []))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply(news, list(olds.get("added") or [])))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        api = endpoint(props["connection"])
        active = self._active(api)
        remaining = model.unmerge_realms(active, props.get("added") or [])
        if remaining != active:
            self._write(api, remaining)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, {**props, "active": self._active(endpoint(props["connection"]))})


class ActiveRealms(Resource):
    active: pulumi.Output[list[str]]
    added: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        connection: pulumi.Input[Mapping[str, Any]],
        required: list[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"connection": connection, "required": required, "active": None, "added": None}
        super().__init__(ActiveRealmsProvider(), name, props, opts)


# --- registry checks: the Step 1 pull check and the push check / canary ----------------------


class RegistryCheckProvider(Provider):
    """A check that runs on create, when its inputs change, and again on refresh: a registry
    that stopped doing its job shows up as a change, and the next `up` fails with evidence."""

    watched: tuple[str, ...] = ("registryUrl", "repository", "username", "after")

    def run(self, props: dict[str, Any], registry: Endpoint) -> dict[str, Any]:
        raise NotImplementedError

    def _check(self, props: dict[str, Any]) -> dict[str, Any]:
        registry = Endpoint(
            base_url=props["registryUrl"],
            timeout=float(props.get("timeout", 30)),
            ca_bundle=props.get("caBundle", ""),
        )
        salt = props.get("salt") or secrets.token_hex(16)
        return {
            **props,
            **self.run(props, registry),
            "ok": True,
            "checkedAt": _now(),
            "salt": salt,
            "passwordDigest": model.secret_digest(salt, props["password"]),
        }

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = any(olds.get(k) != news.get(k) for k in self.watched)
        digest = model.secret_digest(olds.get("salt", ""), news.get("password", ""))
        return DiffResult(changes=changed or not olds.get("ok") or digest != olds.get("passwordDigest"))

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"{props['registryUrl']}/{props['repository']}", outs=self._check(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        kept = {k: olds.get(k) for k in ("salt", "tag") if olds.get(k)}
        return UpdateResult(outs=self._check({**news, **kept}))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            return ReadResult(id_, self._check(props))
        except (RegistryCheckError, HttpError) as err:
            note(str(err))
            return ReadResult(id_, {**props, "ok": False})


class PullCheckProvider(RegistryCheckProvider):
    """Passes when the registry serves repository:reference to the pull user."""

    watched = (*RegistryCheckProvider.watched, "reference")

    def run(self, props: dict[str, Any], registry: Endpoint) -> dict[str, Any]:
        repository, reference, user = props["repository"], props["reference"], props["username"]
        try:
            evidence = check_pull(registry, repository, reference, user, props["password"])
        except RegistryCheckError as err:
            raise RegistryCheckError(
                f"Step 1 check failed: {props['registryUrl']} did not serve {repository}:{reference} "
                f"to {user}:\n{err}"
            ) from None
        return evidence.as_dict()


class PushCheckProvider(RegistryCheckProvider):
    """Passes when the push user can push to the hosted repo (a push-scoped login, as CI's
    build-cache pushes need). What it pushes is the canary: a tiny image that exists only
    in Nexus, so a node that pulls it proves its mirror, not a fallback, served it."""

    def run(self, props: dict[str, Any], registry: Endpoint) -> dict[str, Any]:
        tag = props.get("tag") or f"canary-{secrets.token_hex(6)}"
        repository, user = props["repository"], props["username"]
        try:
            digest = push_canary(registry, repository, tag, user, props["password"])
        except RegistryCheckError as err:
            raise RegistryCheckError(
                f"push check failed: {user} cannot push {repository}:{tag} to {props['registryUrl']} "
                f"(CI's build-cache pushes would fail the same way):\n{err}"
            ) from None
        return {"tag": tag, "digest": digest}

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """A refresh only looks: the canary is still there for the push user to read."""
        registry = Endpoint(base_url=props["registryUrl"], timeout=float(props.get("timeout", 30)))
        try:
            check_pull(registry, props["repository"], props["tag"], props["username"], props["password"])
        except (RegistryCheckError, HttpError, KeyError) as err:
            note(f"push check: the canary is not readable any more ({err}); the next up pushes it again")
            return ReadResult(id_, {**props, "ok": False})
        return ReadResult(id_, props)


class _RegistryCheck(Resource):
    """Inputs shared by both checks; `extra` holds what one of them adds."""

    def __init__(
        self,
        provider: RegistryCheckProvider,
        name: str,
        registry_url: pulumi.Input[str],
        repository: str,
        username: pulumi.Input[str],
        password: pulumi.Input[str],
        after: pulumi.Input[list[str]],
        timeout: float,
        ca_bundle: str,
        extra: dict[str, Any],
        outputs: tuple[str, ...],
        opts: pulumi.ResourceOptions | None,
    ) -> None:
        props = {
            "registryUrl": registry_url,
            "repository": repository,
            "username": username,
            "password": pulumi.Output.secret(password),
            "after": after,
            "timeout": timeout,
            "caBundle": ca_bundle,
            **extra,
            **dict.fromkeys(("ok", "checkedAt", "salt", "passwordDigest", *outputs)),
        }
        secret_outs = pulumi.ResourceOptions(additional_secret_outputs=["passwordDigest", "salt"])
        super().__init__(provider, name, props, pulumi.ResourceOptions.merge(secret_outs, opts))


class PullCheck(_RegistryCheck):
    """The runbook's Step 1 verification: the group answers /v2/ and serves a pull."""

    digest: pulumi.Output[str]
    authScheme: pulumi.Output[str]
    pingStatus: pulumi.Output[int]

    def __init__(
        self,
        name: str,
        registry_url: pulumi.Input[str],
        repository: str,
        reference: str,
        username: pulumi.Input[str],
        password: pulumi.Input[str],
        after: pulumi.Input[list[str]],
        timeout: float = 30,
        ca_bundle: str = "",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        outputs = ("digest", "authScheme", "pingStatus", "mediaType")
        extra = {"reference": reference}
        super().__init__(
            PullCheckProvider(), name, registry_url, repository, username, password, after, timeout,
            ca_bundle, extra, outputs, opts,
        )  # fmt: skip


class PushCheck(_RegistryCheck):
    """The push user can push to the hosted repo; leaves the canary image there."""

    tag: pulumi.Output[str]
    digest: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        registry_url: pulumi.Input[str],
        repository: str,
        username: pulumi.Input[str],
        password: pulumi.Input[str],
        after: pulumi.Input[list[str]],
        timeout: float = 30,
        ca_bundle: str = "",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            PushCheckProvider(), name, registry_url, repository, username, password, after, timeout,
            ca_bundle, {}, ("tag", "digest"), opts,
        )  # fmt: skip
