"""The smoke program's inputs, shared by its test and by `make demo` until the homelab exists."""

from pathlib import Path

from pulumi import automation as auto

SMOKE_PROGRAM = Path(__file__).parent / "smoke_program"
TOPOLOGY = """\
# human-written; keep this comment
registry_cache:
  buildcache_ref: "10.10.10.150:5001/fractalops/buildcache"   # CT113 build cache
"""


def configure(st: auto.Stack, tmp_path: Path) -> tuple[Path, Path]:
    """Point the smoke stack at a fresh topology file and render folder under `tmp_path`."""
    topology = tmp_path / "topology.yaml"
    topology.write_text(TOPOLOGY)
    render_dir = tmp_path / "rendered"
    st.set_config("topologyPath", auto.ConfigValue(str(topology)))
    st.set_config("renderDir", auto.ConfigValue(str(render_dir)))
    return topology, render_dir
