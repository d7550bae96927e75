"""The topology file (runbook Step 4): single values repointed in a human-written YAML file.

Pure part: `locate`, `apply_values`, `restore_sources`, `read_values` work on text. Only
the bytes of each edited scalar change; comments, key order, quoting and layout stay as
the humans wrote them, and the exact previous source text of every scalar is kept so a
rollback writes the file back byte for byte.

I/O part: `TopologyFileProvider`, a Pulumi dynamic provider over a local file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import yaml
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

Scalar = str | int | float | bool


class TopologyError(ValueError):
    """A topology edit that cannot be made; the message names the file and the key."""


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    source: str


def _segments(path: str) -> list[str]:
    return path.split(".")


def _compose(text: str, where: str) -> yaml.Node:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        raise TopologyError(f"{where} is not valid YAML: {err}") from err
    if not isinstance(root, yaml.MappingNode):
        raise TopologyError(f"{where} must be a YAML mapping at the top level")
    return root


def locate(text: str, path: str, where: str = "topology file") -> Span:
    """Where the scalar at dotted `path` (list indices as numbers) stands in `text`."""
    node = _compose(text, where)
    walked: list[str] = []
    for segment in _segments(path):
        if isinstance(node, yaml.MappingNode):
            matches = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == segment]
            if not matches:
                under = ".".join(walked) or "the top level"
                raise TopologyError(f"{where}: key {path!r} not found ({segment!r} missing under {under})")
            node = matches[-1]
        elif isinstance(node, yaml.SequenceNode) and segment.isdigit() and int(segment) < len(node.value):
            node = node.value[int(segment)]
        else:
            raise TopologyError(f"{where}: key {path!r} not found ({segment!r} is not under a mapping)")
        walked.append(segment)
    if not isinstance(node, yaml.ScalarNode) or node.style in ("|", ">"):
        raise TopologyError(f"{where}: key {path!r} must hold a single-line value, not a block")
    return Span(
        node.start_mark.index,
        node.end_mark.index,
        text[node.start_mark.index : node.end_mark.index],
    )


_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_./@+-][A-Za-z0-9_./:@+-]*$")


def render_scalar(value: Scalar, like: str) -> str:
    """YAML source for `value`, in the quoting style of the scalar it replaces."""
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if like.startswith("'"):
        return "'" + value.replace("'", "''") + "'"
    if like.startswith('"') or not _PLAIN_SAFE.match(value) or yaml.safe_load(value) != value:
        return json.dumps(value)
    return value


def _splice(text: str, replacements: dict[str, str], where: str) -> str:
    spans = sorted(
        ((locate(text, p, where), src) for p, src in replacements.items()),
        key=lambda s: -s[0].start,
    )
    for span, source in spans:
        text = text[: span.start] + source + text[span.end :]
    return text


def read_values(text: str, paths: list[str], where: str = "topology file") -> dict[str, Any]:
    """The current value of each path (what a YAML reader sees)."""
    return {p: yaml.safe_load(locate(text, p, where).source) for p in paths}


def apply_values(
    text: str, values: Mapping[str, Scalar], where: str = "topology file"
) -> tuple[str, dict[str, str]]:
    """`text` with each path set to its value, and each path's previous source text."""
    previous = {p: locate(text, p, where).source for p in values}
    new_text = _splice(text, {p: render_scalar(v, previous[p]) for p, v in values.items()}, where)
    landed = read_values(new_text, list(values), where)
    for path, value in values.items():
        if landed[path] != value:
            raise TopologyError(f"{where}: {path!r} would read back as {landed[path]!r}, not {value!r}")
    return new_text, previous


def restore_sources(text: str, sources: Mapping[str, str], where: str = "topology file") -> str:
    """`text` with each path's scalar put back to the exact source text it had."""
    return _splice(text, dict(sources), where)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def edits_problems(path: Any, edits: Any) -> list[CheckFailure]:
    """Input problems, found before the file is touched."""
    failures = []
    if not isinstance(path, str) or not os.path.isabs(path):
        failures.append(CheckFailure("path", f"{path!r} must be an absolute path to the topology file"))
    if not isinstance(edits, Mapping) or not edits:
        failures.append(CheckFailure("edits", "must map at least one dotted key to its new value"))
        return failures
    for key, value in edits.items():
        if not key or any(not s for s in _segments(key)):
            failures.append(
                CheckFailure("edits", f"{key!r} is not a dotted key such as registry_cache.buildcache_ref")
            )
        if not isinstance(value, Scalar) or value == "":
            failures.append(
                CheckFailure("edits", f"{key}: {value!r} must be a non-empty string, number or boolean")
            )
    return failures


# ---------------------------------------------------------------------------------------
# I/O part


def _read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError as err:
        raise TopologyError(f"topology file {path} does not exist: check the topology path setting") from err


def _write_file(path: str, text: str) -> None:
    """Atomic replace that keeps the file's mode: readers never see half a file."""
    mode = os.stat(path).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".topology-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _outs(path: str, edits: Mapping[str, Scalar], previous: Mapping[str, str], text: str) -> dict[str, Any]:
    return {
        "path": path,
        "edits": dict(edits),
        "previous": dict(previous),
        "current": read_values(text, list(edits), path),
        "sha256": sha256(text),
    }


class TopologyFileProvider(Provider):
    """Sets values in a local YAML file and puts the exact previous text back on delete."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Shape first; then, at preview already, that the file is YAML and has every key."""
        path, edits = news.get("path"), news.get("edits")
        failures = edits_problems(path, edits)
        if not failures:
            try:
                apply_values(_read_file(path), edits, path)
            except TopologyError as err:
                failures.append(CheckFailure("edits", str(err)))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["path"] if olds.get("path") != news.get("path") else []
        drifted = olds.get("current") != olds.get("edits")
        changed = replaces or olds.get("edits") != news.get("edits") or drifted
        return DiffResult(
            changes=bool(changed),
            replaces=replaces,
            delete_before_replace=True,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        path, edits = props["path"], props["edits"]
        new_text, previous = apply_values(_read_file(path), edits, path)
        _write_file(path, new_text)
        return CreateResult(id_=path, outs=_outs(path, edits, previous, new_text))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        path, edits = news["path"], news["edits"]
        text = _read_file(path)
        previous = dict(olds.get("previous") or {})
        dropped = {k: src for k, src in previous.items() if k not in edits}
        text = restore_sources(text, dropped, path)
        text, before = apply_values(text, edits, path)
        # The first value ever seen is what a rollback must restore, not our own edit.
        kept = {k: previous.get(k, before[k]) for k in edits}
        _write_file(path, text)
        return UpdateResult(outs=_outs(path, edits, kept, text))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        path = props["path"]
        if not os.path.exists(path):
            return
        _write_file(path, restore_sources(_read_file(path), props.get("previous") or {}, path))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = props.get("path", id_)
        if not os.path.exists(path):
            return ReadResult(None, {})
        text = _read_file(path)
        return ReadResult(
            id_,
            {
                **props,
                "current": read_values(text, list(props["edits"]), path),
                "sha256": sha256(text),
            },
        )


class TopologyEdit(Resource):
    """Values set in the topology file; destroying it restores the previous text exactly."""

    edits: pulumi.Output[dict[str, Any]]
    previous: pulumi.Output[dict[str, str]]
    current: pulumi.Output[dict[str, Any]]
    sha256: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        path: pulumi.Input[str],
        edits: pulumi.Input[Mapping[str, pulumi.Input[Scalar]]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"path": path, "edits": edits, "previous": None, "current": None, "sha256": None}
        super().__init__(TopologyFileProvider(), name, props, opts)
