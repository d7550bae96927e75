"""Docker registry V2 clients' view of a mirror: does it answer, and does it serve a pull?

Pure part: `parse_challenge`, `token_params`, `verify_digest`. I/O part: `check_pull`,
which goes through the registry auth flow (bearer token or basic) the way containerd does.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from providers.http import Endpoint, HttpError

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryCheckError(RuntimeError):
    """The mirror did not serve the pull; the message carries the HTTP evidence."""


@dataclass(frozen=True)
class PullEvidence:
    ping_status: int
    auth_scheme: str
    digest: str
    media_type: str

    def as_dict(self) -> dict[str, str | int]:
        """camelCase, like every other output of this program."""
        return {
            "pingStatus": self.ping_status,
            "authScheme": self.auth_scheme,
            "digest": self.digest,
            "mediaType": self.media_type,
        }


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """('bearer'|'basic'|'', params) from a WWW-Authenticate header."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


def token_params(challenge: dict[str, str], repository: str, actions: str) -> dict[str, str]:
    params = {"scope": f"repository:{repository}:{actions}"}
    if "service" in challenge:
        params["service"] = challenge["service"]
    return params


def verify_digest(body: bytes, announced: str) -> str:
    """The content digest of `body`; raises when the registry announced another one."""
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if announced and announced != actual:
        raise RegistryCheckError(f"manifest digest mismatch: registry said {announced}, content is {actual}")
    return actual


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def authorization(
    registry: Endpoint, repository: str, actions: str, username: str, password: str
) -> tuple[int, str, dict[str, str]]:
    """Ping /v2/ and answer its challenge: (ping status, scheme used, headers to send)."""
    ping = registry.request("ping the registry", "GET", "/v2/", ok=(200,), allowed=(401,))
    challenge = ping.headers.get("www-authenticate", "")
    scheme, params = parse_challenge(challenge)
    if ping.status_code == 200 or scheme == "basic":
        return ping.status_code, "basic", {"Authorization": basic_header(username, password)}
    if scheme != "bearer" or "realm" not in params:
        raise RegistryCheckError(f"GET /v2/ -> 401 with an unusable challenge {challenge!r}")
    token = registry.request(
        f"get a {actions} token for {repository} as {username}",
        "GET",
        params["realm"],
        params=token_params(params, repository, actions),
        headers={"Authorization": basic_header(username, password)},
    ).json()
    bearer = token.get("token") or token.get("access_token")
    if not bearer:
        raise RegistryCheckError(f"token endpoint {params['realm']} answered without a token")
    return ping.status_code, "bearer", {"Authorization": f"Bearer {bearer}"}


def check_pull(
    registry: Endpoint, repository: str, reference: str, username: str, password: str
) -> PullEvidence:
    """Fetch the manifest of repository:reference through `registry` as `username`."""
    try:
        ping_status, scheme, headers = authorization(registry, repository, "pull", username, password)
        manifest = registry.request(
            f"pull the manifest of {repository}:{reference} as {username}",
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            headers={**headers, "Accept": MANIFEST_ACCEPT},
            ok=(200,),
        )
    except HttpError as err:
        raise RegistryCheckError(str(err)) from None
    digest = verify_digest(manifest.content, manifest.headers.get("docker-content-digest", ""))
    return PullEvidence(ping_status, scheme, digest, manifest.headers.get("content-type", ""))
