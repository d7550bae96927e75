"""Fixtures the homelab's own tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.homelab.registries import RegistryServer

StartRegistry = Callable[..., RegistryServer]


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[StartRegistry]:
    """Start registries by name (port 5000 unless given, state in tmp_path/registries/<name>);
    every one is stopped when the test ends, pass or fail."""
    servers: list[RegistryServer] = []

    def start(name: str, host: str, port: int = 5000, **kwargs: Any) -> RegistryServer:
        server = RegistryServer(name, host, port, tmp_path / "registries" / name, **kwargs)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in reversed(servers):  # proxies before their upstreams
            server.stop()
