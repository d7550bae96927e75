"""`systemctl` on a homelab node: the node's own k3s unit, as systemd runs it.

Supported: restart | start | stop | try-restart (optionally --no-block), is-active,
is-failed, is-enabled, status, show (-p/--property, --value), daemon-reload. The node has
exactly one unit: k3s.service on a server, k3s-agent.service on an agent; any other unit
is "not found", with systemctl's exit codes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.homelab.node_tools import unit
from tests.homelab.node_tools.common import K3S_LOG, SSHD_PID, Node, run_tool

EXIT_NOT_ACTIVE = 3
EXIT_STATUS_NO_UNIT = 4
EXIT_NO_UNIT = 5
ACTIONS = ("restart", "start", "stop", "try-restart")


def _unit_name(name: str) -> str:
    return name if "." in name else f"{name}.service"


def _own_unit(node: Node) -> str:
    return f"{node.info.unit}.service"


def _stamp(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%a %Y-%m-%d %H:%M:%S UTC")


def _ago(at: float | None) -> str:
    if at is None:
        return ""
    seconds = max(0, int(time.time() - at))
    if seconds < 60:
        return f"{seconds}s ago"
    return f"{seconds // 60}min {seconds % 60}s ago"


def _active_line(state: dict[str, Any]) -> str:
    active, sub, result = state["active"], state["sub"], state["result"]
    text = f"{active} ({sub})"
    if result != "success" and active != "active":
        text += f" (Result: {result})"
    if state.get("since"):
        text += f" since {_stamp(state['since'])}; {_ago(state['since'])}"
    return text


def journal_lines(node: Node, count: int | None = None) -> list[str]:
    """k3s's log as journalctl shows it (node name and the k3s process as the source)."""
    try:
        lines = node.path(K3S_LOG).read_text().splitlines()
    except FileNotFoundError:
        return []
    if count is not None:
        lines = lines[-count:] if count > 0 else []
    host = node.info.name
    out = []
    for line in lines:
        stamp = ""
        if line.startswith('time="'):
            raw = line[6:].split('"', 1)[0]
            try:
                stamp = datetime.fromisoformat(raw.replace("Z", "+00:00")).strftime("%b %d %H:%M:%S")
            except ValueError:
                stamp = raw
        out.append(f"{stamp} {host} k3s[{node.info.vmid}]: {line}")
    return out


def _status(node: Node, name: str) -> int:
    if name != _own_unit(node):
        print(f"Unit {name} could not be found.", file=sys.stderr)
        return EXIT_STATUS_NO_UNIT
    state = unit.current(node)
    print(f"\u25cf {name} - Lightweight Kubernetes")
    print(f"     Loaded: loaded (/etc/systemd/system/{name}; enabled; preset: enabled)")
    print(f"     Active: {_active_line(state)}")
    print("       Docs: https://k3s.io")
    if state.get("main_pid"):
        print(f"   Main PID: {state['main_pid']} ({node.info.unit})")
    if state["sub"] == "auto-restart":
        print(f"    Process: ExecStart=/usr/local/bin/k3s {node.info.role} (code=exited, status=1/FAILURE)")
    lines = journal_lines(node, 10)
    if lines:
        print()
        print("\n".join(lines))
    return 0 if state["active"] == "active" else EXIT_NOT_ACTIVE


def _show(node: Node, name: str, properties: list[str], value_only: bool) -> int:
    own = name == _own_unit(node)
    state = unit.current(node) if own else unit.load_state(node) | {"active": "inactive", "sub": "dead"}
    values = {
        "Id": name,
        "LoadState": "loaded" if own else "not-found",
        "ActiveState": state["active"],
        "SubState": state["sub"],
        "Result": state["result"],
        "NRestarts": str(state.get("n_restarts") or 0),
        "MainPID": str(state.get("main_pid") or 0),
        "UnitFileState": "enabled" if own else "",
        "Restart": "always" if node.info.crash_loop else "no",
        "RestartUSec": f"{node.info.restart_sec:g}s",
        "Type": "notify",
    }
    for key in properties or list(values):
        value = values.get(key, "")
        print(value if value_only else f"{key}={value}")
    return 0


def _drop_ssh_connection(node: Node) -> None:
    """ssh-drop: kill the sshd processes of the session that ran us (not the listener)."""
    try:
        listener = int(node.path(SSHD_PID).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        listener = -1
    victims = []
    pid = os.getppid()
    while pid > 1 and pid != listener:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ValueError, IndexError):
            break
        if comm == "sshd":
            victims.append(pid)
        pid = parent
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def hang_seconds(value: Any) -> float:
    """The restart-hangs switch: a number of seconds; a bare "on" hangs 30 s."""
    if value is None or value is False:
        return 0.0
    if value is True:
        return 30.0
    return float(value)


def _act(node: Node, action: str, name: str) -> int:
    if name != _own_unit(node):
        print(f"Failed to {action} {name}: Unit {name} not found.", file=sys.stderr)
        return EXIT_NO_UNIT
    if action == "stop":
        unit.stop(node)
        return 0
    if action == "try-restart" and unit.current(node)["active"] not in ("active", "activating"):
        return 0
    if action == "start":
        error = unit.start(node)
    else:
        error = unit.restart(node, hang_seconds(node.fault("restart-hangs")))
    if action != "start" and node.consume_fault("ssh-drop"):
        _drop_ssh_connection(node)
    if error is not None:
        print(
            f"Job for {name} failed because the control process exited with error code.\n"
            f'See "systemctl status {name}" and "journalctl -xeu {name}" for details.',
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str]) -> int:
    # The job goes on if the client goes away (systemd would finish it): no SIGHUP death.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    node = Node.from_env()
    options = [a for a in argv if a.startswith("-")]
    words = [a for a in argv if not a.startswith("-")]
    quiet = "-q" in options or "--quiet" in options
    no_block = "--no-block" in options
    properties: list[str] = []
    for index, arg in enumerate(argv):
        if arg.startswith("--property="):
            properties += arg.split("=", 1)[1].split(",")
        elif arg in ("-p", "--property") and index + 1 < len(argv):
            properties += argv[index + 1].split(",")
            if argv[index + 1] in words:
                words.remove(argv[index + 1])
    if not words:
        print("homelab stand-in: systemctl needs a command", file=sys.stderr)
        return 1
    command, names = words[0], [_unit_name(n) for n in words[1:]]
    if command == "daemon-reload":
        return 0
    if not names:
        print(f"Too few arguments for {command}.", file=sys.stderr)
        return 1
    if command in ACTIONS:
        if no_block and os.fork() != 0:
            return 0  # the job runs on in a detached child, as systemd's would
        if no_block:
            os.setsid()
        return max(_act(node, command, name) for name in names)
    if command in ("is-active", "is-failed"):
        codes = []
        for name in names:
            state = unit.current(node)["active"] if name == _own_unit(node) else "inactive"
            if not quiet:
                print(state)
            wanted = "active" if command == "is-active" else "failed"
            codes.append(0 if state == wanted else (EXIT_NOT_ACTIVE if command == "is-active" else 1))
        return min(codes)
    if command == "is-enabled":
        known = all(name == _own_unit(node) for name in names)
        if not quiet:
            print("enabled" if known else "not-found")
        return 0 if known else 1
    if command == "status":
        return max(_status(node, name) for name in names)
    if command == "show":
        return max(_show(node, name, properties, "--value" in options) for name in names)
    print(f"homelab stand-in: systemctl {command} is not modelled", file=sys.stderr)
    return 1


if __name__ == "__main__":
    run_tool(main)
