"""The k3s / k3s-agent systemd unit of a node: its state, and what one k3s start does.

The unit is modelled on the one k3s's install script writes: Type=notify (a start returns
when k3s is up), Restart=always with RestartSec=5s, TimeoutStartSec=0 (a hanging start is
waited for forever). A start that fails therefore does not leave the unit "failed": systemd
keeps it "activating (auto-restart)" and retries every RestartSec, each retry reading
registries.yaml again. The retries happen lazily here: whenever a tool looks at the unit,
the attempts that fell due since are carried out first.
"""

from __future__ import annotations

import json
import socket
import time
import tomllib
from typing import Any

from tests.homelab.node_tools import real_containerd
from tests.homelab.node_tools.common import (
    CERTS_D,
    CONTAINERD_CONFIG,
    K3S_COMMIT,
    K3S_VERSION,
    KUBECONFIG,
    REGISTRIES_YAML,
    RUNTIME_CONFIG,
    SOCKET,
    UNIT_STATE,
    Node,
    socket_dir,
    write_private,
)
from tests.homelab.node_tools.k3sconfig import (
    RegistriesError,
    Registry,
    clean_generated_hosts,
    host_configs,
    parse_registries,
    render_config_toml,
    render_hosts_toml,
)

START_SECONDS = 0.2  # how long a healthy k3s takes to report ready to systemd here


def _initial_state() -> dict[str, Any]:
    return {
        "active": "inactive",
        "sub": "dead",
        "result": "success",
        "since": None,
        "main_pid": None,
        "n_restarts": 0,
        "next_attempt": None,
        "error": None,
    }


def load_state(node: Node) -> dict[str, Any]:
    try:
        return {**_initial_state(), **json.loads(node.path(UNIT_STATE).read_text())}
    except (FileNotFoundError, json.JSONDecodeError):
        return _initial_state()


def save_state(node: Node, state: dict[str, Any]) -> None:
    write_private(node.path(UNIT_STATE), json.dumps(state, indent=2, sort_keys=True), mode=0o644)


# -- containerd: running exactly while k3s runs -------------------------------------------


def _start_containerd(node: Node) -> str | None:
    """k3s starts containerd with the config.toml it just wrote; None once it serves."""
    if node.info.containerd == "real":
        return real_containerd.start(node)
    node.path(SOCKET).unlink(missing_ok=True)  # the stand-in: crictl needs the socket to be there
    with socket_dir(node) as name, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(name)
    return None


def _stop_containerd(node: Node) -> None:
    if node.info.containerd == "real":
        real_containerd.stop(node)
    node.path(SOCKET).unlink(missing_ok=True)


# -- one k3s start ------------------------------------------------------------------------


def _load_registry(node: Node) -> Registry | str:
    """The parsed registries.yaml, or the fatal message k3s dies with."""
    try:
        text = node.path(REGISTRIES_YAML).read_text()
    except FileNotFoundError:
        return Registry()  # no file: no mirrors, no fatal
    except OSError as exc:
        return f"failed to read /{REGISTRIES_YAML}: {exc.strerror}"
    node.k3s_log("info", f"Using private registry config file at /{REGISTRIES_YAML}")
    try:
        return parse_registries(text)
    except RegistriesError as exc:
        return f"failed to load private registry configuration from /{REGISTRIES_YAML}: {exc}"


def _write_containerd_config(node: Node, registry: Registry) -> None:
    hosts = host_configs(registry, node.info.disable_default_endpoint, node.k3s_log)
    certs_d = node.path(CERTS_D)
    clean_generated_hosts(certs_d, list(hosts))
    for host, config in hosts.items():
        host_dir = certs_d / host
        host_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(host_dir / "hosts.toml", render_hosts_toml(config))
    real = node.info.containerd == "real"
    config_text = render_config_toml(registry, node.info.address if real else "127.0.0.1")
    write_private(node.path(CONTAINERD_CONFIG), config_text)
    # containerd reads config.toml once, at its start: keep what it read (credentials
    # included, so 0600) for crictl; later edits of config.toml do not count, as on a node.
    cri = tomllib.loads(config_text)["plugins"]["io.containerd.grpc.v1.cri"]["registry"]
    runtime = {
        "started": time.time(),
        "auth": {host: entry.get("auth", {}) for host, entry in (cri.get("configs") or {}).items()},
    }
    write_private(node.path(RUNTIME_CONFIG), json.dumps(runtime))


def _write_kubeconfig(node: Node) -> None:
    """k3s servers write an admin kubeconfig at start (agents have none)."""
    path = node.path(KUBECONFIG)
    if path.exists():
        return
    text = (
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: aG9tZWxhYg==\n"
        "    server: https://127.0.0.1:6443\n  name: default\ncontexts:\n- context:\n"
        "    cluster: default\n    user: default\n  name: default\ncurrent-context: default\n"
        "kind: Config\npreferences: {}\nusers:\n- name: default\n  user:\n"
        "    client-certificate-data: aG9tZWxhYg==\n    client-key-data: aG9tZWxhYg==\n"
    )
    write_private(path, text)


