"""Runbook Step 1: provision the Nexus repos, the mirror's security, and check the group.

Order inside the step: Nexus writable (and its EULA, if the operator said so) -> realms ->
repos (members before their groups) -> roles on those repos -> users -> the pull check.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pulumi

from components.settings import Settings
from providers.nexus.model import members_first, view_privilege
from providers.nexus.provider import (
    ActiveRealms,
    NexusReady,
    NexusRepository,
    NexusRole,
    NexusUser,
    PullCheck,
    PushCheck,
)

# Docker bearer tokens (the default challenge of a docker connector) need this realm.
REQUIRED_REALMS = ["DockerToken"]
PULL_ROLE = "nexus-cutover-pull"
PUSH_ROLE = "nexus-cutover-push"
# Pushed by the push check; exists only in Nexus, so nodes that pull it prove their mirror.
CANARY_REPOSITORY = "nexus-cutover/canary"


class NexusRepos(pulumi.ComponentResource):
    """Step 1: the docker repos, the realm/roles/users the mirror needs, and the check."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        secrets: dict[str, pulumi.Output[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("nexus-cutover:step1:NexusRepos", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        connection: dict[str, Any] = {
            "url": settings.nexus_url,
            "username": settings.nexus_admin_user,
            "password": secrets["nexusAdminPassword"],
            "timeout": settings.http_timeout,
            "caBundle": settings.nexus_ca_bundle,
        }

        self.ready = NexusReady("nexus-ready", connection, settings.accept_nexus_eula, opts=child)
        after_ready = pulumi.ResourceOptions(parent=self, depends_on=[self.ready])
        self.realms = ActiveRealms("active-realms", connection, REQUIRED_REALMS, opts=after_ready)

        self.repos: dict[str, NexusRepository] = {}
        for repo in [settings.repo(n) for n in members_first([r.spec for r in settings.repos])]:
            members = [self.repos[m] for m in repo.spec.get("members", []) if m in self.repos]
            self.repos[repo.name] = NexusRepository(
                repo.name,
                connection,
                dict(repo.spec),
                adopt=repo.adopt,
                delete_adopted=repo.delete_adopted,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.ready, *members]),
            )

        pull_repo, push_repo = self.repos[settings.pull_repo], self.repos[settings.push_repo]
        self.pull_role = NexusRole(
            "pull-role",
            connection,
            {
                "id": PULL_ROLE,
                "description": f"pull images through {settings.pull_repo} (k3s node mirrors)",
                "privileges": [view_privilege("docker", settings.pull_repo, a) for a in ("read", "browse")],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pull_repo]),
        )
        self.push_role = NexusRole(
            "push-role",
            connection,
            {
                "id": PUSH_ROLE,
                "description": f"push the build cache to {settings.push_repo} (CI)",
                "privileges": [
                    view_privilege("docker", settings.push_repo, a) for a in ("read", "browse", "add", "edit")
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[push_repo]),
        )
        self.pull_user = NexusUser(
            "pull-user",
            connection,
            {
                "userId": settings.mirror.pull_user,
                "roles": [PULL_ROLE],
                "lastName": "k3s mirror pulls",
            },
            secrets["pullPassword"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.pull_role]),
        )
        self.push_user = NexusUser(
            "push-user",
            connection,
            {
                "userId": settings.push_user,
                "roles": [PUSH_ROLE],
                "lastName": "CI build cache pushes",
            },
            secrets["pushPassword"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.push_role]),
        )

        repository, _, reference = settings.check_image.rpartition(":")
        self.check = PullCheck(
            "step1-check",
            registry_url=settings.docker_group_url,
            repository=repository,
            reference=reference,
            username=settings.mirror.pull_user,
            password=secrets["pullPassword"],
            after=[r.id for r in self.repos.values()],
            timeout=settings.http_timeout,
            ca_bundle=settings.nexus_ca_bundle,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.realms, self.pull_user, *self.repos.values()]
            ),
        )
        hosted_url = with_port(settings.docker_group_url, settings.repo(settings.push_repo).spec["httpPort"])
        self.push_check = PushCheck(
            "push-check",
            registry_url=hosted_url,
            repository=CANARY_REPOSITORY,
            username=settings.push_user,
            password=secrets["pushPassword"],
            after=[push_repo.id],
            timeout=settings.http_timeout,
            ca_bundle=settings.nexus_ca_bundle,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.realms, self.push_user, push_repo]),
        )
        self.register_outputs({"checkDigest": self.check.digest, "canaryTag": self.push_check.tag})

    def canaries(self, registries: list[str]) -> pulumi.Output[list[str]]:
        """The canary image as each mirrored registry name would call it."""
        return self.push_check.tag.apply(lambda tag: [f"{r}/{CANARY_REPOSITORY}:{tag}" for r in registries])


def with_port(url: str, port: int) -> str:
    """`url` (scheme://host[:port]) on another port: connectors share the Nexus host."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def package_mirrors(settings: Settings) -> dict[str, str]:
    """What pip/uv and apt clients put in their settings to use the pypi and apt repos."""
    base = settings.nexus_url.rstrip("/")
    mirrors: dict[str, str] = {}
    for repo in settings.repos:
        spec = repo.spec
        if spec["format"] == "pypi" and spec["type"] == "group":
            index = f"{base}/repository/{repo.name}/simple/"
            mirrors[f"{repo.name} (pip)"] = f"pip config set global.index-url {index}"
            mirrors[f"{repo.name} (uv)"] = f"UV_DEFAULT_INDEX={index}"
        if spec["format"] == "apt":
            line = f"deb {base}/repository/{repo.name}/ {spec['distribution']} main"
            mirrors[f"{repo.name} (apt)"] = line
    return mirrors
