"""`make bench`: figures measured on a homelab (lab 30-39), printed as `name: value` lines.

Every figure is a ratio or a count taken side by side in the same run (the machine has two
cores and other heavy tests may run beside it): several runs each, the median printed with
min, max and n, then the target and whether it is met. A missed target is not a failure:
the exit status is non-zero only when something broke.

  preview_overhead_ratio   `pulumi preview` of the applied stage-3 stack (6 nodes on Nexus, no
                           changes) over `pulumi preview` of an empty Python program, same
                           engine, backend and .venv; runs interleaved A, B, A, B ...
  per_node_overhead_s      per node of a 6-node cutover (one node per up, the default canary
                           rule): the node resource's wall time (engine events, ResourcePre ->
                           ResOutputs) minus what the node spent in its k3s restart and image
                           pulls (node-side logs, see tests/bench_nodes.py)
  scale_60_vs_6_ratio      preview of a not-yet-applied stage-3 stack with 60 nodes over one
                           with 6 (series 6/12/30/60); anything connecting to a node address
                           during those previews is counted
  nexus_requests_noop_preview  requests the program sends to the Nexus double during a
                           preview with no changes, next to the managed Nexus objects and the
                           writes among the requests
  fault_to_restored_s      injected pull failure (pull-fails) on a node being changed: from the
                           failed pull on the node to the engine reporting the node's step
                           failed after the restore, against the node's restart + pull timeouts

`python -m tests.bench --profile` also runs one preview and one node change under py-spy
(not a dependency: `.venv/bin/pip install py-spy==0.4.3`) and prints the program's and the
dynamic provider's own costs; see tests/bench_profile.py.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from tests import bench_nodes, bench_profile
from tests.engine.harness import TOOLS_BIN, VENV_PYTHON, missing_binaries, offline_env, program_copy
from tests.engine.lab_stack import set_secrets
from tests.homelab.addresses import LabAddresses
from tests.homelab.lab import NODE_NAMES, Homelab
from tests.homelab.nodes import ssh_run

BENCH_LABS = range(30, 40)
STACK = "bench"
PROJECT = "nexus-cutover"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
PREVIEW_RUNS = 5
SCALE_RUNS = 3
SCALE_SIZES = (6, 12, 30, 60)
FAULT_RUNS = 3
FAULT_NODE = "pve2"  # a server: its restart also waits for the node to be Ready
STANDIN_RUNS = 5
PREVIEW_TIMEOUT = 300.0
RESTORED = re.compile(r"restored byte for byte and .*? \(([\d.]+)s\)")
EMPTY_PULUMI_YAML = "name: bench-empty\nruntime:\n  name: python\n  options:\n    virtualenv: .venv\n"


class BenchError(RuntimeError):
    """Something broke (not: a target was missed)."""


class Progress:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __call__(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {message}", flush=True)


@dataclass
class Figure:
    name: str
    values: list[float]
    target: str
    met: Callable[[float], bool]
    digits: int = 2
    extra: str = ""

    def line(self) -> str:
        def fmt(value: float) -> str:
            return f"{value:.{self.digits}f}"

        median = statistics.median(self.values)
        text = f"{self.name}: {fmt(median)} (min {fmt(min(self.values))}, max {fmt(max(self.values))}"
        text += f", n={len(self.values)})"
        if self.extra:
            text += f"; {self.extra}"
        return f"{text}; target {self.target}; target met: {'yes' if self.met(median) else 'no'}"


class Events:
    """on_event callback: each resource's pre / outputs / failed events, stamped on arrival
    (the Automation API reads the engine's event log every 0.1 s when it is idle)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, str]] = []

    def __call__(self, event: auto.EngineEvent) -> None:
        now = time.time()
        for kind, payload in (
            ("pre", event.resource_pre_event),
            ("outputs", event.res_outputs_event),
            ("failed", event.res_op_failed_event),
        ):
            if payload is not None:
                self.seen.append((now, kind, payload.metadata.urn.rsplit("::", 1)[-1]))

    def at(self, kind: str, name: str) -> float:
        for stamp, seen_kind, seen_name in self.seen:
            if seen_kind == kind and seen_name == name:
                return stamp
        raise BenchError(f"the engine sent no {kind} event for {name}")


def lab_in_use(lab: int) -> bool:
    addresses = LabAddresses(lab)
    for host, port in ((addresses.nexus, 8081), (addresses.node(0), 22), (addresses.kube_api, 6443)):
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.3):
            return True
    return False


