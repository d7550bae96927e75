"""HTTP plumbing: one ThreadingHTTPServer per port, faults, the request log, the control API.

The REST port serves /service/rest (rest.py) and the test-only control API under
/__double__/ (no auth, loopback callers only, never faulted or logged as traffic). Each
docker repository with a docker.httpPort gets a connector server (docker.py) that is
bound, moved and closed as repositories are created, updated and deleted; a port that
cannot be bound is a WARN in the log, as in Nexus.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.homelab.nexus_double.contract import ContractViolation
from tests.homelab.nexus_double.docker import DockerConnector, docker_error
from tests.homelab.nexus_double.exchange import Reply, Request
from tests.homelab.nexus_double.rest import RestApi
from tests.homelab.nexus_double.state import Fault, NexusState, iso, now

log = logging.getLogger("nexus.double")

CONTROL_PREFIX = "/__double__/"
POLL_INTERVAL = 0.1
FAULT_ACTIONS = ("status", "delay", "reset")


class DoubleServer(ThreadingHTTPServer):
    """A listener that can also cut its open keep-alive connections when it stops."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], double: NexusDouble, kind: str) -> None:
        self.double = double
        self.kind = kind  # "rest" or "docker"
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with self._open_lock:
            for connection in list(self._open):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DoubleServer

    def version_string(self) -> str:
        return "Nexus/3.97.0-13 (COMMUNITY)"

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: NexusDouble.log_request writes one line per request, without secrets."""

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        double = self.server.double
        host, port = self.server.server_address[:2]
        try:
            body = self._read_body()
        except ValueError:
            self._send(Reply(400, b"malformed body", {"Content-Type": "text/plain"}))
            return
        request = Request.build(
            self.command, self.path, self.headers, body, str(host), int(port), self.client_address[0]
        )
        if self.server.kind == "rest" and request.path.startswith(CONTROL_PREFIX):
            self._send(double.control(request))
            return
        fault = double.state.take_fault(request.method, request.path, request.port)
        if fault is not None and fault.action == "reset":
            double.log_request(self.server.kind, request, None, "reset")
            self._reset()
            return
        if fault is not None and fault.action == "status":
            reply = double.fault_reply(self.server.kind, fault.status)
            self._send(reply)
            double.log_request(self.server.kind, request, reply, "status")
            return
        if fault is not None:  # delay: answer normally, late
            time.sleep(fault.seconds)
        reply = double.dispatch(self.server.kind, request)
        self._send(reply)
        double.log_request(self.server.kind, request, reply, fault.action if fault else None)

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.status not in (204, 304):
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD" and reply.body:
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. during a delay fault)

    def _reset(self) -> None:
        """Close without answering; linger 0 turns the close into a TCP reset."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


