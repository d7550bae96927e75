"""Nexus docker-mirror cutover, as the runbook does it, stage by stage.

The stack setting `stage` says how far the cutover goes; each stage's resources depend on
the previous stage's checks. Lowering `stage` and running `pulumi up` undoes later stages.
"""

import pulumi

from components.nexus_repos import NexusRepos
from components.node_mirrors import NodeMirrors
from components.settings import NODES_STAGE, STAGES, SettingsError, read_stack_secrets, read_stack_settings

try:
    settings = read_stack_settings()
except SettingsError as err:
    # RunError is shown as a plain message, without a Python traceback.
    raise pulumi.RunError(str(err)) from None
secrets = read_stack_secrets()
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

# Step 3 — cut over the k3s registry mirror, one node at a time, each verified.
if settings.stage >= NODES_STAGE:
    registries = sorted(settings.mirror.legacy_endpoints)
    step3 = NodeMirrors(
        "step3",
        settings,
        secrets["pullPassword"],
        step1.canaries(registries),
        opts=pulumi.ResourceOptions(depends_on=[step1.check, step1.push_check]),
    )
    pulumi.export("nodes", step3.summary())