def pick_lab(requested: int | None) -> int:
    for lab in [requested] if requested is not None else BENCH_LABS:
        if lab not in BENCH_LABS:
            raise BenchError(
                f"lab {lab} is not one of the bench's labs ({BENCH_LABS.start}-{BENCH_LABS.stop - 1})"
            )
        if not lab_in_use(lab):
            return lab
    raise BenchError("every bench lab (30-39) is in use")


def series(values: Sequence[float], digits: int = 2) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"


class Bench:
    def __init__(self, root: Path, lab: Homelab, progress: Progress) -> None:
        self.root = root
        self.lab = lab
        self.progress = progress
        self.env = offline_env(root / "state", lab.addresses.all_hosts())
        self.command = auto.PulumiCommand(root=str(TOOLS_BIN.parent))
        self.figures: list[Figure] = []
        self.details: list[str] = []
        self.targets = dict.fromkeys(NODE_NAMES, "legacy")
        self.project = root / "program"
        self.stack: auto.Stack | None = None
        self.standin = 0.0  # seconds one remote command of a Python stand-in takes
        self.commands = 0  # remote commands in one node change

    # -- engine helpers -----------------------------------------------------------------------

    def workspace(self, project: Path, env: dict[str, str] | None = None) -> auto.LocalWorkspace:
        return auto.LocalWorkspace(
            work_dir=str(project), env_vars=env or self.env, pulumi_command=self.command
        )

    def new_stack(self, project: Path, name: str) -> auto.Stack:
        st = auto.Stack.create(name, self.workspace(project))
        set_secrets(st, self.lab)
        return st

    @property
    def main(self) -> auto.Stack:
        if self.stack is None:
            raise BenchError("the bench stack was not created")
        return self.stack

    def set_targets(self, targets: dict[str, str]) -> None:
        nodes = self.lab.stack_config(3, targets)[f"{PROJECT}:nodes"]
        self.main.set_config(f"{PROJECT}:nodes", auto.ConfigValue(json.dumps(nodes)))

    def up(self, what: str, on_event: Events | None = None) -> auto.UpResult:
        started = time.monotonic()
        result = self.main.up(color="never", on_event=on_event)
        if result.summary.result != "succeeded":
            raise BenchError(f"{what}: pulumi up {result.summary.result}\n{result.stdout[-3000:]}")
        changed = {k: v for k, v in (result.summary.resource_changes or {}).items() if k != "same"}
        self.progress(f"{what}: up {changed or 'no changes'} ({time.monotonic() - started:.1f}s)")
        return result

    def preview(self, project: Path, stack: str, *extra: str, env: dict[str, str] | None = None) -> float:
        """Wall seconds of one `pulumi preview` as an operator runs it (the CLI, no wrapper)."""
        argv = [
            str(TOOLS_BIN / "pulumi"),
            "preview",
            "--stack",
            stack,
            "--non-interactive",
            "--color",
            "never",
        ]
        started = time.monotonic()
        done = subprocess.run(
            [*argv, *extra],
            cwd=project,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=PREVIEW_TIMEOUT,
            check=False,
        )
        took = time.monotonic() - started
        if done.returncode != 0:
            raise BenchError(
                f"pulumi preview of {stack} {' '.join(extra)} exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
            )
        return took

    # -- the parts ----------------------------------------------------------------------------

    def setup(self) -> None:
        program_copy(self.root)
        self.lab.write_stack_file(self.project, STACK, stage=3)
        self.stack = self.new_stack(self.project, STACK)
        self.up("stage 3 applied, every node still on legacy")

    def standin_cost(self) -> None:
        """What one remote command costs on a homelab node: the stand-ins (crictl, systemctl,
        kubectl) are Python programs, where a real node runs Go binaries."""
        node = self.lab.nodes()[0]
        client = node.ssh_client()
        plain, standin = [], []
        try:
            for _ in range(STANDIN_RUNS):
                for command, into in (("true", plain), ("crictl version", standin)):
                    started = time.monotonic()
                    if ssh_run(client, command).exit_status != 0:
                        raise BenchError(f"`{command}` failed on {node.name}")
                    into.append(time.monotonic() - started)
        finally:
            client.close()
        self.standin = statistics.median(standin)
        self.details.append(
            f"node_command_s: `true` {statistics.median(plain):.3f}, `crictl version` (a Python "
            f"stand-in) {self.standin:.3f} (medians of {STANDIN_RUNS}, over one SSH connection)"
        )

    def cutover(self) -> None:
        roots = {node.name: node.root for node in self.lab.nodes()}
        overheads: list[float] = []
        with bench_nodes.SshdTail(roots) as tail:
            for name in NODE_NAMES:
                self.targets[name] = "nexus"
                self.set_targets(self.targets)
                events = Events()
                self.up(f"cutover {name} -> nexus", events)
                start, end = events.at("pre", name), events.at("outputs", name)
                work = bench_nodes.node_work(roots[name], start - 0.15, end)
                if work.restarts < 1 or work.pulls < 1:
                    raise BenchError(f"{name}: no restart or pull found in the node's logs during its change")
                time.sleep(0.05)  # the tail's last poll
                ssh = bench_nodes.ssh_activity(tail.window(name, start - 0.15, end + 0.05))
                wall = end - start
                overhead = wall - work.seconds
                overheads.append(overhead)
                self.details.append(
                    f"per_node.{name}: wall {wall:.2f}s = restart {work.restart_seconds:.2f}s "
                    f"({work.restarts}x) + pulls {work.pull_seconds:.2f}s ({work.pulls}x) + overhead "
                    f"{overhead:.2f}s; ssh connections {ssh.connections}, commands {ssh.commands} "
                    f"({ssh.command_seconds:.2f}s on the node, {ssh.command_seconds - work.seconds:.2f}s "
                    f"of it besides restart+pulls), {wall - ssh.command_seconds:.2f}s outside commands"
                )
                self.commands = ssh.commands
            self.faults(roots)
        standins = self.commands * self.standin
        self.figures.append(
            Figure(
                "per_node_overhead_s",
                overheads,
                "<= 0.5 s",
                lambda v: v <= 0.5,
                extra=f"{self.commands} remote commands per change x {self.standin:.2f}s per "
                f"Python stand-in = {standins:.2f}s of it is the homelab's stand-ins",
            )
        )

    def faults(self, roots: dict[str, Path]) -> None:
        node = next(n for n in self.lab.nodes() if n.name == FAULT_NODE)
        settings = next(n for n in self.lab.stack_config(3)[f"{PROJECT}:nodes"] if n["name"] == FAULT_NODE)
        timeouts = settings["timeouts"]
        budget = float(timeouts["restart"] + timeouts["pull"])
        values, provider, node_side = [], [], []
        self.set_targets({**self.targets, FAULT_NODE: "legacy"})
        for run in range(FAULT_RUNS):
            events = Events()
            started = time.time()
            node.set_fault("pull-fails", True)
            try:
                self.main.up(color="never", on_event=events)
            except auto.CommandError as err:
                message = str(err)
            else:
                raise BenchError(f"{FAULT_NODE}: the change went through despite pull-fails")
            finally:
                node.clear_faults()
            if not (restored := RESTORED.search(message)):
                raise BenchError(f"{FAULT_NODE}: no restore reported:\n{message[-3000:]}")
            failed = events.at("failed", FAULT_NODE)
            work = bench_nodes.node_work(roots[FAULT_NODE], started, failed)
            if not work.failed_pulls:
                raise BenchError(f"{FAULT_NODE}: no failed pull in the node's log")
            fault_at = work.failed_pulls[0]
            back = [t for t in work.k3s_up if t > fault_at]
            values.append(failed - fault_at)
            provider.append(float(restored.group(1)))
            node_side.append(back[0] - fault_at if back else float("nan"))
            self.progress(
                f"fault run {run + 1}: pull failed, restored, up failed as it should ({values[-1]:.1f}s)"
            )
        self.set_targets(self.targets)
        self.up(f"{FAULT_NODE} settled back on nexus (the rollout guard too)")
        self.figures.append(
            Figure(
                "fault_to_restored_s",
                values,
                f"<= restart {timeouts['restart']:g}s + pull {timeouts['pull']:g}s timeouts + 5 s = {budget + 5:g} s",
                lambda v: v <= budget + 5,
                extra=f"provider's restore {statistics.median(provider):.2f}s, node back up "
                f"{statistics.median(node_side):.2f}s after the failed pull (medians)",
            )
        )
        self.details.append(
            f"fault_to_restored_s_series: {series(values)}; provider 'active again' {series(provider)}; "
            f"node k3s up again {series(node_side)}"
        )

    def managed_nexus_objects(self) -> list[str]:
        """Repos, roles, users and the realm list: the resources that talk to the Nexus REST
        API (a `connection` input), less the readiness probe."""
        resources = self.main.export_stack().deployment.get("resources") or []
        return sorted(
            r["urn"].rsplit("::", 1)[-1]
            for r in resources
            if r.get("type") == "pulumi-python:dynamic:Resource"
            and "connection" in (r.get("inputs") or {})
            and not r["urn"].endswith("::nexus-ready")
        )

    def previews(self) -> None:
        empty = self.root / "empty"
        empty.mkdir()
        (empty / "Pulumi.yaml").write_text(EMPTY_PULUMI_YAML)
        (empty / "__main__.py").write_text("")
        (empty / ".venv").symlink_to(VENV_PYTHON.parent.parent)
        empty_stack = auto.Stack.create("empty", self.workspace(empty))
        empty_stack.up(color="never")
        nexus = self.lab.nexus()
        managed = self.managed_nexus_objects()
        no_changes = "--expect-no-changes"
        self.preview(self.project, STACK, no_changes)  # warm-up: caches, .pyc
        self.preview(empty, "empty", no_changes)
        full, bare, requests, writes = [], [], [], []
        paths: collections.Counter[str] = collections.Counter()
        for run in range(PREVIEW_RUNS):
            nexus.clear_requests()
            full.append(self.preview(self.project, STACK, no_changes))
            got = nexus.requests()
            requests.append(len(got))
            writes.append(sum(1 for r in got if r["method"] in WRITES))
            paths.update(f"{r['kind']} {r['method']} {r['path']}" for r in got)
            bare.append(self.preview(empty, "empty", no_changes))
            self.progress(f"preview pair {run + 1}: stack {full[-1]:.2f}s, empty program {bare[-1]:.2f}s")
        ratios = [a / b for a, b in zip(full, bare, strict=True)]
        self.figures.append(
            Figure(
                "preview_overhead_ratio",
                ratios,
                "<= 1.3",
                lambda v: v <= 1.3,
                extra=f"stack {statistics.median(full):.2f}s vs empty program {statistics.median(bare):.2f}s",
            )
        )
        self.details.append(f"preview_s_series: stack {series(full)}, empty program {series(bare)}")
        limit = len(managed)
        self.figures.append(
            Figure(
                "nexus_requests_noop_preview",
                [float(n) for n in requests],
                f"<= {limit} (one per managed object), 0 writes",
                lambda v: v <= limit and max(writes) == 0,
                digits=0,
                extra=f"managed Nexus objects {limit}, writes {max(writes)}",
            )
        )
        if paths:
            grouped = ", ".join(f"{p} x{c}" for p, c in paths.most_common())
            self.details.append(f"nexus_requests_noop_preview_paths: {grouped}")
        # Drift in Nexus only shows with a refresh: what that costs, for comparison.
        nexus.clear_requests()
        took = self.preview(self.project, STACK, "--refresh")
        got = nexus.requests()
        rest = collections.Counter(f"{r['method']} {r['path']}" for r in got if r["kind"] == "rest")
        docker = sum(1 for r in got if r["kind"] != "rest")
        self.details.append(
            f"nexus_requests_refresh_preview: {len(got)} ({took:.1f}s): REST {sum(rest.values())} "
            f"(" + ", ".join(f"{p} x{c}" for p, c in sorted(rest.items())) + f"), docker connectors {docker}"
        )
        self.details.append(f"nexus_managed_objects: {', '.join(managed)}")

    def scale(self) -> None:
        scale_root = self.root / "scale"
        scale_root.mkdir()
        project = program_copy(scale_root)
        keys = [node.host_key_line for node in self.lab.nodes()]
        base = self.lab.stack_config(3)
        timeouts = base[f"{PROJECT}:nodes"][0]["timeouts"]
        for size in SCALE_SIZES:
            nodes = [
                {
                    "name": f"node-{i:02d}",
                    "id": 1000 + i,
                    "host": self.lab.addresses.node(i),
                    "hostKey": keys[i % len(keys)],
                    "role": "server" if i % 3 == 0 else "agent",
                    "target": "legacy",
                    "timeouts": timeouts,
                }
                for i in range(size)
            ]
            config = {**base, f"{PROJECT}:nodes": nodes}
            (project / f"Pulumi.scale-{size}.yaml").write_text(
                yaml.safe_dump({"config": config}, sort_keys=False)
            )
            self.new_stack(project, f"scale-{size}")
        self.preview(project, f"scale-{SCALE_SIZES[0]}")  # warm-up
        roots = {node.name: node.root for node in self.lab.nodes()}
        simulated = [self.lab.addresses.node(i) for i in range(len(NODE_NAMES), max(SCALE_SIZES))]
        nexus = self.lab.nexus()
        nexus.clear_requests()
        before = bench_nodes.connections_seen(roots)
        times: dict[int, list[float]] = {size: [] for size in SCALE_SIZES}
        with bench_nodes.PortWatch(simulated, 22) as watch:
            for run in range(SCALE_RUNS):
                order = SCALE_SIZES if run % 2 == 0 else tuple(reversed(SCALE_SIZES))
                for size in order:
                    times[size].append(self.preview(project, f"scale-{size}"))
                self.progress(
                    f"scale round {run + 1}: "
                    + ", ".join(f"{s} nodes {times[s][-1]:.2f}s" for s in SCALE_SIZES)
                )
        after = bench_nodes.connections_seen(roots)
        real = sum(after[n] - before[n] for n in roots)
        requests = len(nexus.requests())
        small, large = SCALE_SIZES[0], SCALE_SIZES[-1]
        ratios = [b / a for a, b in zip(times[small], times[large], strict=True)]
        self.figures.append(
            Figure(
                f"scale_{large}_vs_{small}_ratio",
                ratios,
                "<= 2.0",
                lambda v: v <= 2.0,
                extra=f"node connections during the previews {real + watch.total}, Nexus requests {requests}",
            )
        )
        medians = {s: statistics.median(times[s]) for s in SCALE_SIZES}
        self.details.append(
            "scale_preview_s_series: " + ", ".join(f"{s}={medians[s]:.2f}" for s in SCALE_SIZES)
        )
        self.details.append(
            "scale_ratio_series: "
            + ", ".join(
                f"{s}/{small}={statistics.median(b / a for a, b in zip(times[small], times[s], strict=True)):.2f}"
                for s in SCALE_SIZES
            )
        )
        per_node = (medians[large] - medians[small]) / (large - small)
        self.details.append(f"scale_preview_s_per_added_node: {per_node:.3f}")
        unbound = f" ({len(watch.unbound)} simulated addresses could not be watched)" if watch.unbound else ""
        self.details.append(
            f"scale_node_connections: {real} to the 6 real nodes' sshd, {watch.total} to "
            f"{len(simulated) - len(watch.unbound)} watched simulated node addresses :22{unbound}"
        )

    def profile(self) -> None:
        if not bench_profile.available():
            self.details.append(
                "profile: skipped, py-spy is not installed (.venv/bin/pip install py-spy==0.4.3)"
            )
            return
        out = self.root / "profile"
        project, wrapper = bench_profile.profiled_project(self.project, self.root / "program-profiled", out)
        env = {**self.env, "PULUMI_PYTHON_CMD": str(wrapper)}
        took = self.preview(project, STACK, "--expect-no-changes", env=env)
        self.progress(f"profiled preview ({took:.1f}s)")
        self.details += [line.replace("profile.", "profile.preview.", 1) for line in self._profile_lines(out)]
        shutil.rmtree(out)
        profiled = auto.Stack.select(STACK, self.workspace(project, env))
        nodes = self.lab.stack_config(3, {**self.targets, FAULT_NODE: "legacy"})[f"{PROJECT}:nodes"]
        profiled.set_config(f"{PROJECT}:nodes", auto.ConfigValue(json.dumps(nodes)))
        started = time.monotonic()
        if profiled.up(color="never").summary.result != "succeeded":
            raise BenchError("profiled up failed")
        self.progress(f"profiled up: {FAULT_NODE} -> legacy ({time.monotonic() - started:.1f}s)")
        self.details += [line.replace("profile.", "profile.up.", 1) for line in self._profile_lines(out)]
        self.up(f"{FAULT_NODE} back on nexus")

    @staticmethod
    def _profile_lines(out: Path) -> list[str]:
        return [*bench_profile.summarize(out, "program"), *bench_profile.summarize(out, "dynamic-provider")]

    def report(self, lab: int, wall: float) -> None:
        print(f"\nbench_lab: {lab} (127.{lab}.0.0/16)")
        for line in self.details:
            print(line)
        for figure in self.figures:
            print(figure.line())
        print(f"bench_wall_s: {wall:.1f}", flush=True)


