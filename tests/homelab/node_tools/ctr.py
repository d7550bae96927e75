"""`ctr` (as `k3s ctr`) on a homelab node: `images pull`, which ignores registries.yaml.

ctr talks to containerd directly and does not use the CRI registry configuration: without
--hosts-dir a pull goes straight to the registry's default endpoint, so a ctr pull proves
nothing about the mirrors (the runbook says: test with crictl). Supported:
[-n NS] [-a ADDR] images|image|i pull [--user U:P] [--hosts-dir DIR] [--plain-http] REF.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.homelab.node_tools import unit
from tests.homelab.node_tools.common import RANCHER_ETC, RANCHER_LIB, SOCKET_ABSOLUTE, Node, run_tool
from tests.homelab.node_tools.containerd import PullError, parse_reference, pull


def _node_path(node: Node, path: str) -> Path:
    """A path as the node sees it (tools may also run outside the node's mount namespace)."""
    for prefix in (RANCHER_ETC, RANCHER_LIB):
        if path.lstrip("/").startswith(prefix):
            return node.path(path)
    return Path(path)


def main(argv: list[str]) -> int:
    node = Node.from_env()
    args = list(argv)
    address = SOCKET_ABSOLUTE
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("-n", "--namespace", "-a", "--address") and args:
            value = args.pop(0)
            if flag in ("-a", "--address"):
                address = value
    if len(args) < 2 or args[0] not in ("images", "image", "i") or args[1] != "pull":
        print(f"homelab stand-in: ctr {' '.join(args)} is not modelled (images pull only)", file=sys.stderr)
        return 1
    if address != SOCKET_ABSOLUTE or not unit.is_active(node):
        print(
            f'ctr: failed to dial "{address}": connection error: desc = "transport: error while '
            f'dialing: dial unix://{address}: connect: no such file or directory"',
            file=sys.stderr,
        )
        return 1
    rest = args[2:]
    creds: tuple[str, str] | None = None
    hosts_dir: Path | None = None
    refs = []
    while rest:
        arg = rest.pop(0)
        if arg in ("--user", "-u") and rest:
            user, _, password = rest.pop(0).partition(":")
            creds = (user, password)
        elif arg == "--hosts-dir" and rest:
            hosts_dir = _node_path(node, rest.pop(0))
        elif arg.startswith("--hosts-dir="):
            hosts_dir = _node_path(node, arg.split("=", 1)[1])
        elif arg == "--platform" and rest:
            rest.pop(0)
        elif not arg.startswith("-"):
            refs.append(arg)
    if len(refs) != 1:
        print("ctr: image ref must be provided", file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        ref = parse_reference(refs[0], normalize=False)
        result = pull(node, ref, hosts_dir, creds, tool="ctr")
    except PullError as exc:
        print(f"ctr: {exc}", file=sys.stderr)
        return 1
    print(f"{ref}: resolved")
    print(f"manifest-{result.digest}: done")
    print(f"unpacking linux/amd64 {result.digest}...")
    print(f"done: {time.monotonic() - started:.3f}s")
    return 0


if __name__ == "__main__":
    run_tool(main)
