"""Stack settings: read once, validated as a whole before any resource is registered.

Pure: `parse_settings` takes plain values (what `pulumi.Config` holds) and either returns
typed settings or raises `SettingsError` listing every problem, each naming the key and
what is allowed. Secrets are not read here: they stay Pulumi secret Outputs.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from providers.nexus import model as nexus_model

PROJECT = "nexus-cutover"

# Values the runbook does not state are written as "<FILL: what to put here>" in
# Pulumi.prod.yaml; a preview with one left over must stop and name the key.
PLACEHOLDER = re.compile(r"^\s*<FILL\b", re.IGNORECASE)

STAGES = {
    1: "repos: Nexus docker repos, security and the Step 1 check",
    2: "exposure: NodePort 30083 -> docker-group 8083",
    3: "nodes: registries.yaml of every node on the Nexus mirror",
    4: "buildcache: topology repointed to docker-internal",
    5: "retired: legacy cache CT113 retirement guard",
}

# Each stage's resources exist only from that stage on and depend on the previous stage's checks.
EXPOSURE_STAGE, NODES_STAGE, BUILD_CACHE_STAGE, RETIRED_STAGE = 2, 3, 4, 5
ROLES_TO_UNITS = {"server": "k3s", "agent": "k3s-agent"}
TARGETS = ("legacy", "nexus")
HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
NODE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

DEFAULT_LEGACY_ENDPOINTS = {
    "docker.io": "http://10.10.10.150:5000",
    "ghcr.io": "http://10.10.10.150:5002",
}


# The runbook's repos (ops/nexus/repos.json): group members in the runbook's order.
DEFAULT_REPOS: tuple[dict[str, Any], ...] = (
    {
        "name": "docker-dockerhub",
        "format": "docker",
        "type": "proxy",
        "remoteUrl": "https://registry-1.docker.io",
        "indexType": "HUB",
    },
    {
        "name": "docker-ghcr",
        "format": "docker",
        "type": "proxy",
        "remoteUrl": "https://ghcr.io",
        "indexType": "REGISTRY",
    },
    {"name": "docker-internal", "format": "docker", "type": "hosted", "httpPort": 8082},
    {
        "name": "docker-group",
        "format": "docker",
        "type": "group",
        "httpPort": 8083,
        "members": ["docker-internal", "docker-dockerhub", "docker-ghcr"],
    },
    # The runbook's "later" bullets: pip and apt caches move to the same Nexus.
    {"name": "pypi-proxy", "format": "pypi", "type": "proxy", "remoteUrl": "https://pypi.org"},
    {"name": "pypi-group", "format": "pypi", "type": "group", "members": ["pypi-proxy"]},
    {
        "name": "apt-debian",
        "format": "apt",
        "type": "proxy",
        "remoteUrl": "http://deb.debian.org/debian",
        "distribution": "trixie",
    },
    # Only when some image pulls from Ubuntu mirrors: `repos: {apt-ubuntu: {enabled: true}}`.
    {
        "name": "apt-ubuntu",
        "format": "apt",
        "type": "proxy",
        "remoteUrl": "http://archive.ubuntu.com/ubuntu",
        "distribution": "noble",
        "enabled": False,
    },
)
REPO_OPTIONS = ("adopt", "deleteAdopted", "enabled")


class SettingsError(ValueError):
    """Every problem found in the stack settings, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the stack settings have {len(problems)} problem(s); nothing was applied:\n{lines}")


@dataclass(frozen=True)
class NodeTimeouts:
    """Seconds allowed for each remote step on a node."""

    connect: float = 10.0
    command: float = 30.0
    restart: float = 120.0
    pull: float = 120.0


@dataclass(frozen=True)
class Node:
    name: str
    vmid: int
    host: str
    port: int
    user: str
    host_key: str
    role: str
    target: str
    registries_path: str = "/etc/rancher/k3s/registries.yaml"
    timeouts: NodeTimeouts = field(default_factory=NodeTimeouts)

    @property
    def unit(self) -> str:
        return ROLES_TO_UNITS[self.role]


@dataclass(frozen=True)
class Mirror:
    nexus_endpoint: str = "http://127.0.0.1:30083"
    pull_user: str = "shim-puller"
    legacy_endpoints: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LEGACY_ENDPOINTS))
    verify_image: str = "docker.io/library/busybox:latest"


@dataclass(frozen=True)
class Repo:
    spec: Mapping[str, Any]
    adopt: bool = False
    delete_adopted: bool = False

    @property
    def name(self) -> str:
        return self.spec["name"]


