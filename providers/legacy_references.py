"""Leftover references to the legacy cache (runbook Step 5), in local files.

Pure part: `find_references` lists the lines of a text that name a legacy pattern, and
`retirement_problems` turns leftovers and node states into the reasons retirement must wait.
I/O part: `scan` reads the configured files and folders; `RetirementGuard` is a dynamic
resource whose `check` runs the scan, so `pulumi preview` refuses stage 5 while anything
still points at the legacy cache, listing every file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
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

MAX_FILE_BYTES = 4 * 1024 * 1024  # docs and config, not images or databases
LISTED_AT_MOST = 50


def _whole(pattern: str) -> re.Pattern[str]:
    """`pattern` as a whole name: 10.10.10.150 must not match 10.10.10.1500 or 110.10.10.150."""
    return re.compile(rf"(?<![\w.]){re.escape(pattern)}(?!\w|\.\d)")


def find_references(text: str, patterns: Sequence[str]) -> list[tuple[int, str]]:
    """(line number, stripped line) of every line naming one of `patterns`."""
    compiled = [_whole(p) for p in patterns]
    return [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if any(c.search(line) for c in compiled)
    ]


def retirement_problems(leftovers: Sequence[str], nodes: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Why the legacy cache cannot be retired yet (empty: it can)."""
    problems = [
        f"node {name} is not verified on Nexus (target {state.get('target')!r}, last verification: "
        f"{state.get('servedBy') or 'none'}): finish Step 3 for it first"
        for name, state in nodes.items()
        if state.get("target") != "nexus" or not state.get("servedBy")
    ]
    if leftovers:
        shown = leftovers[:LISTED_AT_MOST]
        more = len(leftovers) - len(shown)
        problems.append(
            f"{len(leftovers)} line(s) still name the legacy cache; repoint or delete them first:\n    "
            + "\n    ".join(shown)
            + (f"\n    ... and {more} more" if more else "")
        )
    return problems


def _files(paths: Iterable[str]) -> Iterable[str]:
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                yield from (os.path.join(folder, n) for n in sorted(names))
        else:
            yield path


def scan(paths: Sequence[str], patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """("file:line: text" for every leftover, problems reading the paths)."""
    leftovers: list[str] = []
    unreadable: list[str] = []
    for path in _files(paths):
        try:
            if os.path.getsize(path) > MAX_FILE_BYTES:
                continue
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as err:
            unreadable.append(f"{path}: cannot be read ({err.strerror}); fix retirement.scanPaths")
            continue
        if b"\0" in data:
            continue  # binary
        text = data.decode("utf-8", errors="replace")
        leftovers += [f"{path}:{n}: {line}" for n, line in find_references(text, patterns)]
    return leftovers, unreadable


class RetirementGuardProvider(Provider):
    """Passes only while nothing names the legacy cache and every node is verified on Nexus.
    Checked at preview and again at `up`; `refresh` re-scans, so a reference added later
    shows as a change that the next `up` refuses."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        leftovers, unreadable = scan(news["scanPaths"], news["patterns"])
        # Unknown while a node changes in the same update: checked again when `up` gets there.
        raw_nodes = news.get("nodes") if isinstance(news.get("nodes"), Mapping) else {}
        nodes = {k: v for k, v in raw_nodes.items() if isinstance(v, Mapping)}
        problems = unreadable + retirement_problems(leftovers, nodes)
        return CheckResult(news, [CheckFailure("scanPaths", p) for p in problems])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        watched = ("scanPaths", "patterns", "nodes")
        changed = any(olds.get(k) != news.get(k) for k in watched) or not olds.get("clean")
        return DiffResult(changes=changed)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="retirement-guard", outs={**props, "clean": True})

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**news, "clean": True})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        leftovers, unreadable = scan(props.get("scanPaths") or [], props.get("patterns") or [])
        return ReadResult(id_, {**props, "clean": not (leftovers or unreadable)})


class RetirementGuard(Resource):
    clean: pulumi.Output[bool]

    def __init__(
        self,
        name: str,
        scan_paths: Sequence[str],
        patterns: Sequence[str],
        nodes: pulumi.Input[Mapping[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"scanPaths": list(scan_paths), "patterns": list(patterns), "nodes": nodes, "clean": None}
        super().__init__(RetirementGuardProvider(), name, props, opts)
