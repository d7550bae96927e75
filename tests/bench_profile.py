"""`make bench` profiling (python -m tests.bench --profile): py-spy samples the Pulumi program
and the dynamic-provider process while the engine runs them, and the samples are summed up
into the costs that are this project's own (imports, functions, lines).

py-spy is not a dependency of the project: `.venv/bin/pip install py-spy==0.4.3` first.
How it gets in between: the engine starts the program with $PULUMI_PYTHON_CMD and the
dynamic provider with <project>/.venv/bin/python (the runtime's `virtualenv` option). A
profiled copy of the project gets a .venv whose bin/python is a wrapper script: it runs the
program and `-m pulumi.dynamic` under `py-spy record`, and everything else (pip list,
version probes) straight. py-spy prints to stdout, where the engine expects the provider's
port, so the wrapper hands the real stdout/stderr to the child through fds 3 and 4.
"""

from __future__ import annotations

import collections
import shlex
import shutil
from pathlib import Path

from tests.engine.harness import ROOT, VENV_PYTHON

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
RATE = 200  # samples per second (and per thread: --idle samples waiting threads too)
OWN_PREFIXES = ("providers/", "components/", "__main__.py")
IMPORTS = ("paramiko", "httpx", "pulumi_kubernetes", "yaml", "grpc", "pulumi", "dill", "cryptography")

WRAPPER = """#!/bin/sh
# nexus-cutover bench: the program and the dynamic provider run under py-spy
py={python}
case "$*" in
  *pulumi.dynamic*) role=dynamic-provider ;;
  *pulumi-language-python-exec*) role=program ;;
  *) exec "$py" "$@" ;;
esac
exec 3>&1 4>&2
exec {spy} record --idle -r {rate} -f raw -o {out}/"$role-$$.raw" \\
  -- sh -c 'exec "$0" "$@" >&3 2>&4 3>&- 4>&-' "$py" "$@" >{out}/"$role-$$.log" 2>&1
"""


def available() -> bool:
    return PY_SPY.exists()


def profiled_project(source: Path, dest: Path, out: Path) -> tuple[Path, Path]:
    """A copy of the project at `source` (Pulumi.yaml, __main__.py, stack files) whose
    python runs under py-spy; returns (project dir, wrapper) - set PULUMI_PYTHON_CMD to it."""
    dest.mkdir(parents=True)
    out.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and (path.suffix == ".yaml" or path.name == "__main__.py"):
            shutil.copy2(path, dest / path.name)
    wrapper = dest / ".venv" / "bin" / "python"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(
        WRAPPER.format(
            python=shlex.quote(str(VENV_PYTHON)),
            spy=shlex.quote(str(PY_SPY)),
            rate=RATE,
            out=shlex.quote(str(out)),
        )
    )
    wrapper.chmod(0o755)
    return dest, wrapper


def _frames(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def _function(frame: str) -> tuple[str, str, str]:
    """("NodeSession.run", "providers/k3s_node/ssh.py", "139") from a py-spy frame."""
    name, _, where = frame.partition(" (")
    file, _, line = where.rstrip(")").rpartition(":")
    return name, file, line


def _own(file: str) -> bool:
    return file.startswith(OWN_PREFIXES)


def summarize(out: Path, role: str, top: int = 8) -> list[str]:
    """Lines describing one role's samples (every process of that role added up)."""
    files = sorted(out.glob(f"{role}-*.raw"))
    if not files:
        return [f"profile.{role}: no samples (py-spy did not run)"]
    imports: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    lines: collections.Counter[str] = collections.Counter()
    busy = 0
    for path in files:
        for frames, count in _frames(path):
            parsed = [_function(f) for f in frames]
            if parsed[0][0] in ("Thread._bootstrap",) and not any(_own(f) for _, f, _ in parsed):
                continue  # worker threads waiting for work: not a cost
            busy += count
            seen_imports = set()
            for name, file, _ in parsed:
                package = file.split("/", 1)[0]
                if name == "<module>" and package in IMPORTS and package not in seen_imports:
                    seen_imports.add(package)
                    imports[package] += count
            seen_functions = set()
            for name, file, _ in parsed:
                if _own(file) and name != "<module>" and (name, file) not in seen_functions:
                    seen_functions.add((name, file))
                    functions[f"{name} ({file})"] += count
            own = [(n, f, ln) for n, f, ln in parsed if _own(f) and n != "<module>"]
            if own:
                name, file, line = own[-1]
                callee = parsed[parsed.index(own[-1]) + 1][0] if parsed[-1] != own[-1] else "(self)"
                lines[f"{file}:{line} {name} -> {callee}"] += count

    def seconds(count: int) -> str:
        return f"{count / RATE:.2f}s"

    out_lines = [
        f"profile.{role}: {len(files)} process(es), {seconds(busy)} sampled outside idle worker threads",
        f"profile.{role}.imports (inclusive, nested): "
        + ", ".join(f"{name} {seconds(c)}" for name, c in imports.most_common()),
    ]
    out_lines += [
        f"profile.{role}.own_function: {seconds(c)} {name}" for name, c in functions.most_common(top)
    ]
    out_lines += [f"profile.{role}.own_line: {seconds(c)} {name}" for name, c in lines.most_common(top)]
    return out_lines
