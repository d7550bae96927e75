"""A Sonatype Nexus Repository 3 double: its REST API and docker connectors, held to the
request and response models of `nexus_api_client` (Sonatype's OpenAPI).

Run it with `python -m tests.homelab.nexus_double --host 127.N.0.1 --state-dir DIR
--admin-password-file FILE`, or from tests with `NexusDoubleProcess`.
"""

from tests.homelab.nexus_double.controller import (
    NexusDoubleError,
    NexusDoubleProcess,
    stop_pidfile,
)

__all__ = ["NexusDoubleError", "NexusDoubleProcess", "stop_pidfile"]
