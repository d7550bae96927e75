"""A k3s node's registries.yaml as data: render, parse the way k3s does, mask, plan. No I/O.

The file is rendered deterministically from the stack settings for the node's target
(`legacy` = the CT113 endpoints, `nexus` = the Nexus NodePort with the pull credentials),
so rolling a node back is setting its target to `legacy` and running `pulumi up`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

HEADER = (
    "# Managed by nexus-cutover (Pulumi), target: {target}.\n"
    "# Hand edits show up as drift in `pulumi refresh` / `pulumi preview --refresh`.\n"
)
MASK = "********"
TARGETS = ("legacy", "nexus")


class RegistriesFileError(ValueError):
    """A registries.yaml that k3s would refuse or silently misread."""


@dataclass(frozen=True)
class Parsed:
    """What k3s takes from a registries.yaml: mirrors (registry -> endpoints) and auth hosts."""

    mirrors: dict[str, list[str]]
    auth_hosts: dict[str, str]  # host:port -> username
    warnings: list[str]


def endpoint_host(endpoint: str) -> str:
    """The `configs` key k3s uses for an endpoint: its host:port."""
    return urlsplit(endpoint).netloc


def _q(value: str) -> str:
    """A double-quoted YAML scalar (JSON's string syntax is valid YAML)."""
    return json.dumps(value)


def render(
    target: str,
    legacy_endpoints: Mapping[str, str],
    nexus_endpoint: str,
    pull_user: str,
    pull_password: str,
) -> str:
    """The registries.yaml for `target`, byte-identical for identical settings. Every
    scalar is quoted, as in the runbook, so no YAML reader can take "host:port" for
    anything but a string."""
    if target not in TARGETS:
        raise RegistriesFileError(f"target {target!r} is not one of {', '.join(TARGETS)}")
    lines = [HEADER.format(target=target).rstrip("\n"), "mirrors:"]
    for registry in sorted(legacy_endpoints):
        endpoint = legacy_endpoints[registry] if target == "legacy" else nexus_endpoint
        lines += [f"  {_q(registry)}:", "    endpoint:", f"      - {_q(endpoint)}"]
    if target == "nexus":
        lines += [
            "configs:",
            f"  {_q(endpoint_host(nexus_endpoint))}:",
            "    auth:",
            f"      username: {_q(pull_user)}",
            f"      password: {_q(pull_password)}",
        ]
    return "\n".join(lines) + "\n"


def parse_like_k3s(text: str) -> Parsed:
    """Read registries.yaml as k3s does. Invalid YAML is fatal for k3s (the unit fails and
    systemd loops), so it raises; a malformed endpoint is only a warning there and the
    mirror is silently skipped, so it is reported as a warning to be treated as an error."""
    try:
        document = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        raise RegistriesFileError(f"not valid YAML, k3s would fail to start: {err}") from err
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise RegistriesFileError("the top level must be a mapping with mirrors/configs")
    mirrors: dict[str, list[str]] = {}
    warnings: list[str] = []
    for registry, entry in (document.get("mirrors") or {}).items():
        endpoints = (entry or {}).get("endpoint") or []
        kept = []
        for endpoint in endpoints:
            parts = urlsplit(str(endpoint))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                warnings.append(f"mirrors.{registry}: endpoint {endpoint!r} is not a URL; k3s skips it")
            else:
                kept.append(str(endpoint))
        mirrors[str(registry)] = kept
    auth_hosts = {
        str(host): str(((entry or {}).get("auth") or {}).get("username", ""))
        for host, entry in (document.get("configs") or {}).items()
    }
    return Parsed(mirrors, auth_hosts, warnings)


def same_effect(a: str, b: str) -> bool:
    """Whether two files give k3s the same mirrors and the same credentials."""
    try:
        return _effective(a) == _effective(b)
    except yaml.YAMLError:
        return False


def _effective(text: str) -> Any:
    document = yaml.safe_load(text) or {}
    mirrors = {r: list((e or {}).get("endpoint") or []) for r, e in (document.get("mirrors") or {}).items()}
    return mirrors, document.get("configs") or {}


_PASSWORD_LINE = re.compile(r"^(\s*password:\s*).*$", re.MULTILINE)


def masked(text: str) -> str:
    """`text` with every password value replaced, for previews, logs and state."""
    return _PASSWORD_LINE.sub(lambda m: m.group(1) + MASK, text)


def masked_diff(old: str | None, new: str, path: str) -> str:
    """Unified diff of two registries.yaml files with passwords masked."""
    before = masked(old).splitlines(keepends=True) if old is not None else []
    after = masked(new).splitlines(keepends=True)
    label = path if old is not None else "/dev/null"
    return "".join(difflib.unified_diff(before, after, f"{label} (on the node)", f"{path} (new)"))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def changing_nodes(previous: Mapping[str, str], wanted: Sequence[tuple[str, str]]) -> list[str]:
    """Names of the nodes whose target changes. A node never applied starts on `legacy`:
    that is where the runbook starts every node."""
    return [name for name, target in wanted if previous.get(name, "legacy") != target]


def guard_problem(changing: Sequence[str], allowed: int) -> str | None:
    """The canary rule: at most `allowed` nodes change target in one `pulumi up`."""
    if len(changing) <= allowed:
        return None
    return (
        f"{len(changing)} nodes would change target in this update ({', '.join(changing)}), "
        f"but nexus-cutover:maxNodeChangesPerUp is {allowed}: change one node at a time "
        f"(canary first), or raise maxNodeChangesPerUp for an emergency rollback"
    )
