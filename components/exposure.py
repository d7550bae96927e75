"""Runbook Step 2: expose docker-group on every node (NodePort 30083 -> 8083).

pulumi-kubernetes owns two objects: the connector ports (8082 docker-internal for the
build cache, 8083 docker-group) added to the existing Nexus Service by a server-side-apply
patch that removes only its own fields when undone, and a NodePort Service for the group.
Then, from every node, the NodePort must answer as a registry before any node changes.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.node_mirrors import node_input
from components.settings import Settings
from providers.k3s_node.provider import ExposureCheck

FIELD_MANAGER = "nexus-cutover"


class Exposure(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        settings: Settings,
        pull_password: pulumi.Output[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("nexus-cutover:step2:Exposure", name, None, opts)
        exposure = settings.exposure
        group_port = settings.repo(settings.pull_repo).spec["httpPort"]
        hosted_port = settings.repo(settings.push_repo).spec["httpPort"]
        provider_args: dict[str, Any] = {}
        if exposure.render_dir:
            provider_args["render_yaml_to_directory"] = exposure.render_dir
        if exposure.kubeconfig:
            provider_args["kubeconfig"] = exposure.kubeconfig
        self.provider = k8s.Provider("kubernetes", opts=pulumi.ResourceOptions(parent=self), **provider_args)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=self.provider)
        metadata = {
            "namespace": exposure.namespace,
            "annotations": {"pulumi.com/patchFieldManager": FIELD_MANAGER},
        }

        self.connector_ports = k8s.core.v1.ServicePatch(
            "connector-ports",
            metadata={**metadata, "name": exposure.service},
            spec={
                "ports": [
                    {
                        "name": "docker-internal",
                        "port": hosted_port,
                        "targetPort": hosted_port,
                        "protocol": "TCP",
                    },
                    {"name": "docker-group", "port": group_port, "targetPort": group_port, "protocol": "TCP"},
                ]
            },
            opts=on_cluster,
        )
        self.node_port = k8s.core.v1.Service(
            "node-port",
            metadata={"namespace": exposure.namespace, "name": exposure.node_port_service},
            spec={
                "type": "NodePort",
                "selector": dict(exposure.selector),
                "ports": [
                    {
                        "name": "docker-group",
                        "port": group_port,
                        "targetPort": group_port,
                        "nodePort": exposure.node_port,
                        "protocol": "TCP",
                    }
                ],
            },
            opts=on_cluster,
        )
        checked: list[pulumi.Resource] = [self.connector_ports, self.node_port]
        self.check: ExposureCheck | None = None
        if settings.nodes:
            self.check = ExposureCheck(
                "exposure-check",
                nodes=[node_input(n, settings.ssh_identity_file) for n in settings.nodes],
                endpoint=settings.mirror.nexus_endpoint,
                username=settings.mirror.pull_user,
                password=pull_password,
                opts=pulumi.ResourceOptions(parent=self, depends_on=checked),
            )
        self.register_outputs({})

    @property
    def gate(self) -> list[pulumi.Resource]:
        """What Step 3 must wait for."""
        return [self.connector_ports, self.node_port, *([self.check] if self.check else [])]
