"""A real Kubernetes API server for the homelab: kube-apiserver and its etcd, nothing else.

`KubeApiServer` runs, for lab N, etcd on 127.N.0.6 (:2379 client, :2380 peer) and
kube-apiserver on 127.N.0.6:6443, both built by tools/setup-kube.sh at the versions pinned
in tools/versions. It makes its own PKI (a CA, the serving certificate, a service-account
signing key and a client certificate for an admin in `system:masters`), writes a 0600
kubeconfig for that admin, and creates what the cutover expects to find: the `nexus`
namespace with the `nexus` ClusterIP Service (selector app=nexus, port 8081).

There is no controller-manager, scheduler or kubelet: objects are stored, validated,
defaulted and allocated (ClusterIPs, NodePorts) by the real API server, but nothing acts on
them. The service CIDR 10.43.0.0/16 is configuration only, never contacted.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import shutil
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.homelab.addresses import LabAddresses
from tests.homelab.pki import cert_pem, issue, key_pem, new_key, subject, write_private_bytes
from tests.homelab.processes import Daemon, StartStop, command_line, http_probe, port_open, stop_pid_file

TOOLS_BIN = Path(__file__).resolve().parents[2] / ".tools" / "bin"

API_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
SERVICE_CIDR = "10.43.0.0/16"  # k3s' default; configuration only
SERVICE_NODE_PORT_RANGE = "30000-32767"
ADMIN_USER = "homelab-admin"
ADMIN_GROUP = "system:masters"  # RBAC's superuser group

NEXUS_NAMESPACE = "nexus"
NEXUS_SERVICE = "nexus"
NEXUS_PORT = 8081

ETCD_START_TIMEOUT = 30.0
API_START_TIMEOUT = 90.0  # a cold start on 2 cores takes seconds, not minutes
STOP_TIMEOUT = 10.0


class KubeError(RuntimeError):
    """etcd or kube-apiserver did not start, or the API refused the homelab's own objects."""


# ---------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------


def _daemon(name: str, argv: Sequence[str], state_dir: Path) -> Daemon:
    """etcd or kube-apiserver: log and pid file <name>.log/.pid in the state dir."""
    pid_file, log = state_dir / f"{name}.pid", state_dir / f"{name}.log"
    return Daemon(name, argv, pid_file, log, cwd=state_dir, error=KubeError)


