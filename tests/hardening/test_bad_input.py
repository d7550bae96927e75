"""Bad input never reaches a node: one case per kind, each refused at `pulumi preview` with
a message naming the offending key and what is allowed, and nothing applied anywhere.

The stack starts applied at stage 3 (every node managed, on legacy); each case edits its
stack file, previews, and the file is put back. After every case the Nexus objects, every
file in the nodes' /etc/rancher/k3s and the topology file are as before.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from tests.engine.lab_stack import lab_stack, running_homelab
from tests.hardening.common import snapshot
from tests.homelab.lab import Homelab

pytestmark = pytest.mark.engine

BAD_INPUT_LAB = 40
P = "nexus-cutover:"
Config = dict[str, Any]


def node(config: Config, index: int) -> dict[str, Any]:
    return config[f"{P}nodes"][index]


def repos(config: Config) -> dict[str, Any]:
    return config.setdefault(f"{P}repos", {})


def not_yaml(config: Config, lab: Homelab) -> None:
    broken = lab.root / "broken-topology.yaml"
    broken.write_text("registry_cache: [unclosed\n  buildcache_ref: x\n")
    config[f"{P}stage"] = 4
    config[f"{P}topology"]["path"] = str(broken)


# (kind, edit of the stack config (None: the pull password set empty), text the refusal must contain)
CASES: list[tuple[str, Callable[[Config, Homelab], Any] | None, str]] = [
    (
        "duplicate node names",
        lambda c, _: node(c, 1).update(name="pve-worker0"),
        "nodes[1].name: 'pve-worker0' is already nodes[0]",
    ),
    (
        "unknown role",
        lambda c, _: node(c, 0).update(role="worker"),
        "nodes[0].role: 'worker' is not allowed (allowed: server -> k3s, agent -> k3s-agent)",
    ),
    (
        "two nodes on one address",
        lambda c, _: node(c, 1).update(host=node(c, 0)["host"]),
        "nodes[1].host:",
    ),
    (
        "target other than legacy/nexus",
        lambda c, _: node(c, 0).update(target="ct113"),
        "nodes[0].target: 'ct113' is not allowed (allowed: legacy, nexus)",
    ),
    (
        "NodePort outside 30000-32767",
        lambda c, _: c[f"{P}exposure"].update(nodePort=8083),
        "exposure.nodePort: 8083 is not allowed (allowed: a whole number 30000-32767)",
    ),
    (
        "NodePort equal to a connector port",
        lambda c, _: repos(c).update({"docker-group": {"httpPort": 30083}}),
        "exposure.nodePort: 30083 is also a connector port",
    ),
    (
        "connector port clash",
        lambda c, _: repos(c).update({"docker-internal": {"httpPort": 8083}}),
        "connector port 8083 is already used by",
    ),
    (
        "uppercase docker repo name",
        lambda c, _: repos(c).update(
            {"Docker-Quay": {"format": "docker", "type": "proxy", "remoteUrl": "https://quay.io"}}
        ),
        "repos.Docker-Quay.name: 'Docker-Quay': docker repository names must be lowercase",
    ),
    (
        "group member that does not exist",
        lambda c, _: repos(c).update(
            {
                "docker-group": {
                    "members": ["docker-internal", "docker-dockerhub", "docker-ghcr", "docker-quay"]
                }
            }
        ),
        "docker-group: member 'docker-quay' is neither defined here nor listed as pre-existing",
    ),
    (
        "group member twice",
        lambda c, _: repos(c).update({"docker-group": {"members": ["docker-internal", "docker-internal"]}}),
        "lists a member twice",
    ),
    ("empty password", None, "pullPassword: is not set or empty: pulumi config set --secret"),
    (
        "malformed URL (no scheme)",
        lambda c, _: c.update({f"{P}nexusUrl": "nexus.example:8081"}),
        "nexusUrl: 'nexus.example:8081' must start with http:// or https://",
    ),
    (
        "URL with a bad port",
        lambda c, _: c.update({f"{P}dockerGroupUrl": "http://127.0.0.1:99999"}),
        "dockerGroupUrl: 'http://127.0.0.1:99999' has an invalid port",
    ),
    (
        "endpoint host with a path",
        lambda c, _: c[f"{P}mirror"].update(nexusEndpoint="http://127.0.0.1:30083/v2"),
        "must be scheme://host:port without a path",
    ),
    (
        "legacy endpoint not http(s)",
        lambda c, _: c[f"{P}mirror"]["legacyEndpoints"].update({"docker.io": "ftp://10.10.10.150:5000"}),
        "mirror.legacyEndpoints.docker.io: 'ftp://10.10.10.150:5000' must start with http:// or https://",
    ),
    (
        "verify image on a registry that is not mirrored",
        lambda c, _: c[f"{P}mirror"].update(verifyImage="quay.io/x/y:1"),
        "mirror.verifyImage: 'quay.io/x/y:1' must be a fully qualified reference on a mirrored registry",
    ),
    (
        "placeholder left in the config",
        lambda c, _: node(c, 2).update(hostKey="<FILL: pve-worker2 SSH host key>"),
        "nodes[2].hostKey: still a <FILL: ...> placeholder",
    ),
    (
        "more nodes changing than the guard allows",
        lambda c, _: [node(c, i).update(target="nexus") for i in (0, 1)],
        "2 nodes would change target in this update",
    ),
    (
        "stage that skips a prerequisite",
        lambda c, _: c.update({f"{P}stage": 5}),
        "stage: 5 retires the legacy cache, but node pve-worker0 still targets legacy",
    ),
    (
        "stage out of range",
        lambda c, _: c.update({f"{P}stage": 6}),
        "stage: 6 is not allowed (allowed: a whole number 1-5)",
    ),
    (
        "topology key missing",
        lambda c, _: (
            c.update({f"{P}stage": 4})
            or c[f"{P}topology"]["edits"].update({"registry_cache.cache_host": "nexus"})
        ),
        "key 'registry_cache.cache_host' not found ('cache_host' missing under registry_cache)",
    ),
    ("topology file not YAML", not_yaml, "is not valid YAML"),
    (
        "topology path relative",
        lambda c, _: c.update({f"{P}stage": 4}) or c[f"{P}topology"].update(path="platform/topology.yaml"),
        "topology.path: 'platform/topology.yaml' must be the absolute path of the topology file",
    ),
    (
        "host key malformed",
        lambda c, _: node(c, 0).update(hostKey="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"),
        "nodes[0].hostKey:",
    ),
    (
        "host key of an unknown type",
        lambda c, _: node(c, 0).update(hostKey="ssh-dss AAAAB3NzaC1kc3M="),
        "nodes[0].hostKey: key type 'ssh-dss' is not one of",
    ),
    (
        "negative timeout",
        lambda c, _: node(c, 0)["timeouts"].update(restart=-5),
        "nodes[0].timeouts.restart: -5 must be a number of seconds greater than 0",
    ),
    (
        "unknown timeout step",
        lambda c, _: node(c, 0)["timeouts"].update(reboot=30),
        "nodes[0].timeouts.reboot: unknown step (allowed: connect, command, restart, pull)",
    ),
    (
        "unknown setting (typo)",
        lambda c, _: c.update({f"{P}nexusURL": "http://127.0.0.1:8081"}),
        "nexus-cutover:nexusURL: unknown setting",
    ),
    (
        "unknown node key",
        lambda c, _: node(c, 0).update(ip="127.0.0.1"),
        "nodes[0].ip: unknown key",
    ),
    (
        "node name not a host name",
        lambda c, _: node(c, 0).update(name="PVE_Worker0"),
        "nodes[0].name: 'PVE_Worker0' must be a lowercase host name",
    ),
    (
        "two nodes with one container id",
        lambda c, _: node(c, 1).update(id=node(c, 0)["id"]),
        "nodes[1].id: 112 is already node 'pve-worker0'",
    ),
    (
        "registries path relative",
        lambda c, _: node(c, 0).update(registriesPath="etc/rancher/k3s/registries.yaml"),
        "nodes[0].registriesPath: 'etc/rancher/k3s/registries.yaml' must be an absolute path",
    ),
    (
        "SSH port out of range",
        lambda c, _: node(c, 0).update(port=70000),
        "nodes[0].port: 70000 is not allowed (allowed: a whole number 1-65535)",
    ),
    (
        "no rollout allowed at all",
        lambda c, _: c.update({f"{P}maxNodeChangesPerUp": 0}),
        "maxNodeChangesPerUp: 0 is not allowed (allowed: a whole number 1-1000)",
    ),
    (
        "negative HTTP timeout",
        lambda c, _: c.update({f"{P}httpTimeoutSeconds": -1}),
        "httpTimeoutSeconds: -1 must be a number of seconds greater than 0",
    ),
    (
        "check image without a tag",
        lambda c, _: c.update({f"{P}checkImage": "library/busybox"}),
        "checkImage: 'library/busybox' must be repository:tag",
    ),
    (
        "pull repo that is not a group",
        lambda c, _: c.update({f"{P}pullRepo": "docker-internal"}),
        "pullRepo: 'docker-internal' must name a docker group repo defined in repos",
    ),
    (
        "scan path relative",
        lambda c, _: c[f"{P}retirement"].update(scanPaths=["docs"]),
        "retirement.scanPaths: must be a list of absolute file or folder paths",
    ),
    (
        "apt proxy without distribution",
        lambda c, _: repos(c).update({"apt-debian": {"distribution": ""}}),
        "repos.apt-debian.distribution: an apt proxy needs its distribution",
    ),
    (
        "proxy remote URL without scheme",
        lambda c, _: repos(c).update({"docker-ghcr": {"remoteUrl": "ghcr.io"}}),
        "repos.docker-ghcr.remoteUrl: 'ghcr.io' must be an http:// or https:// URL with a host",
    ),
    (
        "empty pod selector",
        lambda c, _: c[f"{P}exposure"].update(selector={}),
        "exposure.selector: must map pod labels to values",
    ),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Homelab]:
    with running_homelab(tmp_path_factory.mktemp("bad-input-lab"), BAD_INPUT_LAB) as lab_:
        yield lab_


@pytest.fixture(scope="module")
def applied(lab, tmp_path_factory) -> Iterator[tuple[auto.Stack, Path]]:
    """The stack at stage 3 with every node managed on legacy, applied once."""
    tmp = tmp_path_factory.mktemp("bad-input")
    with lab_stack(lab, tmp, "bad", stage=3) as st:
        assert st.up().summary.result == "succeeded"
        yield st, Path(st.workspace.work_dir) / "Pulumi.bad.yaml"
        st.destroy()


def test_every_bad_input_is_refused_at_preview_and_nothing_is_applied(lab, applied, hardening):
    st, stack_file = applied
    good_text = stack_file.read_text()
    good = yaml.safe_load(good_text)  # config and the encryption salt of its secrets
    before = snapshot(lab)
    assert len(CASES) >= 30
    misses = []
    for kind, edit, expected in CASES:
        hardening.tried("bad input", kind)
        started = time.monotonic()
        if edit is None:  # a secret: set through the engine, as an operator would
            st.set_config(f"{P}pullPassword", auto.ConfigValue("", secret=True))
        else:
            document = copy.deepcopy(good)
            edit(document["config"], lab)
            stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
        try:
            st.preview()
            misses.append(f"{kind}: preview passed")
            continue
        except auto.CommandError as err:
            message = str(err)
        finally:
            stack_file.write_text(good_text)
        if expected not in message:
            misses.append(f"{kind}: refusal does not say {expected!r}:\n{message[-1500:]}")
            continue
        if snapshot(lab) != before:
            misses.append(f"{kind}: something changed")
            continue
        hardening.passed("bad input", kind, f"refused at preview in {time.monotonic() - started:.1f}s")
    assert not misses, "\n".join(misses)
    assert set(st.preview().change_summary) == {"same"}  # the good config still applies as is