@dataclass(frozen=True)
class Exposure:
    """Step 2: the docker connectors reachable in the cluster and on every node."""

    namespace: str = "nexus"
    # The connectors' in-cluster Service (8082 for the build cache, 8083), owned by this
    # program; the platform's own `nexus` Service (8081) is left alone.
    connector_service: str = "nexus-docker"
    node_port_service: str = "nexus-docker-group-nodeport"
    selector: Mapping[str, str] = field(default_factory=lambda: {"app": "nexus"})
    node_port: int = 30083
    kubeconfig: str = ""  # empty: the ambient kubeconfig
    render_dir: str = ""  # set: write manifests there instead of talking to a cluster
    skip_await: bool = False  # don't wait for the Services' endpoints (no controllers)


@dataclass(frozen=True)
class Topology:
    """Step 4: values repointed in the human-written topology file."""

    path: str = ""
    edits: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Retirement:
    """Step 5: where legacy references must be gone before CT113 may be retired."""

    scan_paths: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    stage: int
    nexus_url: str
    nexus_admin_user: str
    nexus_ca_bundle: str
    accept_nexus_eula: bool
    http_timeout: float
    docker_group_url: str
    nodes: tuple[Node, ...]
    mirror: Mirror
    max_node_changes_per_up: int
    repos: tuple[Repo, ...] = ()
    pull_repo: str = "docker-group"
    push_repo: str = "docker-internal"
    push_user: str = "fractalops-ci"
    check_image: str = "library/busybox:latest"
    ssh_identity_file: str = ""
    exposure: Exposure = field(default_factory=Exposure)
    topology: Topology = field(default_factory=Topology)
    retirement: Retirement = field(default_factory=Retirement)

    def repo(self, name: str) -> Repo:
        return next(r for r in self.repos if r.name == name)