def stop_leftovers(root: Path) -> list[int]:
    """Stop processes this run started that are still there (they name its folder in their
    command line, working directory or environment); by pid, never by name."""
    mine = str(root).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cwd = os.readlink(entry / "cwd").encode()
            if (
                mine in (entry / "cmdline").read_bytes()
                or cwd.startswith(mine)
                or mine in (entry / "environ").read_bytes()
            ):
                found.append(int(entry.name))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        if sig == signal.SIGTERM and found:
            time.sleep(1.0)
    return found


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", type=int, help="homelab number, 30-39 (default: the first free one)")
    parser.add_argument("--profile", action="store_true", help="also profile one preview and one up (py-spy)")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, state) afterwards")
    args = parser.parse_args(argv)
    if missing := missing_binaries():
        raise SystemExit(f"missing toolchain binaries {missing}: run make setup")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    progress = Progress()
    number = pick_lab(args.lab)
    root = Path(tempfile.mkdtemp(prefix="nexus-cutover-bench-"))
    lab = Homelab(root / "lab", number)
    bench = Bench(root, lab, progress)
    failed = False
    try:
        progress(f"starting homelab {number} (127.{number}.0.0/16) under {root}")
        lab.up()
        progress("homelab up")
        bench.setup()
        bench.standin_cost()
        bench.cutover()
        bench.previews()
        bench.scale()
        if args.profile:
            bench.profile()
    except (BenchError, auto.CommandError, OSError, subprocess.SubprocessError) as err:
        failed = True
        print(f"bench: broke: {err}", file=sys.stderr, flush=True)
    finally:
        progress("stopping the homelab")
        lab.down()
        if leftovers := stop_leftovers(root):
            progress(f"stopped {len(leftovers)} leftover process(es): {leftovers}")
        if args.keep:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    bench.report(number, progress.elapsed())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
