"""Runbook Step 4: repoint the build cache and image prefixes in the topology file.

Only the configured values change (comments, key order and quoting stay as written); the
previous text of each value is kept in state, so lowering the stage writes it back byte
for byte. Runs after Step 1's push check proved the CI credentials can push to
docker-internal, and after every node's Step 3 resource.
"""

from __future__ import annotations

import pulumi

from components.settings import Settings
from providers.topology import TopologyEdit


class BuildCache(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("nexus-cutover:step4:BuildCache", name, None, opts)
        self.topology = TopologyEdit(
            "topology",
            settings.topology.path,
            dict(settings.topology.edits),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
