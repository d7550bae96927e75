"""Runbook Step 5: the legacy cache may be retired only when nothing needs it any more.

The guard is checked at preview: every node verified on Nexus, and no line in the topology
file or the configured docs still names the legacy host or CT113. This program never
destroys the LXC itself; it hands the operator the runbook's decommission checklist.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.settings import Settings
from providers.legacy_references import RetirementGuard

DECOMMISSION_CHECKLIST = (
    "pct stop 113 on the Proxmox host; keep it stopped, not destroyed, until a few days of "
    "pulls and CI builds have gone through Nexus",
    "pct destroy 113 (the LXC and its cache volume)",
    "delete ops/infra/install_registry_cache.sh and its test",
    "align the docs to the single Nexus cache plane (operations/docker-cache, "
    "current-stack-IA, requirements, manual-ko)",
    "pip: point uv/pip at the pypi-group index (output packageMirrors); decommission the pip-cache LXC",
    "apt: point sources at apt-debian (output packageMirrors); decommission the apt-cacher LXC",
)


class Retirement(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        settings: Settings,
        node_states: dict[str, pulumi.Output[dict[str, Any]]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("nexus-cutover:step5:Retirement", name, None, opts)
        self.guard = RetirementGuard(
            "retirement-guard",
            settings.retirement.scan_paths,
            settings.retirement.patterns,
            node_states,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.checklist = self.guard.clean.apply(lambda _: list(DECOMMISSION_CHECKLIST))
        self.register_outputs({})