class NexusDouble:
    """The whole double in one process: state, REST, connectors, control API."""

    def __init__(
        self,
        host: str,
        rest_port: int,
        admin_password: str,
        *,
        eula_accepted: bool,
        starting_seconds: float,
    ) -> None:
        self.host = host
        self.rest_port = rest_port
        self.admin_password = admin_password
        self.eula_accepted = eula_accepted
        self.starting_seconds = starting_seconds
        self.state = NexusState(
            admin_password, eula_accepted=eula_accepted, starting_seconds=starting_seconds
        )
        self.docker = DockerConnector(self.state)
        self.rest = RestApi(self.state, self.reconcile_connectors)
        self.rest_server: DoubleServer | None = None
        self.connectors: dict[int, DoubleServer] = {}
        self._connector_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------

    def serve_forever(self) -> None:
        self.rest_server = DoubleServer((self.host, self.rest_port), self, "rest")
        log.info(
            "Started Sonatype Nexus COMMUNITY 3.97.0-13 (double) on http://%s:%d", self.host, self.rest_port
        )
        try:
            self.rest_server.serve_forever(poll_interval=POLL_INTERVAL)
        finally:
            self.rest_server.server_close()
            self._stop_connectors(list(self.connectors))
            self.docker.close()

    def shutdown(self) -> None:
        if self.rest_server is not None:
            self.rest_server.shutdown()

    def reconcile_connectors(self) -> None:
        """Bind, move and close docker connectors to match the repositories."""
        with self._connector_lock:
            wanted = self.state.connector_ports() if self.state.connectors_up else {}
            self._stop_connectors([port for port in self.connectors if port not in wanted])
            for repository, port, holder in self.state.port_conflicts():
                log.warning(
                    "Could not start docker connector for repository %s on %s:%d: "
                    "port in use by repository %s",
                    repository,
                    self.host,
                    port,
                    holder,
                )
            for port, repository in wanted.items():
                if port in self.connectors:
                    continue
                try:
                    server = DoubleServer((self.host, port), self, "docker")
                except OSError as exc:
                    log.warning(
                        "Could not start docker connector for repository %s on %s:%d: %s",
                        repository,
                        self.host,
                        port,
                        exc.strerror or exc,
                    )
                    continue
                threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": POLL_INTERVAL},
                    name=f"docker-connector-{port}",
                    daemon=True,
                ).start()
                self.connectors[port] = server
                log.info("Docker connector for repository %s listening on %s:%d", repository, self.host, port)

    def _stop_connectors(self, ports: list[int]) -> None:
        for port in ports:
            server = self.connectors.pop(port, None)
            if server is not None:
                server.stop()
                log.info("Docker connector on %s:%d stopped", self.host, port)

    # -- requests -------------------------------------------------------------------------

    def dispatch(self, kind: str, request: Request) -> Reply:
        try:
            if kind == "rest":
                if not request.path.startswith("/service/rest/"):
                    return Reply(404)
                return self.rest.handle(request)
            return self.docker.handle(request)
        except ContractViolation as exc:
            log.error("CONTRACT VIOLATION by the double on %s %s: %s", request.method, request.path, exc)
            return Reply(500, f"ContractViolation: {exc}".encode(), {"Content-Type": "text/plain"})
        except Exception:
            log.exception("Unexpected error in the double on %s %s", request.method, request.path)
            return Reply(500, b"the Nexus double failed; see nexus.log", {"Content-Type": "text/plain"})

    def fault_reply(self, kind: str, status: int) -> Reply:
        """An injected failure, shaped like Nexus's own answers for that status."""
        if kind == "docker":
            code = "UNAVAILABLE" if status >= 500 else "DENIED"
            return docker_error(status, code, f"injected fault ({status})")
        if status >= 500:
            body = f"ERROR: (ID {uuid.uuid4()}) injected fault ({status})".encode()
            return Reply(status, body, {"Content-Type": "text/plain"})
        body = json.dumps([{"id": "*", "message": f"injected fault ({status})"}]).encode()
        return Reply(status, body, {"Content-Type": "application/json"})

    def log_request(self, kind: str, request: Request, reply: Reply | None, fault: str | None) -> None:
        """One log line and one request-log entry; the query, headers and body never appear."""
        entry = {
            "time": iso(now()),
            "kind": kind,
            "port": request.port,
            "method": request.method,
            "path": request.path,
            "status": reply.status if reply else None,
            "repository": reply.repository if reply else None,
            "served_by": reply.served_by if reply else None,
            "user": reply.user if reply else None,
            "fault": fault,
        }
        self.state.record(entry)
        log.info(
            "%s %s :%d -> %s user=%s repository=%s served-by=%s%s",
            request.method,
            request.path,
            request.port,
            entry["status"] if reply else "connection reset",
            entry["user"] or "-",
            entry["repository"] or "-",
            entry["served_by"] or "-",
            f" fault={fault}" if fault else "",
        )

    # -- control API ----------------------------------------------------------------------

    def control(self, request: Request) -> Reply:
        if not request.client_ip.startswith("127."):
            return Reply(403)
        route = (request.method, request.path.removeprefix(CONTROL_PREFIX).rstrip("/"))
        try:
            if route == ("GET", "requests"):
                return _json(200, self._requests(request))
            if route == ("DELETE", "requests"):
                with self.state.lock:
                    self.state.requests.clear()
                return Reply(204)
            if route == ("GET", "faults"):
                with self.state.lock:
                    return _json(200, [vars(fault) for fault in self.state.faults])
            if route == ("POST", "faults"):
                fault = _fault_from(json.loads(request.body or b"{}"))
                with self.state.lock:
                    self.state.faults.append(fault)
                return _json(201, vars(fault))
            if route == ("DELETE", "faults"):
                with self.state.lock:
                    self.state.faults.clear()
                return Reply(204)
            if route == ("POST", "reset"):
                self.reset(json.loads(request.body or b"{}"))
                return Reply(204)
            if route == ("GET", "connectors"):
                return _json(200, self._connector_status())
            if route == ("POST", "connectors"):
                wanted_up = json.loads(request.body or b"{}").get("up")
                if not isinstance(wanted_up, bool):
                    raise ValueError('connectors takes {"up": true|false}')
                self.state.connectors_up = wanted_up
                self.reconcile_connectors()
                return _json(200, self._connector_status())
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        return Reply(404)

    def reset(self, options: dict[str, Any]) -> None:
        """A fresh instance without a new process (starting one costs seconds of imports).

        `eula_accepted` and `starting_seconds` default to the command line's values.
        """
        eula_accepted = options.get("eula_accepted", self.eula_accepted)
        starting_seconds = options.get("starting_seconds", self.starting_seconds)
        if not isinstance(eula_accepted, bool) or not isinstance(starting_seconds, int | float):
            raise ValueError('reset takes {"eula_accepted": bool, "starting_seconds": number}')
        with self._connector_lock:
            self._stop_connectors(list(self.connectors))
            self.state.reset(
                self.admin_password,
                eula_accepted=eula_accepted,
                starting_seconds=float(starting_seconds),
            )
        log.info("Reset to a fresh instance")

    def _requests(self, request: Request) -> list[dict[str, Any]]:
        kind, port = request.param("kind"), request.param("port")
        with self.state.lock:
            return [
                entry
                for entry in self.state.requests
                if (kind is None or entry["kind"] == kind) and (port is None or str(entry["port"]) == port)
            ]

    def _connector_status(self) -> dict[str, Any]:
        with self._connector_lock:
            bound = sorted(self.connectors)
        ports = self.state.connector_ports()
        return {
            "up": self.state.connectors_up,
            "bound": {str(port): ports.get(port) for port in bound},
            "wanted": {str(port): name for port, name in ports.items()},
        }


