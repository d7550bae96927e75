"""Where each homelab part listens. Loopback only: lab N lives in 127.N.0.0/16.

Several labs can run at once (the `make testbed-up` lab and the ones tests start), each
in its own slice of 127.0.0.0/8, so every part can keep the port the runbook names.
"""

from __future__ import annotations

from dataclasses import dataclass

TESTBED_LAB = 20  # `make testbed-up`; test labs use 21 and up


@dataclass(frozen=True)
class LabAddresses:
    lab: int

    def _ip(self, third: int, fourth: int) -> str:
        if not 1 <= self.lab <= 254:
            raise ValueError(f"lab number {self.lab} must be 1-254 (127.N.0.0/16)")
        return f"127.{self.lab}.{third}.{fourth}"

    @property
    def nexus(self) -> str:
        """Nexus double: REST on :8081, docker connectors on each repo's httpPort."""
        return self._ip(0, 1)

    @property
    def upstream_dockerhub(self) -> str:
        """Stands in for registry-1.docker.io (docker-registry on :5000)."""
        return self._ip(0, 2)

    @property
    def upstream_ghcr(self) -> str:
        """Stands in for ghcr.io (docker-registry on :5000)."""
        return self._ip(0, 3)

    @property
    def legacy_cache(self) -> str:
        """Stands in for CT113 10.10.10.150: :5000 docker.io proxy, :5001 build cache, :5002 ghcr proxy."""
        return self._ip(0, 4)

    @property
    def node_port(self) -> str:
        """Where the nodes reach the NodePort (kube-proxy stand-in on :30083)."""
        return self._ip(0, 5)

    @property
    def kube_api(self) -> str:
        """Kubernetes API server (kube-apiserver :6443, its etcd :2379/:2380); see kube.py."""
        return self._ip(0, 6)

    def node(self, index: int) -> str:
        """SSH address (:22) of the index-th node (0-based)."""
        return self._ip(1, 10 + index)

    def all_hosts(self, nodes: int = 6) -> list[str]:
        """Every address of the lab: for NO_PROXY lists, which take addresses, not ranges."""
        parts = [self.nexus, self.upstream_dockerhub, self.upstream_ghcr, self.legacy_cache]
        parts += [self.node_port, self.kube_api]
        return parts + [self.node(i) for i in range(nodes)]
