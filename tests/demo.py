"""`make demo`: until the homelab lands, runs the smoke program's whole lifecycle offline."""

import tempfile
import time
from pathlib import Path

from tests.engine.harness import can_isolate_network, missing_binaries, stack
from tests.engine.smoke import SMOKE_PROGRAM, configure


def main() -> None:
    if missing := missing_binaries():
        raise SystemExit(f"missing toolchain binaries {missing}: run make setup")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nexus-cutover-demo-") as tmp:
        tmp_path = Path(tmp)
        isolated = can_isolate_network()
        with stack(SMOKE_PROGRAM, "demo", tmp_path / "state", isolated=isolated) as st:
            topology, _ = configure(st, tmp_path)
            print(f"smoke program on a throw-away file backend (network namespace: {isolated})")
            print(f"preview  : {st.preview().change_summary}")
            print(f"up       : {st.up().summary.resource_changes}")
            print(f"topology : {topology.read_text().splitlines()[2].strip()}")
            print(f"preview  : {st.preview().change_summary}  (no changes expected)")
            print(f"refresh  : {st.refresh().summary.result}")
            print(f"destroy  : {st.destroy().summary.resource_changes}")
            print(f"topology : {topology.read_text().splitlines()[2].strip()}  (restored)")
            print("history  :")
            for entry in st.history():
                print(
                    f"  #{entry.version} {entry.kind:8} {entry.result:10} {entry.resource_changes}"
                )
    print(f"demo finished in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
