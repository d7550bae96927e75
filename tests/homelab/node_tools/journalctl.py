"""`journalctl` on a homelab node: k3s's log, as `journalctl -u k3s[-agent]` shows it.

Supported: -u/--unit, -n/--lines, -o cat; paging and explanation flags (--no-pager, -e, -x,
-b, -q, --since) are accepted and change nothing.
"""

from __future__ import annotations

from tests.homelab.node_tools.common import Node, run_tool
from tests.homelab.node_tools.systemctl import journal_lines


def main(argv: list[str]) -> int:
    node = Node.from_env()
    units: list[str] = []
    count: int | None = None
    cat = False
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-u", "--unit") and args:
            units.append(args.pop(0))
        elif arg.startswith("--unit="):
            units.append(arg.split("=", 1)[1])
        elif arg.startswith("-u") and len(arg) > 2:
            units.append(arg[2:])
        elif arg in ("-n", "--lines") and args:
            count = int(args.pop(0))
        elif arg.startswith("--lines="):
            count = int(arg.split("=", 1)[1])
        elif arg.startswith("-n") and arg[2:].isdigit():
            count = int(arg[2:])
        elif arg in ("-o", "--output") and args:
            cat = args.pop(0) == "cat"
        elif arg.startswith("-") and "u" in arg[1:] and not arg.startswith("--"):
            # combined short flags such as -xeu UNIT
            if args:
                units.append(args.pop(0))
        elif arg == "--since" and args:
            args.pop(0)
    own = node.info.unit
    if units and not any(u.removesuffix(".service") == own for u in units):
        print("-- No entries --")
        return 0
    lines = journal_lines(node, count)
    if not lines:
        print("-- No entries --")
        return 0
    for line in lines:
        print(line.split(": ", 1)[1] if cat else line)
    return 0


if __name__ == "__main__":
    run_tool(main)
