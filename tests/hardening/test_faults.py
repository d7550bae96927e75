"""Faults at the worst moment, beyond the node faults of tests/engine/test_nodes.py: Nexus
failing during create/update, wrong admin password, a node's disk full, `pulumi up`
killed in the middle of a node change, and two `pulumi up` at once. For each: the node is
byte-identical to before or verified on the new mirror, the error says what happened and
what to do, and the next `up` converges."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pulumi import automation as auto

from providers.k3s_node import model
from tests.engine.harness import TOOLS_BIN, set_settings
from tests.engine.lab_stack import lab_stack, running_homelab, set_secrets, set_targets
from tests.hardening.common import registries_files, snapshot
from tests.homelab.lab import NODE_NAMES, Homelab
from tests.homelab.nodes import HomelabNode

pytestmark = pytest.mark.engine

FAULTS_LAB = 41
PENDING = "/etc/rancher/k3s/registries.yaml.nexus-cutover.pending"


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Homelab]:
    with running_homelab(tmp_path_factory.mktemp("faults-lab"), FAULTS_LAB) as lab_:
        yield lab_


@pytest.fixture(scope="module")
def st(lab, tmp_path_factory) -> Iterator[auto.Stack]:
    """Stage 3 applied, every node managed on legacy."""
    with lab_stack(lab, tmp_path_factory.mktemp("faults"), "faults", stage=3) as stack_:
        assert stack_.up().summary.result == "succeeded"
        yield stack_
        stack_.destroy()


@pytest.fixture
def baseline(lab, st) -> Iterator[None]:
    """Each test starts and ends with every node on legacy and nothing pending."""
    yield
    lab.nexus().clear_faults()
    for node in lab.nodes():
        node.clear_faults()
    set_targets(st, lab, 3, dict.fromkeys(NODE_NAMES, "legacy"))
    st.up()


def render(lab: Homelab, target: str) -> str:
    mirror = lab.stack_config()["nexus-cutover:mirror"]
    password = lab.secrets()["pullPassword"]
    return model.render(target, mirror["legacyEndpoints"], mirror["nexusEndpoint"], "shim-puller", password)


def canary(lab: Homelab) -> HomelabNode:
    return next(n for n in lab.nodes() if n.name == "pve-worker0")


def failed_up(st: auto.Stack) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(auto.CommandError) as failed:
        st.up()
    return str(failed.value), time.monotonic() - started


def add_repo(st: auto.Stack, lab: Homelab, name: str) -> None:
    repos = lab.stack_config()["nexus-cutover:repos"]
    repos[name] = {"format": "docker", "type": "proxy", "remoteUrl": f"http://{lab.addresses.nexus}:9/quay"}
    set_settings(st, {"nexus-cutover:repos": repos})


@pytest.mark.parametrize(
    ("kind", "method", "status", "hint"),
    [
        ("Nexus 503 during create", "POST", 503, "the server kept failing; check its health"),
        ("Nexus 500 during create", "POST", 500, "see the server's log"),
    ],
)
def test_nexus_error_during_create_stops_and_the_next_up_converges(
    lab, st, baseline, hardening, kind, method, status, hint
):
    hardening.tried("faults", kind)
    before = snapshot(lab)
    lab.nexus().add_fault(
        r"^/service/rest/v1/repositories/docker/proxy$", "status", method=method, status=status
    )
    add_repo(st, lab, "docker-quay")
    message, _ = failed_up(st)
    assert f"POST /service/rest/v1/repositories/docker/proxy -> HTTP {status}" in message and hint in message
    assert snapshot(lab) == before
    lab.nexus().clear_faults()
    assert st.up().summary.result == "succeeded"
    assert set(st.preview().change_summary) == {"same"}
    set_settings(st, {"nexus-cutover:repos": lab.stack_config()["nexus-cutover:repos"]})
    st.up()
    assert snapshot(lab)["nexus"] == before["nexus"]
    hardening.passed("faults", kind, "create failed with the HTTP evidence; next up converged")


def test_nexus_error_during_update_is_retried_or_reported(lab, st, baseline, hardening):
    hardening.tried("faults", "Nexus 503 then 500 during update")
    repos = lab.stack_config()["nexus-cutover:repos"]
    repos["pypi-proxy"] = {"remoteUrl": f"http://{lab.addresses.nexus}:9/pypi-mirror"}
    set_settings(st, {"nexus-cutover:repos": repos})
    nexus = lab.nexus()
    # PUT is idempotent: gateway errors are retried with backoff and the update lands.
    nexus.add_fault(r"^/service/rest/v1/repositories/pypi/proxy/pypi-proxy$", "status", method="PUT", times=2)
    assert st.up().summary.result == "succeeded"
    repos["pypi-proxy"] = {"remoteUrl": f"http://{lab.addresses.nexus}:9/pypi-other"}
    set_settings(st, {"nexus-cutover:repos": repos})
    nexus.add_fault(
        r"^/service/rest/v1/repositories/pypi/proxy/pypi-proxy$", "status", method="PUT", status=500
    )
    message, _ = failed_up(st)
    assert "PUT /service/rest/v1/repositories/pypi/proxy/pypi-proxy -> HTTP 500" in message
    nexus.clear_faults()
    assert st.up().summary.result == "succeeded"
    set_settings(st, {"nexus-cutover:repos": lab.stack_config()["nexus-cutover:repos"]})
    st.up()
    hardening.passed("faults", "Nexus 503 then 500 during update", "503 retried; 500 reported; converged")


def test_nexus_timeout_during_create_still_converges(lab, st, baseline, hardening):
    hardening.tried("faults", "Nexus timeout during create")
    set_settings(st, {"nexus-cutover:httpTimeoutSeconds": 2})
    # The create answers only after the client gave up; Nexus still makes the repo.
    lab.nexus().add_fault(
        r"^/service/rest/v1/repositories/docker/proxy$", "delay", method="POST", seconds=3, times=1
    )
    add_repo(st, lab, "docker-slow")
    assert st.up().summary.result == "succeeded"
    assert set(st.preview().change_summary) == {"same"}
    set_settings(st, {"nexus-cutover:repos": lab.stack_config()["nexus-cutover:repos"]})
    set_settings(st, {"nexus-cutover:httpTimeoutSeconds": 10})
    st.up()
    hardening.passed(
        "faults", "Nexus timeout during create", "the late create was recognised; no adopt error"
    )


def test_wrong_admin_password_is_named_and_nothing_changes(lab, st, baseline, hardening):
    hardening.tried("faults", "Nexus 401 (wrong admin password)")
    before = snapshot(lab)
    st.set_config("nexus-cutover:nexusAdminPassword", auto.ConfigValue("not-the-password", secret=True))
    add_repo(st, lab, "docker-quay")
    message, _ = failed_up(st)
    assert "HTTP 401" in message and "check the admin user/password in the stack config" in message
    assert snapshot(lab) == before
    set_secrets(st, lab)  # the real password again
    set_settings(st, {"nexus-cutover:repos": lab.stack_config()["nexus-cutover:repos"]})
    assert st.up().summary.result == "succeeded"
    hardening.passed("faults", "Nexus 401 (wrong admin password)", "named the credentials; nothing changed")


def in_node(node: HomelabNode, script: str) -> str:
    """Run `script` in the node's own mount namespace (where its sshd sees its files)."""
    pid = node.path("/run/homelab-sshd.pid").read_text().split()[0]
    done = subprocess.run(
        ["nsenter", f"--mount=/proc/{pid}/ns/mnt", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


@contextlib.contextmanager
def full_disk(node: HomelabNode, tmp: Path) -> Iterator[None]:
    """The node's /etc/rancher/k3s on a tmpfs with its files and not a byte free."""
    saved = tmp / "k3s-etc"
    saved.mkdir()
    for path in node.path("/etc/rancher/k3s").iterdir():
        (saved / path.name).write_bytes(path.read_bytes())
    in_node(
        node,
        f"mount -t tmpfs -o size=256k tmpfs /etc/rancher/k3s && cp -p {saved}/* /etc/rancher/k3s/ && "
        "(dd if=/dev/zero of=/etc/rancher/k3s/.filler bs=4k 2>/dev/null || true)",
    )
    try:
        yield
    finally:
        in_node(node, "umount /etc/rancher/k3s")


def test_node_disk_full_when_writing_leaves_it_untouched(lab, st, baseline, hardening, tmp_path):
    hardening.tried("faults", "node disk full when writing")
    node = canary(lab)
    before = in_node(node, "cat /etc/rancher/k3s/registries.yaml")
    set_targets(st, lab, 3, {"pve-worker0": "nexus"})
    with full_disk(node, tmp_path):
        # Every entry with its full mtime; not the folder's own, which a refused temp file bumps.
        listing = in_node(node, "ls -lA --time-style=full-iso /etc/rancher/k3s")
        message, _ = failed_up(st)
        assert (
            "node pve-worker0: backup: writing" in message
            and "is the node's disk full or read-only?" in message
        )
        assert "/etc/rancher/k3s/registries.yaml was not touched" in message
        assert in_node(node, "cat /etc/rancher/k3s/registries.yaml") == before
        assert in_node(node, "ls -lA --time-style=full-iso /etc/rancher/k3s") == listing  # no leftovers
    assert st.up().summary.result == "succeeded"  # space again: the same change goes through
    assert node.registries_yaml.read_text() == render(lab, "nexus")
    hardening.passed("faults", "node disk full when writing", "refused before the write; converged after")


def pulumi_cli(st: auto.Stack, *args: str) -> subprocess.Popen[str]:
    """The pulumi CLI on this stack, in a process group of its own (so it can be killed)."""
    return subprocess.Popen(
        [str(TOOLS_BIN / "pulumi"), *args, "--stack", st.name, "--non-interactive"],
        cwd=st.workspace.work_dir,
        env=st.workspace.env_vars,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid`: the CLI and the plugins it started in process
    groups of their own, as when the machine running `pulumi up` dies. Killing the CLI's
    group alone would leave the dynamic provider running, still changing the node."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            # Field 6 of /proc/PID/stat is the session id; the command name before it may
            # hold spaces, so count from its closing parenthesis.
            session = int((proc / "stat").read_text().rpartition(")")[2].split()[3])
        except (OSError, IndexError, ValueError):
            continue
        if session == sid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_up_killed_mid_node_change_then_cancel_refresh_up_settles_the_node(lab, st, baseline, hardening):
    hardening.tried("faults", "pulumi up SIGKILLed mid node change")
    node = canary(lab)
    node.set_fault("restart-hangs", {"once": 6})  # a window between the write and the verification
    set_targets(st, lab, 3, {"pve-worker0": "nexus"})
    running = pulumi_cli(st, "up", "--yes", "--skip-preview")
    wait_for(
        lambda: node.path(PENDING).exists() and node.registries_yaml.read_text() == render(lab, "nexus"),
        60,
        "the new file on the node",
    )
    kill_session(running.pid)
    running.wait(timeout=10)
    killed_at = time.monotonic()
    # The node is now in between: new file, never verified. The backend still holds the lock.
    message, _ = failed_up(st)
    assert "the stack is currently locked" in message and "pulumi cancel" in message
    st.cancel()
    st.refresh()
    assert st.preview().change_summary.get("update") == 1  # refresh saw the node unsettled
    assert st.up().summary.result == "succeeded"
    settled = time.monotonic() - killed_at
    assert node.registries_yaml.read_text() == render(lab, "nexus") and not node.path(PENDING).exists()
    assert node.pull_log()[-1]["via"] == "mirror"
    assert set(st.preview().change_summary) == {"same"}
    hardening.passed(
        "faults", "pulumi up SIGKILLed mid node change", f"cancel+refresh+up settled it in {settled:.1f}s"
    )


def test_two_ups_at_once_the_second_is_refused_by_the_lock(lab, st, baseline, hardening):
    hardening.tried("concurrency", "two pulumi up on one stack")
    node = canary(lab)
    # The first up is held mid node change (its restart hangs 10 s, within the 20 s restart
    # timeout), so the second always meets its lock, however fast the machine is.
    node.set_fault("restart-hangs", {"once": 10})
    set_targets(st, lab, 3, {"pve-worker0": "nexus"})
    first = pulumi_cli(st, "up", "--yes", "--skip-preview")
    locks = Path(st.workspace.env_vars["PULUMI_BACKEND_URL"].removeprefix("file://")) / ".pulumi" / "locks"
    wait_for(
        lambda: any(p.is_file() for p in locks.rglob("*.json")) and node.path(PENDING).exists(),
        60,
        "the first up's lock and its node change under way",
    )
    message, _ = failed_up(st)
    assert "the stack is currently locked by 1 lock(s)" in message
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    assert registries_files(lab)["pve-worker0"] == render(lab, "nexus")
    assert node.pull_log()[-1]["via"] == "mirror"
    assert set(st.preview().change_summary) == {"same"}
    hardening.passed(
        "concurrency", "two pulumi up on one stack", "second refused by the backend lock; first completed"
    )
