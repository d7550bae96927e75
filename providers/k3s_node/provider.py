"""A node's registries.yaml as a Pulumi dynamic provider (runbook Step 3), over SSH.

A change is: pre-flight (the new file parses as k3s parses it; the target mirror answers
from the node and accepts the credentials) -> backup -> atomic write -> restart the unit
-> wait until k3s is back -> verify a fresh pull that the mirror itself served. Any
failure after the write restores the previous file byte for byte, restarts, confirms the
node is back, and fails with the node, the step and the evidence.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

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
from providers.k3s_node import model
from providers.k3s_node.ssh import NodeError, NodeSession
from providers.nexus.model import secret_digest
from providers.registry import Fetch, RegistryCheckError, login, manifest

ORIGINAL_SUFFIX = ".nexus-cutover.original"
ABSENT_MARKER = ".nexus-cutover.absent"
PENDING_SUFFIX = ".nexus-cutover.pending"
POLL_SECONDS = 0.5


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _now() -> datetime:
    return datetime.now(UTC)


# --- steps on one node ----------------------------------------------------------------------


def image_parts(image: str) -> tuple[str, str, str]:
    """("docker.io", "library/busybox", "latest") from "docker.io/library/busybox:latest"."""
    registry, _, rest = image.partition("/")
    repository, _, tag = rest.rpartition(":")
    return registry, repository, tag


def node_fetch(session: NodeSession, step: str) -> Fetch:
    """Registry requests as the node itself makes them (through a channel its sshd opens)."""

    def fetch(what: str, url: str, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise NodeError(
                session.name, step, f"{what}: only http:// mirrors can be probed from the node ({url})"
            )
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return session.http_get(parts.hostname or "", parts.port or 80, path, headers, step)

    return fetch


def _login(
    session: NodeSession, step: str, endpoint: str, repository: str, credentials: Mapping[str, Any] | None
) -> dict[str, str]:
    """Headers that authorize pulls from `endpoint` as the node would send them, logging in
    when `credentials` are given; without them the mirror only has to answer /v2/."""
    fetch = node_fetch(session, step)
    try:
        if credentials:
            return login(
                fetch, endpoint, repository, "pull", credentials["username"], credentials["password"]
            )[2]
        status, _, _ = fetch("ping the mirror", f"{endpoint}/v2/", {})
    except RegistryCheckError as err:
        raise NodeError(session.name, step, f"{endpoint}: {err}") from None
    if status not in (200, 401):
        raise NodeError(
            session.name, step, f"{endpoint}/v2/ answered {status} from the node (want 200 or 401)"
        )
    return {}


def _credentials_for(endpoint: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pull credentials when the new file gives this endpoint some (as k3s would)."""
    probe = props.get("probe") or {}
    auth_hosts = model.parse_like_k3s(props["content"]).auth_hosts
    return probe if probe.get("username") and model.endpoint_host(endpoint) in auth_hosts else None


def preflight(session: NodeSession, props: Mapping[str, Any]) -> None:
    """Before anything is touched: the file is one k3s reads as meant, and every mirror it
    names answers from the node itself and accepts the credentials in the file."""
    try:
        parsed = model.parse_like_k3s(props["content"])
    except model.RegistriesFileError as err:
        raise NodeError(session.name, "pre-flight", f"the new registries.yaml is refused: {err}") from None
    if parsed.warnings:
        raise NodeError(
            session.name, "pre-flight", "k3s would silently drop mirrors: " + "; ".join(parsed.warnings)
        )
    _, repository, _ = image_parts(props["verifyImage"])
    for endpoint in sorted({e for endpoints in parsed.mirrors.values() for e in endpoints}):
        _login(session, "pre-flight", endpoint, repository, _credentials_for(endpoint, props))


