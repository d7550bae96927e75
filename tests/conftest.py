"""Shared fixtures: homelabs started once per test session, on labs of their own."""

from collections.abc import Iterator

import pytest

from tests.homelab.lab import Homelab

PROVIDER_LAB = 22  # provider tests against the doubles; engine tests start their own labs


@pytest.fixture(scope="session")
def provider_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homelab]:
    lab = Homelab(tmp_path_factory.mktemp("provider-lab"), PROVIDER_LAB)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()