def _etcd_healthy(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.json().get("health") == "true"


def _runs_in(binary: Path, state_dir: Path) -> Callable[[int], bool]:
    """Whether a pid runs `binary` with an argument naming a file in `state_dir`."""
    inside = f"{state_dir}/"  # every daemon names files in its state dir

    def ours(pid: int) -> bool:
        args = command_line(pid)
        return (
            len(args) > 1
            and os.path.basename(args[0]) == binary.name
            and any(inside in argument for argument in args[1:])
        )

    return ours


# ---------------------------------------------------------------------------------------
# The API server
# ---------------------------------------------------------------------------------------

ETCD_DATA = "etcd-data"
PKI = "pki"
KUBECONFIG = "kubeconfig"


def _clean_state_dir(state_dir: Path) -> None:
    """Remove what a stopped server leaves behind but its logs."""
    shutil.rmtree(state_dir / ETCD_DATA, ignore_errors=True)
    shutil.rmtree(state_dir / PKI, ignore_errors=True)
    (state_dir / KUBECONFIG).unlink(missing_ok=True)


class KubeApiServer(StartStop):
    """etcd + kube-apiserver for lab N on 127.N.0.6; all state (PKI, etcd data, logs, pid
    files, kubeconfig) lives in state_dir."""

    ETCD_PID = "etcd.pid"
    API_PID = "kube-apiserver.pid"

    def __init__(self, lab: int, state_dir: Path, bin_dir: Path = TOOLS_BIN) -> None:
        self.lab = lab
        self.host = LabAddresses(lab).kube_api
        self.state_dir = Path(state_dir)
        self.etcd_binary = Path(bin_dir) / "etcd"
        self.apiserver_binary = Path(bin_dir) / "kube-apiserver"
        self._etcd: Daemon | None = None
        self._apiserver: Daemon | None = None
        self._ssl: ssl.SSLContext | None = None
        self.startup_seconds: float | None = None

    def __repr__(self) -> str:
        return f"KubeApiServer(lab {self.lab} {self.url})"

    # -- where things are ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{self.host}:{API_PORT}"

    @property
    def etcd_url(self) -> str:
        return f"http://{self.host}:{ETCD_CLIENT_PORT}"

    @property
    def kubeconfig_path(self) -> Path:
        """kubeconfig (0600) for the admin user, certificates inline; context `homelab-<lab>`."""
        return self.state_dir / KUBECONFIG

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / PKI

    @property
    def ca_path(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def admin_cert_path(self) -> Path:
        return self.pki_dir / "admin.crt"

    @property
    def admin_key_path(self) -> Path:
        return self.pki_dir / "admin.key"

    @property
    def etcd_data_dir(self) -> Path:
        return self.state_dir / ETCD_DATA

    @property
    def etcd_log_path(self) -> Path:
        return self.state_dir / "etcd.log"

    @property
    def apiserver_log_path(self) -> Path:
        return self.state_dir / "kube-apiserver.log"

    @property
    def pids(self) -> dict[str, int]:
        """Pids of the running processes, by name."""
        daemons = (self._etcd, self._apiserver)
        return {d.name: d.pid for d in daemons if d is not None and d.pid is not None and d.is_running()}

    # -- PKI and configuration ----------------------------------------------------------

    def _write_pki(self) -> None:
        pki = self.pki_dir
        pki.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca_key = new_key()
        ca_name = subject(f"homelab-{self.lab}-ca")
        ca = issue(ca_name, ca_key, None, ca=True)
        serving_key = new_key()
        sans: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address(self.host)),
            # The in-cluster names and the `kubernetes` Service's ClusterIP, for completeness.
            x509.IPAddress(next(ipaddress.ip_network(SERVICE_CIDR).hosts())),
            *(
                x509.DNSName(name)
                for name in ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost")
            ),
        ]
        serving = issue(
            subject("kube-apiserver"),
            serving_key,
            (ca_name, ca_key),
            usage=[ExtendedKeyUsageOID.SERVER_AUTH],
            sans=sans,
        )
        admin_key = new_key()
        admin = issue(
            subject(ADMIN_USER, ADMIN_GROUP),
            admin_key,
            (ca_name, ca_key),
            usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
        )
        service_account_key = new_key()
        (pki / "ca.crt").write_bytes(cert_pem(ca))
        (pki / "apiserver.crt").write_bytes(cert_pem(serving))
        write_private_bytes(pki / "apiserver.key", key_pem(serving_key))
        (pki / "admin.crt").write_bytes(cert_pem(admin))
        write_private_bytes(pki / "admin.key", key_pem(admin_key))
        write_private_bytes(pki / "sa.key", key_pem(service_account_key))
        (pki / "sa.pub").write_bytes(
            service_account_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        # The CA key is not kept: nothing is issued after start.

    def kubeconfig(self) -> dict[str, Any]:
        def inline(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        name = f"homelab-{self.lab}"
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {"server": self.url, "certificate-authority-data": inline(self.ca_path)},
                }
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {
                        "client-certificate-data": inline(self.admin_cert_path),
                        "client-key-data": inline(self.admin_key_path),
                    },
                }
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": ADMIN_USER}}],
            "current-context": name,
            "preferences": {},
        }

    def etcd_argv(self) -> list[str]:
        client = f"http://{self.host}:{ETCD_CLIENT_PORT}"
        peer = f"http://{self.host}:{ETCD_PEER_PORT}"
        name = f"homelab-{self.lab}"
        return [
            str(self.etcd_binary),
            f"--name={name}",
            f"--data-dir={self.etcd_data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={name}={peer}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={name}",
            "--log-level=warn",
            # Throwaway test data: fsync would only make every write wait on the disk.
            "--unsafe-no-fsync=true",
        ]

    def apiserver_argv(self) -> list[str]:
        pki = self.pki_dir
        return [
            str(self.apiserver_binary),
            f"--advertise-address={self.host}",
            f"--bind-address={self.host}",
            f"--secure-port={API_PORT}",
            f"--etcd-servers={self.etcd_url}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--cert-dir={pki}",
            f"--service-account-issuer={self.url}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--authorization-mode=RBAC",
            "--anonymous-auth=false",  # every client, the readiness probe too, is the admin
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-node-port-range={SERVICE_NODE_PORT_RANGE}",
            # Endpoints for the `kubernetes` Service would name this loopback address,
            # which Endpoints validation refuses; nothing here routes to it anyway.
            "--endpoint-reconciler-type=none",
            # The default admission chain less ServiceAccount, the one default plugin that
            # needs a controller-manager: it refuses pods until the `default` ServiceAccount,
            # which only that manager creates, exists. None of the rest needs one.
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
            "--v=1",
        ]

    # -- lifecycle ----------------------------------------------------------------------

    def is_running(self) -> bool:
        return all(d is not None and d.is_running() for d in (self._etcd, self._apiserver))

    def start(self) -> Self:
        """Start etcd, then kube-apiserver; return once /readyz is ok and the nexus objects exist."""
        if self._etcd is not None or self._apiserver is not None:
            raise KubeError(f"{self!r} is already started")
        for binary in (self.etcd_binary, self.apiserver_binary):
            if not os.access(binary, os.X_OK):
                raise KubeError(f"{binary} is missing: run tools/setup-kube.sh")
        for port in (ETCD_CLIENT_PORT, ETCD_PEER_PORT, API_PORT):
            # A stranger on the port would answer our probes while our own process dies.
            if port_open(self.host, port):
                raise KubeError(f"{self.host}:{port} is already in use; cannot start {self!r}")
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.rmtree(self.etcd_data_dir, ignore_errors=True)  # a fresh cluster every start
        try:
            self._write_pki()
            write_private_bytes(
                self.kubeconfig_path, yaml.safe_dump(self.kubeconfig(), sort_keys=False).encode()
            )
            self._etcd = _daemon("etcd", self.etcd_argv(), self.state_dir)
            with httpx.Client(trust_env=False, timeout=httpx.Timeout(2.0, connect=0.5)) as client:
                healthy = http_probe(client, f"{self.etcd_url}/health", _etcd_healthy)
                self._etcd.start(healthy, ETCD_START_TIMEOUT, interval=0.1)
            self._apiserver = _daemon("kube-apiserver", self.apiserver_argv(), self.state_dir)
            with self.client(timeout=httpx.Timeout(5.0, connect=0.5)) as client:
                ready = http_probe(client, "/readyz?verbose=1")  # verbose: names the failing checks
                self._apiserver.start(ready, API_START_TIMEOUT, interval=0.2)
            self.startup_seconds = time.monotonic() - started
            self._create_nexus_objects()
        except BaseException:
            self.stop()
            raise
        return self

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the homelab CA only and presents the admin client certificate."""
        if self._ssl is None:
            context = ssl.create_default_context(cafile=str(self.ca_path))
            context.load_cert_chain(str(self.admin_cert_path), str(self.admin_key_path))
            self._ssl = context
        return self._ssl

    def client(self, timeout: httpx.Timeout | float = 10.0) -> httpx.Client:
        """An httpx client for the API as the admin user (base_url is the API server)."""
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), trust_env=False, timeout=timeout)

    def _create(self, client: httpx.Client, path: str, body: Mapping[str, Any]) -> None:
        response = client.post(path, json=body)
        if response.status_code not in (201, 409):  # 409: already there (a restart of a kept lab)
            raise KubeError(f"POST {path} answered {response.status_code}: {response.text[:500]}")

    def _create_nexus_objects(self) -> None:
        """The namespace and ClusterIP Service of the Nexus install the cutover finds."""
        labels = {"app": "nexus"}
        with self.client() as client:
            self._create(
                client,
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NEXUS_NAMESPACE}},
            )
            self._create(
                client,
                f"/api/v1/namespaces/{NEXUS_NAMESPACE}/services",
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": NEXUS_SERVICE, "namespace": NEXUS_NAMESPACE, "labels": labels},
                    "spec": {
                        "type": "ClusterIP",
                        "selector": labels,
                        "ports": [
                            {"name": "http", "port": NEXUS_PORT, "targetPort": NEXUS_PORT, "protocol": "TCP"}
                        ],
                    },
                },
            )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop kube-apiserver, then etcd, and remove the etcd data, PKI and kubeconfig.

        The logs stay for post-mortems. Safe to call repeatedly and after a failed start.
        """
        apiserver, etcd, self._apiserver, self._etcd = self._apiserver, self._etcd, None, None
        for daemon in (apiserver, etcd):
            if daemon is not None:
                daemon.stop(timeout)
        self._clean()

    def _clean(self) -> None:
        self._ssl = None
        _clean_state_dir(self.state_dir)

    @classmethod
    def stop_from_state_dir(
        cls, state_dir: Path, bin_dir: Path = TOOLS_BIN, timeout: float = STOP_TIMEOUT
    ) -> bool:
        """Stop the processes another process started in state_dir (`make testbed-down`)."""
        state_dir = Path(state_dir)
        stopped = False
        for pid_name, binary in ((cls.API_PID, "kube-apiserver"), (cls.ETCD_PID, "etcd")):
            ours = _runs_in(Path(bin_dir) / binary, state_dir)
            stopped |= stop_pid_file(state_dir / pid_name, ours, timeout)
        _clean_state_dir(state_dir)
        return stopped
