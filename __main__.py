"""Nexus docker-mirror cutover, as the runbook does it, stage by stage.

The stack setting `stage` says how far the cutover goes; each stage's resources depend on
the previous stage's checks. Lowering `stage` and running `pulumi up` undoes later stages.
"""

import pulumi

from components.settings import STAGES, SettingsError, read_stack_settings

try:
    settings = read_stack_settings()
except SettingsError as err:
    # RunError is shown as a plain message, without a Python traceback.
    raise pulumi.RunError(str(err)) from None

pulumi.export("stage", f"{settings.stage} ({STAGES[settings.stage]})")
pulumi.export("nodes", [node.name for node in settings.nodes])