class _Problems:
    """Collects problems so the operator sees all of them in one preview."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, problem: str) -> None:
        self.items.append(f"{PROJECT}:{key}: {problem}")


def find_placeholders(value: Any, key: str) -> list[str]:
    """Keys (with list indices) whose value is still a <FILL: ...> placeholder."""
    if isinstance(value, str):
        return [key] if PLACEHOLDER.match(value) else []
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in find_placeholders(v, f"{key}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in find_placeholders(v, f"{key}[{i}]")]
    return []


def url_problem(url: Any, *, allow_path: bool) -> str | None:
    """Why `url` is not an absolute http(s) URL (None when it is)."""
    if not isinstance(url, str) or not url.strip():
        return "must be a non-empty http:// or https:// URL"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"{url!r} must start with http:// or https://"
    if not parts.hostname:
        return f"{url!r} has no host"
    try:
        parts.port  # noqa: B018 - raises on a port outside 0-65535 or not a number
    except ValueError:
        return f"{url!r} has an invalid port (allowed: 1-65535)"
    if not allow_path and parts.path not in ("", "/"):
        return f"{url!r} must be scheme://host:port without a path (k3s keys endpoints by host)"
    if parts.query or parts.fragment:
        return f"{url!r} must not carry a query or fragment"
    return None


def host_key_problem(key: Any) -> str | None:
    """Why `key` is not an OpenSSH public key line "TYPE BASE64" (None when it is)."""
    if not isinstance(key, str) or len(key.split()) < 2:
        return 'must be the node\'s SSH host public key, "ssh-ed25519 AAAA..." (ssh-keyscan)'
    kind, blob = key.split()[:2]
    if kind not in HOST_KEY_TYPES:
        return f"key type {kind!r} is not one of {', '.join(HOST_KEY_TYPES)}"
    try:
        decoded = base64.b64decode(blob, validate=True)
    except binascii.Error:
        return "the key is not valid base64"
    # The blob starts with its own type as an SSH string: a truncated paste fails here.
    if len(decoded) < 4 + len(kind) or decoded[4 : 4 + len(kind)] != kind.encode():
        return f"the key blob does not encode a {kind} key (truncated or mixed up?)"
    return None


def _positive_number(problems: _Problems, key: str, value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        problems.add(key, f"{value!r} must be a number of seconds greater than 0")
        return default
    return float(value)


def _int_in_range(problems: _Problems, key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.add(key, f"{value!r} is not allowed (allowed: a whole number {low}-{high})")
        return low
    return value


def _text(problems: _Problems, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.add(key, "must be a non-empty string")
        return ""
    return value


def _parse_node(problems: _Problems, index: int, raw: Any) -> Node | None:
    key = f"nodes[{index}]"
    if not isinstance(raw, Mapping):
        problems.add(key, "each node must be an object with name, id, host, hostKey, role, target")
        return None
    known = {"name", "id", "host", "port", "user", "hostKey", "role", "target"}
    known |= {"registriesPath", "timeouts"}
    for extra in sorted(set(raw) - known):
        problems.add(f"{key}.{extra}", f"unknown key (allowed: {', '.join(sorted(known))})")
    name = _text(problems, f"{key}.name", raw.get("name"))
    if name and not NODE_NAME.match(name):
        problems.add(f"{key}.name", f"{name!r} must be a lowercase host name (a-z, 0-9, -)")
    role = raw.get("role")
    if role not in ROLES_TO_UNITS:
        problems.add(f"{key}.role", f"{role!r} is not allowed (allowed: server -> k3s, agent -> k3s-agent)")
    target = raw.get("target")
    if target not in TARGETS:
        problems.add(f"{key}.target", f"{target!r} is not allowed (allowed: legacy, nexus)")
    if problem := host_key_problem(raw.get("hostKey")):
        problems.add(f"{key}.hostKey", problem)
    path = raw.get("registriesPath", Node.registries_path)
    if not isinstance(path, str) or not path.startswith("/"):
        problems.add(f"{key}.registriesPath", f"{path!r} must be an absolute path")
    timeouts_raw = raw.get("timeouts") or {}
    if not isinstance(timeouts_raw, Mapping):
        problems.add(f"{key}.timeouts", "must be an object of seconds per step")
        timeouts_raw = {}
    defaults = NodeTimeouts()
    for extra in sorted(set(timeouts_raw) - {"connect", "command", "restart", "pull"}):
        problems.add(f"{key}.timeouts.{extra}", "unknown step (allowed: connect, command, restart, pull)")
    timeouts = NodeTimeouts(
        **{
            step: _positive_number(
                problems, f"{key}.timeouts.{step}", timeouts_raw.get(step), getattr(defaults, step)
            )
            for step in ("connect", "command", "restart", "pull")
        }
    )
    return Node(
        name=name,
        vmid=_int_in_range(problems, f"{key}.id", raw.get("id"), 1, 999_999_999),
        host=_text(problems, f"{key}.host", raw.get("host")),
        port=_int_in_range(problems, f"{key}.port", raw.get("port", 22), 1, 65535),
        user=_text(problems, f"{key}.user", raw.get("user", "root")),
        host_key=raw.get("hostKey") or "",
        role=role if role in ROLES_TO_UNITS else "agent",
        target=target if target in TARGETS else "legacy",
        registries_path=path if isinstance(path, str) else Node.registries_path,
        timeouts=timeouts,
    )


def _parse_nodes(problems: _Problems, raw: Any, stage: int) -> tuple[Node, ...]:
    if raw is None or raw == []:
        if stage >= NODES_STAGE:
            problems.add("nodes", f"must list the k3s nodes in cutover order (stage {stage} changes them)")
        return ()
    if not isinstance(raw, list):
        problems.add("nodes", "must be a list of nodes in cutover order")
        return ()
    nodes = [n for i, r in enumerate(raw) if (n := _parse_node(problems, i, r)) is not None]
    seen_names: dict[str, int] = {}
    seen_addresses: dict[tuple[str, int], str] = {}
    seen_ids: dict[int, str] = {}
    for i, node in enumerate(nodes):
        if node.name in seen_names:
            problems.add(f"nodes[{i}].name", f"{node.name!r} is already nodes[{seen_names[node.name]}]")
        seen_names.setdefault(node.name, i)
        address = (node.host, node.port)
        if node.host and address in seen_addresses:
            problems.add(
                f"nodes[{i}].host",
                f"{node.host}:{node.port} is already node {seen_addresses[address]!r}",
            )
        seen_addresses.setdefault(address, node.name)
        if node.vmid in seen_ids:
            problems.add(f"nodes[{i}].id", f"{node.vmid} is already node {seen_ids[node.vmid]!r}")
        seen_ids.setdefault(node.vmid, node.name)
    return tuple(nodes)


def _parse_mirror(problems: _Problems, raw: Any) -> Mirror:
    if raw is None:
        return Mirror()
    if not isinstance(raw, Mapping):
        problems.add("mirror", "must be an object (nexusEndpoint, pullUser, legacyEndpoints, verifyImage)")
        return Mirror()
    known = {"nexusEndpoint", "pullUser", "legacyEndpoints", "verifyImage"}
    for extra in sorted(set(raw) - known):
        problems.add(f"mirror.{extra}", f"unknown key (allowed: {', '.join(sorted(known))})")
    defaults = Mirror()
    endpoint = raw.get("nexusEndpoint", defaults.nexus_endpoint)
    if problem := url_problem(endpoint, allow_path=False):
        problems.add("mirror.nexusEndpoint", problem)
    legacy = raw.get("legacyEndpoints", defaults.legacy_endpoints)
    if not isinstance(legacy, Mapping) or not legacy:
        problems.add("mirror.legacyEndpoints", "must map each registry (docker.io, ghcr.io) to a URL")
        legacy = defaults.legacy_endpoints
    for registry, url in legacy.items():
        if problem := url_problem(url, allow_path=False):
            problems.add(f"mirror.legacyEndpoints.{registry}", problem)
    image = raw.get("verifyImage", defaults.verify_image)
    registry = image.split("/", 1)[0] if isinstance(image, str) else ""
    if not isinstance(image, str) or registry not in legacy:
        problems.add(
            "mirror.verifyImage",
            f"{image!r} must be a fully qualified reference on a mirrored registry "
            f"({', '.join(sorted(legacy))}), e.g. docker.io/library/busybox:latest",
        )
    return Mirror(
        nexus_endpoint=endpoint,
        pull_user=_text(problems, "mirror.pullUser", raw.get("pullUser", defaults.pull_user)),
        legacy_endpoints=dict(legacy),
        verify_image=image if isinstance(image, str) else defaults.verify_image,
    )


NODE_PORT_RANGE = (30000, 32767)
BUILD_CACHE_PATH = "fractalops/buildcache"
LEGACY_NAMES = ("CT113",)


def _parse_exposure(problems: _Problems, raw: Any, repos: tuple[Repo, ...]) -> Exposure:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.add("exposure", "must be an object (namespace, connectorService, selector, nodePort, ...)")
        return Exposure()
    known = {"namespace", "connectorService", "nodePortService", "selector", "nodePort", "kubeconfig"}
    known |= {"renderDir", "skipAwait"}
    for extra in sorted(set(raw) - known):
        problems.add(f"exposure.{extra}", f"unknown key (allowed: {', '.join(sorted(known))})")
    default = Exposure()
    node_port = _int_in_range(
        problems, "exposure.nodePort", raw.get("nodePort", default.node_port), *NODE_PORT_RANGE
    )
    connector_ports = {r.spec.get("httpPort") for r in repos if r.spec.get("format") == "docker"}
    if node_port in connector_ports:
        problems.add(
            "exposure.nodePort", f"{node_port} is also a connector port: NodePort and pod ports must differ"
        )
    selector = raw.get("selector", default.selector)
    if (
        not isinstance(selector, Mapping)
        or not selector
        or not all(isinstance(v, str) for v in selector.values())
    ):
        problems.add("exposure.selector", "must map pod labels to values, e.g. {app: nexus}")
        selector = default.selector
    return Exposure(
        namespace=_text(problems, "exposure.namespace", raw.get("namespace", default.namespace)),
        connector_service=_text(
            problems, "exposure.connectorService", raw.get("connectorService", default.connector_service)
        ),
        node_port_service=_text(
            problems, "exposure.nodePortService", raw.get("nodePortService", default.node_port_service)
        ),
        selector=dict(selector),
        node_port=node_port,
        kubeconfig=raw.get("kubeconfig") or "",
        render_dir=raw.get("renderDir") or "",
        skip_await=raw.get("skipAwait") is True,
    )


def _parse_topology(problems: _Problems, raw: Any, stage: int, build_cache: str) -> Topology:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.add("topology", "must be an object with path and edits")
        return Topology()
    path = raw.get("path") or ""
    if stage >= BUILD_CACHE_STAGE and not (isinstance(path, str) and path.startswith("/")):
        problems.add(
            "topology.path",
            f"{path!r} must be the absolute path of the topology file (stage {stage} edits it)",
        )
    edits = {"registry_cache.buildcache_ref": build_cache, **(raw.get("edits") or {})}
    for key, value in edits.items():
        if not isinstance(value, str | int | bool) or value == "":
            problems.add(f"topology.edits.{key}", f"{value!r} must be a non-empty string, number or boolean")
    return Topology(path=path if isinstance(path, str) else "", edits=edits)


def _parse_retirement(problems: _Problems, raw: Any, topology: Topology, mirror: Mirror) -> Retirement:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.add("retirement", "must be an object with scanPaths")
        return Retirement()
    paths = raw.get("scanPaths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
        problems.add("retirement.scanPaths", "must be a list of absolute file or folder paths")
        paths = []
    if topology.path:
        paths = [topology.path, *paths]
    # The legacy host, its endpoints and the container's name: none may be left anywhere.
    hosts = {urlsplit(url).hostname or "" for url in mirror.legacy_endpoints.values()}
    patterns = tuple(sorted(hosts - {""})) + LEGACY_NAMES
    return Retirement(scan_paths=tuple(dict.fromkeys(paths)), patterns=patterns)


def _parse_repos(problems: _Problems, raw: Any, preexisting: Any) -> tuple[Repo, ...]:
    """The runbook's repos with the stack's overrides: by name, `enabled: false` drops one."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.add("repos", "must map repository names to settings (e.g. docker-ghcr: {adopt: true})")
        raw = {}
    if not isinstance(preexisting, list) or not all(isinstance(p, str) for p in preexisting):
        problems.add("preexistingRepos", "must be a list of repository names")
        preexisting = []
    merged: dict[str, dict[str, Any]] = {r["name"]: dict(r) for r in DEFAULT_REPOS}
    for name, override in raw.items():
        if not isinstance(override, Mapping):
            problems.add(f"repos.{name}", "must be an object of repository settings")
            continue
        merged[name] = {**merged.get(name, {}), **override, "name": name}
    repos = []
    for name, entry in merged.items():
        if entry.get("enabled", True) is False:
            continue
        spec = {k: v for k, v in entry.items() if k not in REPO_OPTIONS}
        for field_name, problem in nexus_model.repo_problems(spec):
            problems.add(f"repos.{name}.{field_name}", problem)
        repos.append(Repo(spec, entry.get("adopt") is True, entry.get("deleteAdopted") is True))
    for problem in nexus_model.fleet_problems([r.spec for r in repos], preexisting):
        problems.add("repos", problem)
    return tuple(repos)


