"""Runbook Step 3: each node's registries.yaml on its target, one node at a time.

Nodes change in config order: each node's resource depends on the previous one, so in one
`pulumi up` they go strictly one after another and the first failure stops the rest. A
guard, checked at preview, allows at most `maxNodeChangesPerUp` target changes per update.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.settings import Node, Settings
from providers.k3s_node import model
from providers.k3s_node.provider import NodeRegistries, RolloutGuard


def node_input(node: Node, identity_file: str) -> dict[str, Any]:
    """The plain node description the provider connects with."""
    return {
        "name": node.name,
        "id": node.vmid,
        "host": node.host,
        "port": node.port,
        "user": node.user,
        "hostKey": node.host_key,
        "role": node.role,
        "unit": node.unit,
        "registriesPath": node.registries_path,
        "timeouts": {
            "connect": node.timeouts.connect,
            "command": node.timeouts.command,
            "restart": node.timeouts.restart,
            "pull": node.timeouts.pull,
        },
        "identityFile": identity_file,
    }


class NodeMirrors(pulumi.ComponentResource):
    """Step 3: every node's mirrors, in order, verified, restored on failure."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        pull_password: pulumi.Output[str],
        canaries: pulumi.Output[list[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("nexus-cutover:step3:NodeMirrors", name, None, opts)
        mirror = settings.mirror
        self.guard = RolloutGuard(
            "rollout-guard",
            {n.name: n.target for n in settings.nodes},
            settings.max_node_changes_per_up,
            opts=pulumi.ResourceOptions(parent=self),
        )

        def render(target: str, password: str) -> str:
            legacy, endpoint = mirror.legacy_endpoints, mirror.nexus_endpoint
            return model.render(target, legacy, endpoint, mirror.pull_user, password)

        self.nodes: dict[str, NodeRegistries] = {}
        previous: pulumi.Resource = self.guard
        for node in settings.nodes:
            on_nexus = node.target == "nexus"
            resource = NodeRegistries(
                node.name,
                node_input(node, settings.ssh_identity_file),
                node.target,
                content=pulumi.Output.secret(pull_password).apply(lambda pw, t=node.target: render(t, pw)),
                # The same file with the password masked: what `pulumi preview --diff` shows.
                content_masked=render(node.target, model.MASK),
                verify_image=mirror.verify_image,
                probe={"username": mirror.pull_user, "password": pull_password} if on_nexus else {},
                canaries=canaries if on_nexus else [],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[previous]),
            )
            self.nodes[node.name] = resource
            previous = resource
        self.register_outputs({})

    def summary(self) -> dict[str, pulumi.Output[dict[str, Any]]]:
        """Per node: target, file hash, verified digest, who served it, when. The hash is of
        the file with its password masked: it names the file's version, not a secret."""
        return {
            name: pulumi.Output.all(
                target=r.target,
                fileHash=r.contentMasked.apply(model.sha256),
                verifiedDigest=r.verifiedDigest,
                servedBy=r.servedBy,
                verifiedAt=r.verifiedAt,
            )
            for name, r in self.nodes.items()
        }
