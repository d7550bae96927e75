"""Nexus docker-mirror cutover, as the runbook does it, stage by stage.

The stack setting `stage` says how far the cutover goes; each stage's resources depend on
the previous stage's checks. Lowering `stage` and running `pulumi up` undoes later stages
(nodes restored, topology reverted); the Nexus repos of Step 1 stay.
"""

import pulumi

from components.build_cache import BuildCache
from components.exposure import Exposure
from components.nexus_repos import NexusRepos, package_mirrors
from components.node_mirrors import NodeMirrors
from components.retirement import Retirement
from components.settings import (
    BUILD_CACHE_STAGE,
    EXPOSURE_STAGE,
    NODES_STAGE,
    RETIRED_STAGE,
    STAGES,
    SettingsError,
    read_stack_secrets,
    read_stack_settings,
)

try:
    settings = read_stack_settings()
    secrets = read_stack_secrets()
except SettingsError as err:
    # RunError is shown as a plain message, without a Python traceback.
    raise pulumi.RunError(str(err)) from None
pulumi.export("stage", f"{settings.stage} ({STAGES[settings.stage]})")

# Step 1 — provision the new repos (additive, safe) and check the group serves a pull.
step1 = NexusRepos("step1", settings, secrets)
pulumi.export(
    "step1",
    {
        "repos": list(step1.repos),
        "checkDigest": step1.check.digest,
        "checkAuthScheme": step1.check.authScheme,
        "canaryTag": step1.push_check.tag,
    },
)
# The runbook's "later" bullets: how pip/uv and apt clients use the new repos.
pulumi.export("packageMirrors", package_mirrors(settings))

# Step 2 — expose docker-group on every node (NodePort), checked from each node.
if settings.stage >= EXPOSURE_STAGE:
    step2 = Exposure(
        "step2",
        settings,
        secrets["pullPassword"],
        opts=pulumi.ResourceOptions(depends_on=[step1.check, step1.push_check]),
    )
    pulumi.export("step2", {"nodePort": step2.node_port.spec.ports[0].node_port})

# Step 3 — cut over the k3s registry mirror, one node at a time, each verified.
if settings.stage >= NODES_STAGE:
    step3 = NodeMirrors(
        "step3",
        settings,
        secrets["pullPassword"],
        step1.canaries(sorted(settings.mirror.legacy_endpoints)),
        opts=pulumi.ResourceOptions(depends_on=[step1.check, step1.push_check, *step2.gate]),
    )
    pulumi.export("nodes", step3.summary())

# Step 4 — repoint the build cache and image prefixes in the topology file.
if settings.stage >= BUILD_CACHE_STAGE:
    step4 = BuildCache(
        "step4",
        settings,
        opts=pulumi.ResourceOptions(depends_on=[step1.push_check, *step3.nodes.values()]),
    )
    pulumi.export("buildCache", step4.topology.current)

# Step 5 — retire the legacy cache: only when nothing needs it any more.
if settings.stage >= RETIRED_STAGE:
    step5 = Retirement(
        "step5",
        settings,
        step3.summary(),
        opts=pulumi.ResourceOptions(depends_on=[step4.topology]),
    )
    pulumi.export("decommissionChecklist", step5.checklist)