def _repo_of_type(problems: _Problems, key: str, name: Any, repos: tuple[Repo, ...], kind: str) -> str:
    found = next((r for r in repos if r.name == name), None)
    if found is None or found.spec.get("format") != "docker" or found.spec.get("type") != kind:
        problems.add(key, f"{name!r} must name a docker {kind} repo defined in repos")
    return name if isinstance(name, str) else ""


def parse_settings(values: Mapping[str, Any]) -> Settings:
    """Typed settings from the stack's plain config values (key without the project prefix)."""
    problems = _Problems()
    # Placeholders first and alone: the other checks would only repeat them less clearly.
    for key in [k for name, value in values.items() for k in find_placeholders(value, name)]:
        problems.add(key, "still a <FILL: ...> placeholder: put the real value in the stack file")
    if problems.items:
        raise SettingsError(problems.items)
    stage = _int_in_range(problems, "stage", values.get("stage", 1), 1, 5)
    nexus_url = values.get("nexusUrl")
    if problem := url_problem(nexus_url, allow_path=True):
        problems.add("nexusUrl", problem)
    group_url = values.get("dockerGroupUrl")
    if problem := url_problem(group_url, allow_path=False):
        problems.add("dockerGroupUrl", problem)
    max_changes = _int_in_range(
        problems, "maxNodeChangesPerUp", values.get("maxNodeChangesPerUp", 1), 1, 1000
    )
    repos = _parse_repos(problems, values.get("repos"), values.get("preexistingRepos", []))
    push_repo = _repo_of_type(
        problems, "pushRepo", values.get("pushRepo", "docker-internal"), repos, "hosted"
    )
    exposure = _parse_exposure(problems, values.get("exposure"), repos)
    # The push repo through the connector Service, as CI reaches it in the cluster.
    push_port = next((r.spec.get("httpPort") for r in repos if r.name == push_repo), None)
    service_host = f"{exposure.connector_service}.{exposure.namespace}.svc"
    build_cache = f"{service_host}:{push_port}/{BUILD_CACHE_PATH}"
    topology = _parse_topology(problems, values.get("topology"), stage, build_cache)
    mirror = _parse_mirror(problems, values.get("mirror"))
    check_image = values.get("checkImage", "library/busybox:latest")
    if not isinstance(check_image, str) or ":" not in check_image or "://" in check_image:
        problems.add("checkImage", f"{check_image!r} must be repository:tag, e.g. library/busybox:latest")
    settings = Settings(
        stage=stage,
        nexus_url=nexus_url if isinstance(nexus_url, str) else "",
        nexus_admin_user=_text(problems, "nexusAdminUser", values.get("nexusAdminUser", "admin")),
        nexus_ca_bundle=values.get("nexusCaBundle") or "",
        accept_nexus_eula=values.get("acceptNexusEula") is True,
        http_timeout=_positive_number(problems, "httpTimeoutSeconds", values.get("httpTimeoutSeconds"), 30.0),
        docker_group_url=group_url if isinstance(group_url, str) else "",
        nodes=_parse_nodes(problems, values.get("nodes"), stage),
        mirror=mirror,
        max_node_changes_per_up=max_changes,
        repos=repos,
        pull_repo=_repo_of_type(problems, "pullRepo", values.get("pullRepo", "docker-group"), repos, "group"),
        push_repo=push_repo,
        push_user=_text(problems, "pushUser", values.get("pushUser", "fractalops-ci")),
        check_image=check_image if isinstance(check_image, str) else "",
        ssh_identity_file=values.get("sshIdentityFile") or "",
        exposure=exposure,
        topology=topology,
        retirement=_parse_retirement(problems, values.get("retirement"), topology, mirror),
    )
    if stage >= RETIRED_STAGE:
        for node in settings.nodes:
            if node.target != "nexus":
                problems.add(
                    "stage",
                    f"{stage} retires the legacy cache, but node {node.name} still targets {node.target}: "
                    "move every node to nexus (stage 3) first",
                )
    if problems.items:
        raise SettingsError(problems.items)
    return settings


