"""`make demo`: until the homelab lands, runs the smoke program's whole lifecycle offline."""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.engine.harness import can_isolate_network, missing_binaries, offline_env, run_isolated


def main() -> None:
    if missing := missing_binaries():
        raise SystemExit(f"missing toolchain binaries {missing}: run make setup")
    if not can_isolate_network():
        raise SystemExit("the demo runs the engine in a network namespace: run it as root (unshare --net)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nexus-cutover-demo-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, **offline_env(workdir / "outer")}
        ran = run_isolated([sys.executable, "-m", "tests.engine.smoke", tmp], env, timeout=600)
        if ran.returncode != 0:
            raise SystemExit(f"smoke lifecycle failed:\n{ran.stdout[-4000:]}\n{ran.stderr[-4000:]}")
        report = json.loads((workdir / "report.json").read_text())
    print("smoke program, real engine, in a network namespace with only loopback:")
    print(f"  preview          : {report['preview']}")
    print(f"  up               : {report['up']}")
    print(f"  preview again    : {report['second_preview']}  (no changes expected)")
    print(f"  refresh          : {report['refresh']}")
    print(f"  destroy          : {report['destroy']}")
    print(f"  topology restored: {report['topology_after_destroy'] == report['topology_before']}")
    print("  history (newest first):")
    for entry in report["history"]:
        print(f"    {entry['kind']:8} {entry['result']}")
    print(f"demo finished in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
