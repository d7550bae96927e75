"""One SSH session to a k3s node (paramiko): strict host keys, a timeout on every step.

File contents travel over SFTP and HTTP probes through a direct-tcpip channel opened by
the node's sshd, so neither credentials nor file contents ever appear on a command line.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import shlex
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import paramiko


class NodeError(RuntimeError):
    """A step on a node failed; the message names the node, the step and what was seen."""

    def __init__(self, node: str, step: str, detail: str) -> None:
        super().__init__(f"node {node}: {step}: {detail}")
        self.node = node
        self.step = step
        self.detail = detail


@dataclass(frozen=True)
class CommandResult:
    status: int
    stdout: str
    stderr: str


def trust_only(keys: paramiko.HostKeys, host: str, port: int, host_key: str) -> None:
    """Make `keys` hold exactly the configured key of this node (strict checking)."""
    kind, blob = host_key.split()[:2]
    keys.clear()
    name = host if port == 22 else f"[{host}]:{port}"
    keys.add(name, kind, paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))


class _ProbeConnection(http.client.HTTPConnection):
    """http.client over an already open SSH channel (the node's own view of the network)."""

    def __init__(self, channel: paramiko.Channel, host: str, timeout: float) -> None:
        super().__init__(host, timeout=timeout)
        self._channel = channel

    def connect(self) -> None:
        self.sock = self._channel  # type: ignore[assignment] - has sendall/makefile/close


class NodeSession:
    """Connect with `with NodeSession(node) as session:`; `node` is the plain node setting."""

    def __init__(self, node: Mapping[str, Any]) -> None:
        self.node = node
        self.name = node["name"]
        self.timeouts = node.get("timeouts") or {}
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def _timeout(self, step: str) -> float:
        return float(self.timeouts.get(step, 30))

    def __enter__(self) -> Self:
        host, port = self.node["host"], int(self.node.get("port", 22))
        client = paramiko.SSHClient()
        trust_only(client.get_host_keys(), host, port, self.node["hostKey"])
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        connect = self._timeout("connect")
        identity = self.node.get("identityFile") or None
        try:
            client.connect(
                host,
                port=port,
                username=self.node.get("user", "root"),
                key_filename=identity,
                look_for_keys=identity is None,
                allow_agent=identity is None,
                timeout=connect,
                banner_timeout=connect,
                auth_timeout=connect,
                channel_timeout=connect,
            )
        except paramiko.BadHostKeyException as err:
            raise NodeError(
                self.name,
                "connect",
                f"{host}:{port} presented a different host key ({err.key.get_name()} "
                f"{err.key.get_base64()[:16]}...) than the configured hostKey: nothing was "
                "written. If the node was reinstalled, check the new key (ssh-keyscan) and "
                "update the node's hostKey in the stack config.",
            ) from None
        except paramiko.SSHException as err:
            raise NodeError(self.name, "connect", f"SSH to {host}:{port} failed: {err}") from None
        except OSError as err:
            raise NodeError(self.name, "connect", f"cannot reach {host}:{port}: {err}") from None
        self._client = client
        return self

    def __exit__(self, *_: object) -> None:
        if self._sftp is not None:
            self._sftp.close()
        if self._client is not None:
            self._client.close()

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None:
            raise NodeError(self.name, "connect", "the SSH session is not open")
        return self._client

    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
            self._sftp.get_channel().settimeout(self._timeout("command"))
        return self._sftp

    def run(self, step: str, argv: list[str], timeout_step: str = "command") -> CommandResult:
        """Run a command (argv quoted for the remote shell) with the step's own timeout."""
        timeout = self._timeout(timeout_step)
        command = " ".join(shlex.quote(a) for a in argv)
        try:
            _, stdout, stderr = self.client.exec_command(command, timeout=timeout)
            channel = stdout.channel
            deadline = time.monotonic() + timeout
            while not channel.exit_status_ready():
                if time.monotonic() > deadline:
                    channel.close()
                    raise NodeError(self.name, step, f"`{command}` did not finish within {timeout:g}s")
                if channel.closed and not channel.exit_status_ready():
                    raise NodeError(self.name, step, f"the SSH connection dropped during `{command}`")
                time.sleep(0.05)
            return CommandResult(
                channel.recv_exit_status(),
                stdout.read().decode(errors="replace"),
                stderr.read().decode(errors="replace"),
            )
        except (paramiko.SSHException, OSError, EOFError) as err:
            raise NodeError(
                self.name, step, f"the SSH connection dropped during `{command}`: {err}"
            ) from None

    def read_file(self, path: str) -> str | None:
        """The file's text, or None when it does not exist."""
        try:
            with self.sftp().open(path, "r") as handle:
                return handle.read().decode()
        except FileNotFoundError:
            return None
        except (paramiko.SSHException, OSError, EOFError) as err:
            raise NodeError(self.name, f"read {path}", str(err) or type(err).__name__) from None

    def exists(self, path: str) -> bool:
        try:
            return stat.S_ISREG(self.sftp().stat(path).st_mode or 0)
        except FileNotFoundError:
            return False

    def write_file(self, path: str, text: str, step: str) -> None:
        """Write `text` to `path` atomically: a 0600 temporary file beside it, then rename.
        Readers (k3s at start) see the old file or the new one, never half of one."""
        temporary = f"{path}.nexus-cutover.tmp"
        try:
            sftp = self.sftp()
            with sftp.open(temporary, "w") as handle:
                handle.chmod(0o600)
                handle.write(text.encode())
                handle.flush()
            sftp.posix_rename(temporary, path)
        except (paramiko.SSHException, OSError, EOFError) as err:
            with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
                self.sftp().remove(temporary)  # e.g. a disk that filled up midway
            # SFTP reports ENOSPC and EROFS only as a bare "Failure".
            hint = " (is the node's disk full or read-only?)" if str(err) == "Failure" else ""
            raise NodeError(
                self.name, step, f"writing {path} failed: {err or type(err).__name__}{hint}"
            ) from None

    def remove_file(self, path: str, step: str) -> None:
        try:
            self.sftp().remove(path)
        except FileNotFoundError:
            return
        except (paramiko.SSHException, OSError, EOFError) as err:
            raise NodeError(self.name, step, f"removing {path} failed: {err}") from None

    def http_get(
        self, url_host: str, url_port: int, path: str, headers: Mapping[str, str], step: str
    ) -> tuple[int, dict[str, str], bytes]:
        """GET through a channel that the node's sshd opens: reachability as the node sees it."""
        timeout = self._timeout("connect")
        try:
            transport = self.client.get_transport()
            if transport is None:
                raise NodeError(self.name, step, "the SSH connection is closed")
            channel = transport.open_channel(
                "direct-tcpip", (url_host, url_port), ("127.0.0.1", 0), timeout=timeout
            )
            channel.settimeout(timeout)
            connection = _ProbeConnection(channel, f"{url_host}:{url_port}", timeout)
            connection.request("GET", path, headers=dict(headers))
            response = connection.getresponse()
            body = response.read()
            connection.close()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        except paramiko.ChannelException as err:
            raise NodeError(
                self.name, step, f"{url_host}:{url_port} is not reachable from the node ({err.text})"
            ) from None
        except (TimeoutError, paramiko.SSHException, OSError, EOFError, http.client.HTTPException) as err:
            raise NodeError(self.name, step, f"GET {path} on {url_host}:{url_port} failed: {err}") from None