# Every key this program reads, with how pulumi.Config should decode it.
CONFIG_KEYS = {
    "stage": "int",
    "nexusUrl": "str",
    "nexusAdminUser": "str",
    "nexusCaBundle": "str",
    "acceptNexusEula": "bool",
    "httpTimeoutSeconds": "int",
    "dockerGroupUrl": "str",
    "nodes": "object",
    "mirror": "object",
    "maxNodeChangesPerUp": "int",
    "repos": "object",
    "preexistingRepos": "object",
    "pullRepo": "str",
    "pushRepo": "str",
    "pushUser": "str",
    "checkImage": "str",
    "sshIdentityFile": "str",
    "exposure": "object",
    "topology": "object",
    "retirement": "object",
}
SECRET_KEYS = ("nexusAdminPassword", "pullPassword", "pushPassword")


def unknown_keys(config_keys: list[str]) -> list[str]:
    """Problems for keys of this project that nothing reads (typos such as nexusURL)."""
    allowed = set(CONFIG_KEYS) | set(SECRET_KEYS)
    prefix = f"{PROJECT}:"
    return [
        f"{key}: unknown setting (allowed: {', '.join(sorted(allowed))})"
        for key in sorted(config_keys)
        if key.startswith(prefix) and key[len(prefix) :] not in allowed
    ]