def restart_and_wait(session: NodeSession, unit: str) -> None:
    """Restart the k3s unit and wait until it is active (and Ready, on servers)."""
    restarted = session.run("restart", ["systemctl", "restart", unit], timeout_step="restart")
    if restarted.status != 0:
        detail = restarted.stderr.strip()[-500:]
        raise NodeError(
            session.name, "restart", f"systemctl restart {unit} exited {restarted.status}: {detail}"
        )
    deadline = time.monotonic() + float(session.timeouts.get("restart", 120))
    while True:
        active = session.run("wait for k3s", ["systemctl", "is-active", unit])
        if active.stdout.strip() == "active":
            break
        if time.monotonic() > deadline:
            raise NodeError(
                session.name, "wait for k3s", f"{unit} is {active.stdout.strip() or 'not active'}"
            )
        time.sleep(POLL_SECONDS)
    if unit == "k3s":  # only servers hold a kubeconfig to ask for the node's condition
        while True:
            ready = session.run(
                "wait for Ready", ["k3s", "kubectl", "get", "node", session.name, "--no-headers"]
            )
            if ready.status == 0 and " Ready" in f" {ready.stdout}":
                return
            if time.monotonic() > deadline:
                raise NodeError(session.name, "wait for Ready", ready.stdout.strip() or ready.stderr.strip())
            time.sleep(POLL_SECONDS)


def fresh_pull(session: NodeSession, image: str) -> str:
    """crictl pull of `image` after removing it; returns the digest containerd resolved."""
    session.run("verify", ["crictl", "rmi", image])  # may not be there: a fresh pull either way
    pulled = session.run("verify", ["crictl", "pull", image], timeout_step="pull")
    if pulled.status != 0:
        detail = (pulled.stderr or pulled.stdout).strip()[-500:]
        raise NodeError(session.name, "verify", f"crictl pull {image} failed: {detail}")
    return _digest(session.run("verify", ["crictl", "inspecti", "-o", "json", image]).stdout)


def verify_pull(session: NodeSession, props: Mapping[str, Any]) -> dict[str, str]:
    """A fresh pull of the verify image works, and the evidence shows the mirror served it.

    containerd silently falls back to the upstream registry when a mirror fails, so a pull
    that works proves nothing by itself. Evidence: (1) asked from the node, the mirror
    serves the very manifest digest containerd pulled; (2) on Nexus, canary images that
    exist only in Nexus (pushed in Step 1) pull through every mirrored registry name: the
    upstream registries cannot have served them.
    """
    image = props["verifyImage"]
    registry, repository, tag = image_parts(image)
    digest = fresh_pull(session, image)
    endpoint = model.parse_like_k3s(props["content"]).mirrors.get(registry, [None])[0]
    if endpoint is None:
        raise NodeError(session.name, "verify", f"the new file mirrors no {registry}: nothing to verify")
    headers = _login(session, "verify", endpoint, repository, _credentials_for(endpoint, props))
    try:
        served, _ = manifest(
            node_fetch(session, "verify"), endpoint, repository, tag, headers, f"?ns={registry}"
        )
    except RegistryCheckError as err:
        raise NodeError(session.name, "verify", f"the mirror does not serve {image}: {err}") from None
    if digest and served != digest:
        raise NodeError(
            session.name,
            "verify",
            f"containerd pulled {image} as {digest}, but the mirror {endpoint} serves {served}: the pull "
            "came from the upstream registry (containerd's fallback), not from the mirror",
        )
    for canary in props.get("canaries") or []:
        try:
            fresh_pull(session, canary)
        except NodeError as err:
            raise NodeError(
                session.name,
                "verify",
                f"{canary} exists only in Nexus, yet the node could not pull it ({err}): its mirror "
                "does not serve it, so other pulls only worked through containerd's fallback",
            ) from None
    evidence = f"{endpoint} serves {served[:19]}…, the digest the node pulled"
    if props.get("canaries"):
        evidence += f"; Nexus-only canaries pulled: {len(props['canaries'])}"
    return {"verifiedDigest": digest or served, "servedBy": evidence}


def _digest(inspect_json: str) -> str:
    try:
        status = json.loads(inspect_json).get("status", {})
        return next(iter(status.get("repoDigests") or []), "").rpartition("@")[2]
    except (ValueError, AttributeError):
        return ""


