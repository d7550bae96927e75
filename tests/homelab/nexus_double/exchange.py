"""One HTTP exchange as the REST and connector code see it, free of http.server details."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Request:
    method: str
    path: str  # percent-decoded, without the query
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    host: str  # the address this port listens on
    port: int
    client_ip: str

    @classmethod
    def build(
        cls,
        method: str,
        target: str,
        headers: Message,
        body: bytes,
        host: str,
        port: int,
        client_ip: str,
    ) -> Request:
        parts = urlsplit(target)
        return cls(
            method=method,
            path=unquote(parts.path),
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=body,
            host=host,
            port=port,
            client_ip=client_ip,
        )

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def base_url(self) -> str:
        """What Nexus builds URLs from: the Host the client used."""
        return f"http://{self.headers.get('Host') or f'{self.host}:{self.port}'}"

    def basic_credentials(self) -> tuple[str, str] | None:
        """(user, password) from `Authorization: Basic`, None when absent or malformed."""
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        return (user, password) if sep else None

    def bearer_token(self) -> str | None:
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # For the request log: the repository addressed, the one that served, the user.
    repository: str | None = None
    served_by: str | None = None
    user: str | None = None