def k3s_start(node: Node) -> str | None:
    """Run one k3s start (caller holds the unit lock); None when up, else the fatal message."""
    info = node.info
    kind = "k3s" if info.role == "server" else "k3s agent"
    node.k3s_log("info", f"Starting {kind} {K3S_VERSION} ({K3S_COMMIT})")
    if node.fault("restart-fails") is not None:
        message = "homelab fault restart-fails: k3s exited before it was ready"
    else:
        loaded = _load_registry(node)
        if isinstance(loaded, str):
            message = loaded
        else:
            _write_containerd_config(node, loaded)
            if info.role == "server":
                _write_kubeconfig(node)
            message = _start_containerd(node)
            if message is None:
                node.k3s_log("info", "containerd is now running")
                node.k3s_log("info", f"{kind} is up and running")
                return None
    node.k3s_log("fatal", message)
    return message


# -- state transitions ----------------------------------------------------------------------


def _fake_pid() -> int:
    return 2000 + int(time.time() * 1000) % 60000


def begin_stop(node: Node, state: dict[str, Any]) -> None:
    _stop_containerd(node)
    state.update(active="deactivating", sub="stop", since=time.time())


def stopped(node: Node, state: dict[str, Any]) -> None:
    _stop_containerd(node)
    state.update(active="inactive", sub="dead", main_pid=None, next_attempt=None, since=time.time())


def begin_start(state: dict[str, Any]) -> None:
    state.update(active="activating", sub="start", since=time.time(), main_pid=_fake_pid(), error=None)


def finish_start(node: Node, state: dict[str, Any], error: str | None) -> None:
    now = time.time()
    if error is None:
        state.update(
            active="active", sub="running", result="success", since=now, next_attempt=None, error=None
        )
        return
    _stop_containerd(node)
    if node.info.crash_loop:
        state.update(
            active="activating",
            sub="auto-restart",
            result="exit-code",
            since=now,
            main_pid=None,
            next_attempt=now + node.info.restart_sec,
            error=error,
        )
    else:
        state.update(active="failed", sub="failed", result="exit-code", since=now, main_pid=None, error=error)


def settle(node: Node, state: dict[str, Any]) -> bool:
    """Carry out the auto-restart that fell due (caller holds the lock); True if state changed."""
    due = state.get("next_attempt")
    if state.get("sub") != "auto-restart" or due is None or time.time() < due:
        return False
    period = max(node.info.restart_sec, 0.05)
    begin_start(state)
    error = k3s_start(node)
    state["n_restarts"] = int(state.get("n_restarts") or 0) + 1
    finish_start(node, state, error)
    if error is not None:
        # Attempts systemd made while nobody looked failed alike (same file, same switches).
        missed = int(max(time.time() - due, 0.0) // period)
        state["n_restarts"] += missed
        state["next_attempt"] = due + (missed + 1) * period
    return True


def current(node: Node) -> dict[str, Any]:
    """The unit's state now, after any due auto-restart."""
    with node.locked():
        state = load_state(node)
        if settle(node, state):
            save_state(node, state)
        return state


def is_active(node: Node) -> bool:
    return current(node)["active"] == "active"


def boot(node: Node) -> dict[str, Any]:
    """The machine boots: systemd starts the enabled unit once (no hang or drop faults)."""
    with node.locked():
        state = {**_initial_state()}
        _stop_containerd(node)
        begin_start(state)
        finish_start(node, state, k3s_start(node))
        save_state(node, state)
        return state


def restart(node: Node, hang_seconds: float = 0.0) -> str | None:
    """`systemctl restart`: stop, start, wait for ready; None or the start's fatal message."""
    with node.locked():
        state = load_state(node)
        begin_stop(node, state)
        begin_start(state)
        save_state(node, state)
    return _complete_start(node, hang_seconds)


def start(node: Node) -> str | None:
    with node.locked():
        state = load_state(node)
        settle(node, state)
        if state["active"] == "active":
            save_state(node, state)
            return None
        begin_start(state)
        save_state(node, state)
    return _complete_start(node)


def _complete_start(node: Node, hang_seconds: float = 0.0) -> str | None:
    """The k3s side of a start begun under the lock: None or the start's fatal message."""
    # Outside the lock, so status queries see "activating" while k3s takes its time.
    if hang_seconds > 0:
        time.sleep(hang_seconds)
    time.sleep(START_SECONDS)
    with node.locked():
        state = load_state(node)
        error = k3s_start(node)
        finish_start(node, state, error)
        save_state(node, state)
    return error


def stop(node: Node) -> None:
    with node.locked():
        state = load_state(node)
        stopped(node, state)
        save_state(node, state)
