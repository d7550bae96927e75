"""Shared fixtures: homelabs started once per test session, on labs of their own."""

import os
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


class HardeningReport:
    """What the hardening suite tried and what held, printed at the end of the run."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, object]] = {}

    def tried(self, section: str, kind: str) -> None:
        self.rows[(section, kind)] = {"passed": False, "detail": ""}

    def passed(self, section: str, kind: str, detail: str = "") -> None:
        self.rows[(section, kind)] = {"passed": True, "detail": detail}


REPORT = HardeningReport()


@pytest.fixture(scope="session")
def hardening() -> HardeningReport:
    return REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT.rows:
        return
    terminalreporter.section("hardening summary")
    for section in sorted({s for s, _ in REPORT.rows}):
        rows = {k: v for (s, k), v in REPORT.rows.items() if s == section}
        held = sum(1 for v in rows.values() if v["passed"])
        terminalreporter.write_line(f"{section}: {len(rows)} kinds tried, {held} passed")
        for kind, row in rows.items():
            mark = "ok  " if row["passed"] else "FAIL"
            terminalreporter.write_line(
                f"  {mark} {kind}{'  ' + str(row['detail']) if row['detail'] else ''}"
            )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (CI=true), a skipped test fails the run: every skip here means a part of the
    homelab or toolchain is missing, and `make test` installs all of them first."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("CI") == "true" and skipped and exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; in CI every test must run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
