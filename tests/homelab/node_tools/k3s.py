"""`k3s` on a homelab node: the multi-call binary's client applets (crictl, kubectl, ctr) and -v."""

from __future__ import annotations

import os
import sys

from tests.homelab.node_tools import crictl, ctr, kubectl
from tests.homelab.node_tools.common import GO_VERSION, K3S_COMMIT, K3S_VERSION, LOCAL_BIN, Node, run_tool

APPLETS = {"crictl": crictl.main, "kubectl": kubectl.main, "ctr": ctr.main}
REAL_APPLETS = ("crictl", "ctr")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-v", "--version", "version"):
        print(f"k3s version {K3S_VERSION} ({K3S_COMMIT})\ngo version {GO_VERSION}")
        return 0
    applet, rest = argv[0], argv[1:]
    if applet in REAL_APPLETS and Node.from_env().info.containerd == "real":
        # the node's real crictl/ctr, set up for k3s's containerd as k3s's own applets are
        os.execv(f"/{LOCAL_BIN}/{applet}", [applet, *rest])
    if applet in APPLETS:
        return APPLETS[applet](rest)
    if applet in ("server", "agent"):
        print(f"homelab stand-in: k3s {applet} runs under systemd here; use systemctl", file=sys.stderr)
        return 1
    print(f"homelab stand-in: k3s {applet} is not modelled", file=sys.stderr)
    return 1


if __name__ == "__main__":
    run_tool(main)