def _json(status: int, payload: Any) -> Reply:
    return Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def _fault_from(spec: dict[str, Any]) -> Fault:
    action = spec.get("action")
    if action not in FAULT_ACTIONS:
        raise ValueError(f"action must be one of {FAULT_ACTIONS}")
    path_regex = spec.get("path_regex")
    if not isinstance(path_regex, str):
        raise ValueError("path_regex (a regular expression over the request path) is required")
    try:
        re.compile(path_regex)
    except re.error as exc:
        raise ValueError(f"path_regex does not compile: {exc}") from exc
    times = spec.get("times")
    if times is not None and (not isinstance(times, int) or times < 1):
        raise ValueError("times must be a positive integer, or omitted for 'until cleared'")
    return Fault(
        path_regex=path_regex,
        action=action,
        method=spec.get("method"),
        status=int(spec.get("status", 503)),
        seconds=float(spec.get("seconds", spec.get("delay", 0.0))),
        times=times,
        port=spec.get("port"),
    )


def configure_logging(state_dir: Path) -> None:
    """nexus.log in the state dir, Nexus's line layout."""
    handler = logging.FileHandler(state_dir / "nexus.log")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-5s [%(threadName)s] %(name)s - %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # httpx logs each upstream request URL at INFO; keep the double's own lines only.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
