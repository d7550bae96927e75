"""Nexus objects as data: request bodies, validation and drift comparison. No I/O.

Bodies follow Sonatype's REST API (the `nexus-api-client` models are the contract; the
unit tests validate every body rendered here against them). Fields whose defaults changed
across Nexus versions (`forceBasicAuth`, `v1Enabled`, `httpPort`) are always sent.
"""

from __future__ import annotations

import copy
import graphlib
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

FORMAT_TYPES = {
    "docker": ("proxy", "hosted", "group"),
    "pypi": ("proxy", "group"),
    "apt": ("proxy",),
}
INDEX_TYPES = ("HUB", "REGISTRY", "CUSTOM")
REPO_NAME = re.compile(r"^[a-zA-Z0-9\-][a-zA-Z0-9_\-.]*$")
BLOB_STORE = "default"
CACHE_MINUTES = 1440

# Paths in a body that Nexus never returns: compared by digest, never against reads.
WRITE_ONLY = (("httpClient", "authentication", "password"),)


def _docker_problems(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    kind, port = spec.get("type"), spec.get("httpPort")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        problems.append(("httpPort", f"{port!r} is not a port (allowed: 1-65535, or leave it out)"))
    if kind in ("hosted", "group") and port is None:
        problems.append(("httpPort", "hosted and group docker repos need a connector port"))
    if kind == "proxy":
        index = spec.get("indexType", "REGISTRY")
        if index not in INDEX_TYPES:
            problems.append(("indexType", f"{index!r} is not allowed (allowed: {', '.join(INDEX_TYPES)})"))
        index_url = spec.get("indexUrl")
        if index == "CUSTOM" and not index_url:
            problems.append(("indexUrl", "indexType CUSTOM needs an indexUrl"))
        if index != "CUSTOM" and index_url is not None:
            problems.append(
                ("indexUrl", "leave indexUrl out unless indexType is CUSTOM (Nexus rejects it empty)")
            )
    return problems


def _kind_problems(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems of the fields a proxy or a group needs."""
    problems: list[tuple[str, str]] = []
    if spec.get("type") == "proxy":
        url = spec.get("remoteUrl")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(("remoteUrl", f"{url!r} must be an http:// or https:// URL with a host"))
        auth = spec.get("remoteAuth")
        if auth is not None and (
            not isinstance(auth, Mapping) or not auth.get("username") or not auth.get("password")
        ):
            problems.append(("remoteAuth", "needs both username and password, or leave it out"))
    if spec.get("type") == "group":
        members = spec.get("members")
        if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
            problems.append(("members", "a group needs an ordered list of member repository names"))
        elif len(set(members)) != len(members):
            problems.append(("members", f"{members} lists a member twice"))
    return problems


def repo_problems(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, problem) for one repo spec, before anything is sent to Nexus."""
    problems: list[tuple[str, str]] = []
    name, fmt, kind = spec.get("name"), spec.get("format"), spec.get("type")
    if not isinstance(name, str) or not REPO_NAME.match(name):
        problems.append(("name", f"{name!r} is not a Nexus repository name (letters, digits, - _ .)"))
    elif fmt == "docker" and name != name.lower():
        problems.append(("name", f"{name!r}: docker repository names must be lowercase"))
    if fmt not in FORMAT_TYPES:
        problems.append(("format", f"{fmt!r} is not allowed (allowed: {', '.join(FORMAT_TYPES)})"))
        return problems
    if kind not in FORMAT_TYPES[fmt]:
        problems.append(
            ("type", f"{kind!r} is not allowed for {fmt} (allowed: {', '.join(FORMAT_TYPES[fmt])})")
        )
    problems += _kind_problems(spec)
    if fmt == "docker":
        problems += _docker_problems(spec)
    if fmt == "apt" and not spec.get("distribution"):
        problems.append(("distribution", "an apt proxy needs its distribution, e.g. trixie"))
    problems += [
        (key, 'is empty: leave it out instead (Nexus wants absence, not "")')
        for key, v in spec.items()
        if v == ""
    ]
    return problems


def fleet_problems(specs: Sequence[Mapping[str, Any]], preexisting: Sequence[str] = ()) -> list[str]:
    """Problems between repos: clashing connector ports, group members nowhere to be found."""
    problems: list[str] = []
    by_name = {s.get("name"): s for s in specs}
    ports: dict[int, str] = {}
    for spec in specs:
        port = spec.get("httpPort")
        if isinstance(port, int) and spec.get("format") == "docker":
            if port in ports:
                problems.append(f"{spec['name']}: connector port {port} is already used by {ports[port]}")
            ports.setdefault(port, spec["name"])
        for member in spec.get("members") or []:
            if member in by_name:
                if by_name[member].get("format") != spec.get("format"):
                    problems.append(
                        f"{spec['name']}: member {member} is a {by_name[member].get('format')} repo"
                    )
            elif member not in preexisting:
                problems.append(
                    f"{spec['name']}: member {member!r} is neither defined here nor listed as pre-existing"
                )
    try:
        members_first(specs)
    except graphlib.CycleError as err:
        problems.append(f"groups include each other: {' -> '.join(err.args[1])}")
    return problems


def members_first(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Repo names ordered so every group comes after the members defined alongside it."""
    names = {s["name"] for s in specs}
    graph = {s["name"]: [m for m in s.get("members") or [] if m in names] for s in specs}
    return list(graphlib.TopologicalSorter(graph).static_order())


def repo_path(spec: Mapping[str, Any]) -> str:
    return f"/v1/repositories/{spec['format']}/{spec['type']}"


def _storage(kind: str) -> dict[str, Any]:
    storage: dict[str, Any] = {"blobStoreName": BLOB_STORE, "strictContentTypeValidation": True}
    if kind == "hosted":
        storage["writePolicy"] = "allow"
    return storage


def repo_body(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The create/update body Nexus expects for a repo spec."""
    fmt, kind = spec["format"], spec["type"]
    body: dict[str, Any] = {"name": spec["name"], "online": True, "storage": _storage(kind)}
    if kind == "proxy":
        body["proxy"] = {
            "remoteUrl": spec["remoteUrl"],
            "contentMaxAge": CACHE_MINUTES,
            "metadataMaxAge": CACHE_MINUTES,
        }
        body["negativeCache"] = {"enabled": True, "timeToLive": CACHE_MINUTES}
        body["httpClient"] = {"blocked": False, "autoBlock": True}
        if auth := spec.get("remoteAuth"):
            body["httpClient"]["authentication"] = {
                "type": "username",
                "username": auth["username"],
                "password": auth["password"],
            }
    if kind == "group":
        body["group"] = {"memberNames": list(spec["members"])}
    if fmt == "docker":
        body["docker"] = {
            "v1Enabled": bool(spec.get("v1Enabled", False)),
            "forceBasicAuth": bool(spec.get("forceBasicAuth", False)),
            "httpPort": spec.get("httpPort"),
        }
        if kind == "proxy":
            body["dockerProxy"] = {"indexType": spec.get("indexType", "REGISTRY")}
            if spec.get("indexUrl"):
                body["dockerProxy"]["indexUrl"] = spec["indexUrl"]
    if fmt == "apt":
        body["apt"] = {"distribution": spec["distribution"], "flat": bool(spec.get("flat", False))}
    return body


def without_write_only(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `body` without the fields Nexus never returns."""
    stripped = copy.deepcopy(dict(body))
    for path in WRITE_ONLY:
        parent: Any = stripped
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    return stripped


def observed_view(desired: Mapping[str, Any], observed: Mapping[str, Any]) -> dict[str, Any]:
    """`observed` cut down to the keys `desired` manages, so unmanaged fields never diff."""
    view: dict[str, Any] = {}
    for key, want in desired.items():
        have = observed.get(key) if isinstance(observed, Mapping) else None
        view[key] = (
            observed_view(want, have) if isinstance(want, Mapping) and isinstance(have, Mapping) else have
        )
    return view


def drift(desired: Mapping[str, Any], observed: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths whose observed value differs from the desired one (list order counts)."""
    paths: list[str] = []
    for key, want in desired.items():
        have = observed.get(key) if isinstance(observed, Mapping) else None
        path = f"{prefix}{key}"
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            paths += drift(want, have, f"{path}.")
        elif want != have:
            paths.append(path)
    return paths


def secret_digest(salt: str, secret: str) -> str:
    """Keyed digest of a write-only secret: detects a change without storing the secret."""
    return hmac.new(salt.encode(), secret.encode(), hashlib.sha256).hexdigest()


# --- security ----------------------------------------------------------------------------


def merge_realms(active: Sequence[str], required: Sequence[str]) -> list[str]:
    """Active realms with the required ones appended in order; nobody else's realm is dropped."""
    return list(active) + [r for r in required if r not in active]


def unmerge_realms(active: Sequence[str], added: Sequence[str]) -> list[str]:
    """Active realms without the ones this program added itself."""
    return [r for r in active if r not in added]


def view_privilege(fmt: str, repo: str, action: str) -> str:
    """The repository-view privilege Nexus creates for every repo."""
    return f"nx-repository-view-{fmt}-{repo}-{action}"


def role_body(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": spec["id"],
        "name": spec.get("name") or spec["id"],
        "description": spec.get("description") or "",
        "privileges": list(spec.get("privileges") or []),
        "roles": list(spec.get("roles") or []),
    }


def user_body(spec: Mapping[str, Any], *, password: str | None = None) -> dict[str, Any]:
    """ApiCreateUser when a password is given (create), ApiUser otherwise (update)."""
    body: dict[str, Any] = {
        "userId": spec["userId"],
        "firstName": spec.get("firstName") or spec["userId"],
        "lastName": spec.get("lastName") or "service account",
        "emailAddress": spec.get("emailAddress") or f"{spec['userId']}@nexus-cutover.invalid",
        "status": "active",
        "roles": list(spec.get("roles") or []),
    }
    if password is not None:
        body["password"] = password
    else:
        body.update({"source": "default", "readOnly": False, "externalRoles": []})
    return body


USER_MANAGED = ("firstName", "lastName", "emailAddress", "status", "roles")
ROLE_MANAGED = ("name", "description", "privileges", "roles")