def read_stack_settings() -> Settings:
    """The running stack's settings. Raises SettingsError before anything is registered."""
    import pulumi  # noqa: PLC0415 - keeps the pure part above importable without an engine
    import pulumi.runtime.config as runtime_config  # noqa: PLC0415

    if problems := unknown_keys(list(runtime_config.CONFIG.get())):
        raise SettingsError(problems)
    config = pulumi.Config(PROJECT)
    readers = {
        "int": config.get_int,
        "str": config.get,
        "bool": config.get_bool,
        "object": config.get_object,
    }
    values = {key: readers[kind](key) for key, kind in CONFIG_KEYS.items()}
    return parse_settings({k: v for k, v in values.items() if v is not None})


def read_stack_secrets() -> dict[str, Any]:
    """The stack's secrets as Pulumi secret Outputs (never plain values in the program)."""
    import pulumi  # noqa: PLC0415
    import pulumi.runtime.config as runtime_config  # noqa: PLC0415

    # Only looked at for emptiness here; the values themselves stay secret Outputs.
    missing = [
        key for key in SECRET_KEYS if not (runtime_config.get_config(f"{PROJECT}:{key}") or "").strip()
    ]
    if missing:
        raise SettingsError(
            [
                f"{PROJECT}:{key}: is not set or empty: pulumi config set --secret {PROJECT}:{key}"
                for key in missing
            ]
        )
    config = pulumi.Config(PROJECT)
    return {key: config.require_secret(key) for key in SECRET_KEYS}
