"""`kubectl` (as `k3s kubectl`) on a homelab node: enough of the API for node readiness checks.

The cluster is every node of the lab (lab_root/nodes/*); a node is Ready while its k3s unit
is active. As on k3s, only servers have a kubeconfig (/etc/rancher/k3s/k3s.yaml, pointing at
their own 127.0.0.1:6443): on an agent, or while the server's own k3s is down, kubectl
cannot reach an API server. Supported: get node(s) [NAME...] [-o wide|json|name|
jsonpath=...] [--no-headers]; wait --for=condition=Ready node/NAME [--timeout=30s].
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from tests.homelab.node_tools import unit
from tests.homelab.node_tools.common import (
    KUBECONFIG,
    KUBERNETES_VERSION,
    RANCHER_ETC,
    Node,
    lab_nodes,
    run_tool,
)

API_DOWN_LOCAL = (
    "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?"
)
NO_KUBECONFIG = (
    "E0000 00:00:00.000000    1 memcache.go:265] couldn't get current server API group list: Get "
    '"http://localhost:8080/api?timeout=32s": dial tcp [::1]:8080: connect: connection refused\n'
    "The connection to the server localhost:8080 was refused - did you specify the right host or port?"
)


def _api_problem(node: Node) -> str | None:
    explicit = os.environ.get("KUBECONFIG")
    if explicit and not explicit.lstrip("/").startswith(RANCHER_ETC):
        has_config = Path(explicit).exists()  # a path outside the node root's bind mounts
    else:
        has_config = node.path(explicit or KUBECONFIG).exists()
    if not has_config:
        return NO_KUBECONFIG
    if node.info.role != "server" or not unit.is_active(node):
        return API_DOWN_LOCAL
    return None


def _age(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def node_object(member: Node) -> dict[str, Any]:
    info = member.info
    ready = unit.current(member)["active"] == "active"
    server = info.role == "server"
    labels = {"kubernetes.io/hostname": info.name, "kubernetes.io/os": "linux"}
    if server:
        labels |= {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"}
    condition = (
        {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
        }
        if ready
        else {
            "type": "Ready",
            "status": "Unknown",
            "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
        }
    )
    created = member.path("etc/homelab/node.json").stat().st_mtime
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": info.name, "labels": labels, "creationTimestamp": created},
        "status": {
            "conditions": [condition],
            "addresses": [
                {"type": "InternalIP", "address": info.address},
                {"type": "Hostname", "address": info.name},
            ],
            "nodeInfo": {
                "kubeletVersion": KUBERNETES_VERSION,
                "containerRuntimeVersion": "containerd://1.7.22-k3s1",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
            },
        },
    }


def _status(obj: dict[str, Any]) -> str:
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    return "Ready" if ready["status"] == "True" else "NotReady"


def _roles(obj: dict[str, Any]) -> str:
    roles = sorted(
        k.split("/", 1)[1] for k in obj["metadata"]["labels"] if k.startswith("node-role.kubernetes.io/")
    )
    return ",".join(roles) or "<none>"


def jsonpath(obj: Any, expression: str) -> str:
    """The jsonpath subset readiness checks use: {.a.b}, [N], [*], [?(@.k=="v")]."""
    results = []
    for template in re.findall(r"\{([^}]*)\}", expression) or [expression]:
        values = [obj]
        for step in re.findall(r"\.([\w-]+)|\[([^\]]*)\]", template):
            key, bracket = step
            nxt: list[Any] = []
            for value in values:
                if key:
                    if isinstance(value, dict) and key in value:
                        nxt.append(value[key])
                elif bracket == "*" and isinstance(value, list):
                    nxt.extend(value)
                elif bracket.isdigit() and isinstance(value, list) and int(bracket) < len(value):
                    nxt.append(value[int(bracket)])
                elif bracket.startswith("?(@.") and isinstance(value, list):
                    field, wanted = re.match(r'\?\(@\.([\w-]+)==["\']?([^"\')]*)["\']?\)', bracket).groups()
                    nxt.extend(v for v in value if isinstance(v, dict) and str(v.get(field)) == wanted)
            values = nxt
        results.append(" ".join(v if isinstance(v, str) else json.dumps(v) for v in values))
    return "".join(results)


def _get(node: Node, args: list[str]) -> int:
    output, no_headers, names = "", False, []
    kinds = ("node", "nodes", "no")
    while args:
        arg = args.pop(0)
        if arg in ("-o", "--output") and args:
            output = args.pop(0)
        elif arg.startswith(("-o", "--output=")):
            output = arg.split("=", 1)[1] if arg.startswith("--output=") else arg[2:].lstrip("=")
        elif arg == "--no-headers":
            no_headers = True
        elif not arg.startswith("-"):
            names.append(arg)
    if not names or names[0].split("/")[0] not in kinds:
        print(
            f"homelab stand-in: kubectl get {' '.join(names)} is not modelled (nodes only)", file=sys.stderr
        )
        return 2
    first = names.pop(0)
    if "/" in first:
        names.insert(0, first.split("/", 1)[1])
    members = {m.info.name: m for m in lab_nodes(node.info.lab_root)}
    objects = []
    for name in names or list(members):
        if name not in members:
            print(f'Error from server (NotFound): nodes "{name}" not found', file=sys.stderr)
            return 1
        objects.append(node_object(members[name]))
    if output == "json":
        body = objects[0] if len(names) == 1 else {"apiVersion": "v1", "kind": "List", "items": objects}
        print(json.dumps(body, indent=4))
    elif output == "name":
        print("\n".join(f"node/{o['metadata']['name']}" for o in objects))
    elif output.startswith("jsonpath="):
        target: Any = objects[0] if len(names) == 1 else {"items": objects}
        print(jsonpath(target, output.split("=", 1)[1].strip("'\"")), end="")
    elif output in ("", "wide"):
        header = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"] + (["INTERNAL-IP"] if output else [])
        rows = [] if no_headers else [header]
        for o in objects:
            age = _age(time.time() - o["metadata"]["creationTimestamp"])
            row = [o["metadata"]["name"], _status(o), _roles(o), age, KUBERNETES_VERSION]
            if output:
                row.append(o["status"]["addresses"][0]["address"])
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
        for row in rows:
            print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    else:
        print(f"homelab stand-in: output {output!r} is not modelled", file=sys.stderr)
        return 2
    return 0


def _timeout(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not match:
        raise ValueError(text)
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match[2]]
    return float(match[1]) * factor


def _wait(node: Node, args: list[str]) -> int:
    condition, timeout, targets = "", 30.0, []
    while args:
        arg = args.pop(0)
        if arg.startswith("--for="):
            condition = arg.split("=", 1)[1]
        elif arg == "--for" and args:
            condition = args.pop(0)
        elif arg.startswith("--timeout="):
            timeout = _timeout(arg.split("=", 1)[1])
        elif arg == "--timeout" and args:
            timeout = _timeout(args.pop(0))
        elif not arg.startswith("-"):
            targets.append(arg)
    if condition.lower() != "condition=ready":
        print(f"homelab stand-in: kubectl wait --for={condition} is not modelled", file=sys.stderr)
        return 2
    if targets and targets[0] in ("node", "nodes", "no"):
        targets = targets[1:]
    names = [t.split("/", 1)[1] if "/" in t else t for t in targets]
    members = {m.info.name: m for m in lab_nodes(node.info.lab_root)}
    for name in names:
        if name not in members:
            print(f'Error from server (NotFound): nodes "{name}" not found', file=sys.stderr)
            return 1
    deadline = time.monotonic() + timeout
    pending = list(names)
    while True:
        pending = [n for n in pending if _status(node_object(members[n])) != "Ready"]
        for name in names:
            if name not in pending:
                print(f"node/{name} condition met")
        names = [n for n in names if n in pending]
        if not pending:
            return 0
        if time.monotonic() >= deadline:
            print(f"error: timed out waiting for the condition on nodes/{pending[0]}", file=sys.stderr)
            return 1
        time.sleep(0.2)


def main(argv: list[str]) -> int:
    node = Node.from_env()
    args = [a for a in argv if a not in ("--kubeconfig",)]
    words = [a for a in args if not a.startswith("-")]
    if not words:
        print("homelab stand-in: kubectl needs a command", file=sys.stderr)
        return 1
    command = words[0]
    if command not in ("get", "wait"):
        print(f"homelab stand-in: kubectl {command} is not modelled", file=sys.stderr)
        return 2
    problem = _api_problem(node)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    rest = list(args)
    rest.remove(command)
    return _get(node, rest) if command == "get" else _wait(node, rest)


if __name__ == "__main__":
    run_tool(main)
