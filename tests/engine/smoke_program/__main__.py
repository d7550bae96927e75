"""Smoke program: one dynamic-provider resource of ours and one pulumi-kubernetes resource."""

import pulumi
import pulumi_kubernetes as k8s

from providers.topology import TopologyEdit

config = pulumi.Config()

topology = TopologyEdit(
    "buildcache-ref",
    path=config.require("topologyPath"),
    edits={"registry_cache.buildcache_ref": "nexus.nexus.svc:8082/fractalops/buildcache"},
)

renderer = k8s.Provider("render", render_yaml_to_directory=config.require("renderDir"))
service = k8s.core.v1.Service(
    "nexus-docker-group",
    metadata={"name": "nexus-docker-group", "namespace": "nexus"},
    spec={
        "type": "NodePort",
        "selector": {"app": "nexus"},
        "ports": [{"name": "docker-group", "port": 8083, "targetPort": 8083, "nodePort": 30083}],
    },
    opts=pulumi.ResourceOptions(provider=renderer),
)

pulumi.export("topologySha256", topology.sha256)
pulumi.export("topologyUrn", topology.urn)
pulumi.export("serviceName", service.metadata["name"])