def _backup_path(path: str) -> str:
    return f"{path}.nexus-cutover.{_now().strftime('%Y%m%dT%H%M%SZ')}.bak"


def last_good(session: NodeSession, path: str) -> tuple[str | None, str]:
    """The file to fall back on, and its backup's path. Normally the current file; after a
    change that was cut off (pulumi killed), the backup its pending marker names, because
    the current file may be the new one, never verified."""
    marker = session.read_file(path + PENDING_SUFFIX)
    if marker is None:
        return session.read_file(path), ""
    backup = marker.strip()
    return (session.read_file(backup) if backup else None), backup


def apply_change(props: Mapping[str, Any], session_factory: Callable[[], NodeSession]) -> dict[str, Any]:
    """Pre-flight, back up, write, restart, verify; restore byte for byte on any failure.

    A pending marker beside the file lives from before the write until the node is verified
    or restored: if this is cut off midway, `read` reports the node as unsettled and the
    next `up` finishes the job from the backup the marker names."""
    node = props["node"]
    path, unit, new = node["registriesPath"], node["unit"], props["content"]
    with session_factory() as session:
        previous, backup = last_good(session, path)
        preflight(session, props)
        try:
            if not backup and previous is not None:
                backup = _backup_path(path)
                session.write_file(backup, previous, "backup")
            session.write_file(path + PENDING_SUFFIX, backup, "backup")
        except NodeError as failure:
            raise NodeError(
                node["name"], failure.step, f"{failure.detail}\n  {path} was not touched"
            ) from None
        try:
            session.write_file(path, new, "write")
            restart_and_wait(session, unit)
            verified = verify_pull(session, props)
        except NodeError as failure:
            restored = restore(props, previous, session_factory, failure)
            raise NodeError(node["name"], failure.step, f"{failure.detail}\n  {restored}") from None
        session.remove_file(path + PENDING_SUFFIX, "settle")
    return {
        **verified,
        "verifiedAt": _now().isoformat(timespec="seconds"),
        "backupPath": backup,
    }


def restore(
    props: Mapping[str, Any],
    previous: str | None,
    session_factory: Callable[[], NodeSession],
    failure: NodeError,
) -> str:
    """Put the previous file back (over a fresh connection: the old one may have dropped),
    restart and confirm k3s is back. Returns what happened, for the error message."""
    node = props["node"]
    path, unit = node["registriesPath"], node["unit"]
    started = time.monotonic()
    try:
        with session_factory() as session:
            if session.read_file(path) != previous:
                if previous is None:
                    session.remove_file(path, "restore")
                else:
                    session.write_file(path, previous, "restore")
            if failure.step != "write":  # k3s may be running on the new file: restart it
                restart_and_wait(session, unit)
            back = session.read_file(path)
            if back == previous:
                session.remove_file(path + PENDING_SUFFIX, "settle")
    except NodeError as err:
        return (
            f"RESTORE FAILED ({err}): the node may be left with the new file. Restore "
            f"{path} from its newest .bak beside it, restart {unit}, then run pulumi refresh."
        )
    if back != previous:
        return f"RESTORE INCOMPLETE: {path} differs from its backup; check the node by hand."
    took = time.monotonic() - started
    note(f"node {node['name']}: restored the previous {path} after {failure.step} failed ({took:.1f}s)")
    state = f"{unit} is active again" if failure.step != "write" else f"{unit} was never restarted"
    return f"the previous registries.yaml was restored byte for byte and {state} ({took:.1f}s)."


# --- the dynamic provider -------------------------------------------------------------------


def _file_outs(text: str | None) -> dict[str, Any]:
    return {
        "fileHash": model.sha256(text) if text is not None else "",
        "fileMasked": model.masked(text) if text is not None else "",
    }


