"""Runbook Step 2: expose docker-group on every node (NodePort 30083 -> 8083).

pulumi-kubernetes owns two Services beside the platform's own `nexus` Service (8081),
which it leaves alone: a ClusterIP Service with the connector ports (8082 docker-internal
for the build cache, 8083 docker-group) and a NodePort Service for the group. (Patching
ports into `nexus` instead would fight its owner, the platform manifests, and
pulumi-kubernetes 4.25 diffs patched lists by index: a change on every preview.)
Then, from every node, the NodePort must answer as a registry before any node changes.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.node_mirrors import node_input
from components.settings import Settings
from providers.k3s_node.provider import ExposureCheck


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
        # A Service's only dependents are endpoint slices, which their controller removes:
        # deleting in the background saves waiting on them (and works without controllers).
        annotations = {"pulumi.com/deletionPropagationPolicy": "background"}
        if exposure.skip_await:
            annotations["pulumi.com/skipAwait"] = "true"

        def service(name: str, kind: str, ports: list[dict[str, Any]]) -> k8s.core.v1.Service:
            metadata = {"namespace": exposure.namespace, "name": name, "annotations": annotations}
            spec = {"type": kind, "selector": dict(exposure.selector), "ports": ports}
            return k8s.core.v1.Service(name, metadata=metadata, spec=spec, opts=on_cluster)

        def port(name: str, number: int, **extra: int) -> dict[str, Any]:
            return {"name": name, "port": number, "targetPort": number, "protocol": "TCP", **extra}

        # In the cluster: docker-internal for CI's build cache, and the group.
        self.connector_ports = service(
            exposure.connector_service,
            "ClusterIP",
            [port(settings.push_repo, hosted_port), port(settings.pull_repo, group_port)],
        )
        # On every node: the group at the NodePort the nodes' registries.yaml names.
        self.node_port = service(
            exposure.node_port_service,
            "NodePort",
            [port(settings.pull_repo, group_port, nodePort=exposure.node_port)],
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
