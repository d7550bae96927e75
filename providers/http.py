"""HTTP calls to Nexus and to registries: timeouts, bounded retries, errors that explain.

Pure part: `is_retryable`, `describe_failure`, `backoff_delays`. I/O part: `Endpoint.request`,
which opens a client per call (dynamic providers keep only plain data between calls).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})


class HttpError(RuntimeError):
    """A request that failed for good; the message says what was asked and what came back."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def is_retryable(method: str, status: int | None) -> bool:
    """Retry only what cannot have had an effect twice: idempotent calls that met a gateway
    error or no answer at all (status None)."""
    return method.upper() in IDEMPOTENT_METHODS and (status is None or status in RETRYABLE_STATUSES)


def backoff_delays(attempts: int, first: float = 0.5, cap: float = 8.0) -> Iterator[float]:
    """Seconds to wait before each retry: 0.5, 1, 2, 4 ... capped."""
    delay = first
    for _ in range(attempts - 1):
        yield min(delay, cap)
        delay *= 2


def validation_messages(body: str) -> list[str]:
    """Nexus's 400 body is a JSON list of {id, message}; anything else is returned as is."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return [body.strip()[:500]] if body.strip() else []
    if isinstance(parsed, list):
        return [
            f"{item.get('id', '?')}: {item.get('message', '')}" if isinstance(item, dict) else str(item)
            for item in parsed
        ]
    if isinstance(parsed, dict) and "errors" in parsed:  # registry V2 error body
        return [f"{e.get('code')}: {e.get('message')}" for e in parsed["errors"] if isinstance(e, dict)]
    return [json.dumps(parsed)[:500]]


def describe_failure(what: str, method: str, url: str, status: int | None, body: str, hint: str) -> str:
    """One message with the method, path, status and the server's own validation list."""
    answer = f"HTTP {status}" if status is not None else "no answer"
    lines = [f"{what}: {method} {httpx.URL(url).raw_path.decode()} -> {answer}"]
    lines += [f"  {m}" for m in validation_messages(body)]
    if hint:
        lines.append(f"  what to do: {hint}")
    return "\n".join(lines)


HINTS = {
    None: "check that the URL is right and the server is up and reachable from where pulumi runs",
    401: "the credentials were refused: check the admin user/password in the stack config",
    403: "the user lacks a privilege for this call",
    404: "the object does not exist (yet)",
    400: "Nexus refused the request body: fix the setting named above",
}


@dataclass(frozen=True)
class Endpoint:
    """Plain data describing a server: safe to keep on a pickled provider or in state."""

    base_url: str
    username: str = ""
    password: str = ""
    timeout: float = 30.0
    ca_bundle: str = ""
    attempts: int = 4

    def _client(self) -> httpx.Client:
        verify: Any = self.ca_bundle or True
        auth = (self.username, self.password) if self.username else None
        return httpx.Client(base_url=self.base_url, auth=auth, timeout=self.timeout, verify=verify)

    def request(
        self,
        what: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
        allowed: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request, retrying only where `is_retryable`; statuses in `ok` or `allowed`
        are returned, others raise HttpError naming `what` was being done."""
        delays = backoff_delays(self.attempts)
        with self._client() as client:
            while True:
                status: int | None = None
                body = ""
                try:
                    response = client.request(
                        method,
                        path,
                        json=json_body,
                        content=content,
                        headers=headers,
                        params=params,
                    )
                    status, body = response.status_code, response.text
                    if status in ok or status in allowed:
                        return response
                except httpx.TransportError as err:
                    body = f"{type(err).__name__}: {err}"
                if not is_retryable(method, status) or (delay := next(delays, None)) is None:
                    url = path if "://" in path else f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"
                    hint = (
                        HINTS.get(status, "see the server's log")
                        if status not in RETRYABLE_STATUSES
                        else ("the server kept failing; check its health, then run pulumi up again")
                    )
                    raise HttpError(describe_failure(what, method, url, status, body, hint), status)
                time.sleep(delay)