class NodeRegistriesProvider(Provider):
    """registries.yaml of one k3s node. Plain data in, one SSH session per method."""

    def _session(self, props: Mapping[str, Any]) -> Callable[[], NodeSession]:
        return lambda: NodeSession(props["node"])

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        content = news.get("content")
        if isinstance(content, str):
            try:
                parsed = model.parse_like_k3s(content)
                failures += [CheckFailure("content", w) for w in parsed.warnings]
            except model.RegistriesFileError as err:
                failures.append(CheckFailure("content", str(err)))
        if news.get("target") not in model.TARGETS:
            failures.append(CheckFailure("target", f"{news.get('target')!r} must be legacy or nexus"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        wanted = model.sha256(news["content"]) if isinstance(news.get("content"), str) else None
        changed = wanted is None or olds.get("fileHash") != wanted
        moved = olds.get("node", {}).get("name") != news.get("node", {}).get("name")
        return DiffResult(
            changes=changed or moved, replaces=["node"] if moved else [], delete_before_replace=True
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        node = props["node"]
        path = node["registriesPath"]
        with self._session(props)() as session:
            current = session.read_file(path)
            self._keep_original(session, path, current)
        if current is not None and model.same_effect(current, props["content"]):
            # Same mirrors and credentials already: k3s needs no restart, only our bytes.
            with self._session(props)() as session:
                session.write_file(_backup_path(path), current, "backup")
                session.write_file(path, props["content"], "write")
            outs = {"verifiedDigest": "", "servedBy": "unchanged (same effect, no restart)", "verifiedAt": ""}
        else:
            outs = apply_change(props, self._session(props))
        return CreateResult(
            id_=f"{node['name']}:{path}", outs={**props, **outs, **_file_outs(props["content"])}
        )

    def _keep_original(self, session: NodeSession, path: str, current: str | None) -> None:
        """The first time the program touches a node, it keeps what the node had (or that it
        had nothing) beside the file: `pulumi destroy` puts exactly that back."""
        if session.exists(path + ORIGINAL_SUFFIX) or session.exists(path + ABSENT_MARKER):
            return
        if current is None:
            session.write_file(path + ABSENT_MARKER, "", "keep original")
        else:
            session.write_file(path + ORIGINAL_SUFFIX, current, "keep original")

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        outs = apply_change(news, self._session(news))
        return UpdateResult(outs={**news, **outs, **_file_outs(news["content"])})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        path = props["node"]["registriesPath"]
        with self._session(props)() as session:
            original = session.read_file(path + ORIGINAL_SUFFIX)
            absent = original is None and session.exists(path + ABSENT_MARKER)
        if original is None and not absent:
            note(f"node {props['node']['name']}: no original of {path} kept; left the file as it is")
            return
        restore_props = {**props, "content": original or "", "canaries": [], "probe": {}}
        if absent:
            with self._session(props)() as session:
                session.remove_file(path, "restore original")
                restart_and_wait(session, props["node"]["unit"])
        else:
            apply_change(restore_props, self._session(props))
        with self._session(props)() as session:
            session.remove_file(path + ORIGINAL_SUFFIX, "restore original")
            session.remove_file(path + ABSENT_MARKER, "restore original")

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = props["node"]["registriesPath"]
        with self._session(props)() as session:
            current = session.read_file(path)
            pending = session.exists(path + PENDING_SUFFIX)
        if pending:
            # Cut off between write and verification: neither old nor new can be trusted,
            # so show a change; the next up settles the node.
            note(f"node {props['node']['name']}: a change was cut off midway; the next up settles it")
            unsettled = {"fileHash": "", "servedBy": "unsettled: a change was cut off", "verifiedAt": ""}
            return ReadResult(id_, {**props, **_file_outs(current), **unsettled})
        return ReadResult(id_, {**props, **_file_outs(current)})


class NodeRegistries(Resource):
    """One node's registries.yaml on its target, verified; see NodeRegistriesProvider."""

    target: pulumi.Output[str]
    fileHash: pulumi.Output[str]
    verifiedDigest: pulumi.Output[str]
    servedBy: pulumi.Output[str]
    verifiedAt: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        node: Mapping[str, Any],
        target: str,
        content: pulumi.Input[str],
        content_masked: pulumi.Input[str],
        verify_image: str,
        probe: pulumi.Input[Mapping[str, Any]],
        canaries: pulumi.Input[list[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "node": dict(node),
            "target": target,
            "content": pulumi.Output.secret(content),
            "contentMasked": content_masked,
            "verifyImage": verify_image,
            "probe": probe,
            "canaries": canaries,
            "fileHash": None,
            "fileMasked": None,
            "verifiedDigest": None,
            "servedBy": None,
            "verifiedAt": None,
            "backupPath": None,
        }
        secret_outs = pulumi.ResourceOptions(additional_secret_outputs=["fileHash"])
        super().__init__(
            NodeRegistriesProvider(), name, props, pulumi.ResourceOptions.merge(secret_outs, opts)
        )


# --- the canary rule, checked at preview before any node is touched --------------------------


class RolloutGuardProvider(Provider):
    """Refuses (at preview) an update that changes more nodes' targets than allowed.
    Its state remembers the targets of the last update it allowed."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        previous = olds.get("targets") or {}
        changing = model.changing_nodes(previous, list((news.get("targets") or {}).items()))
        problem = model.guard_problem(changing, int(news.get("maxChanges", 1)))
        return CheckResult(news, [CheckFailure("targets", problem)] if problem else [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(
            changes=olds.get("targets") != news.get("targets")
            or olds.get("maxChanges") != news.get("maxChanges")
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="rollout-guard", outs=props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=news)


class RolloutGuard(Resource):
    def __init__(
        self,
        name: str,
        targets: Mapping[str, str],
        max_changes: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            RolloutGuardProvider(), name, {"targets": dict(targets), "maxChanges": max_changes}, opts
        )


# --- Step 2's exposure, as every node sees it -------------------------------------------------


class ExposureCheckProvider(Provider):
    """Passes when the NodePort answers as a registry from every node and lets the pull user
    in: Step 3 must not start on a node that cannot reach the mirror."""

    watched = ("nodes", "endpoint", "username")

    def _check(self, props: dict[str, Any]) -> dict[str, Any]:
        failures = []
        for node in props["nodes"]:
            try:
                with NodeSession(node) as session:
                    credentials = {"username": props["username"], "password": props["password"]}
                    _login(session, "exposure check", props["endpoint"], "library/busybox", credentials)
            except NodeError as err:
                failures.append(str(err))
        if failures:
            listed = "\n  ".join(failures)
            raise RuntimeError(
                f"exposure check: {props['endpoint']} is not usable from every node:\n  {listed}"
            )
        salt = props.get("salt") or secrets.token_hex(16)
        return {**props, "ok": True, "salt": salt, "passwordDigest": secret_digest(salt, props["password"])}

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = any(olds.get(k) != news.get(k) for k in self.watched)
        digest = secret_digest(olds.get("salt", ""), news.get("password", ""))
        return DiffResult(changes=changed or not olds.get("ok") or digest != olds.get("passwordDigest"))

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="exposure-check", outs=self._check(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._check({**news, "salt": olds.get("salt")}))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            return ReadResult(id_, self._check(props))
        except RuntimeError as err:
            note(str(err))
            return ReadResult(id_, {**props, "ok": False})


class ExposureCheck(Resource):
    def __init__(
        self,
        name: str,
        nodes: list[Mapping[str, Any]],
        endpoint: str,
        username: str,
        password: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "nodes": nodes,
            "endpoint": endpoint,
            "username": username,
            "password": pulumi.Output.secret(password),
            "ok": None,
            "salt": None,
            "passwordDigest": None,
        }
        secret_outs = pulumi.ResourceOptions(additional_secret_outputs=["salt", "passwordDigest"])
        super().__init__(
            ExposureCheckProvider(), name, props, pulumi.ResourceOptions.merge(secret_outs, opts)
        )
