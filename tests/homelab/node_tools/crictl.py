"""`crictl` (as `k3s crictl`) on a homelab node: image commands against the node's containerd.

Supported: pull [--creds U:P | --auth B64], images [-q] [--digests] [REPO], inspecti
[-o json] IMAGE..., rmi IMAGE..., version. Global flags -r/--runtime-endpoint, -i,
-t/--timeout, -D are accepted. With the k3s unit not active the runtime socket is gone and
every command fails the way crictl does.
"""

from __future__ import annotations

import base64
import json
import sys
from collections import defaultdict
from typing import Any

from tests.homelab.node_tools import unit
from tests.homelab.node_tools.common import SOCKET_ABSOLUTE, Node, run_tool
from tests.homelab.node_tools.containerd import ImageStore, PullError, certs_d, parse_reference, pull

DEFAULT_ENDPOINT = f"unix://{SOCKET_ABSOLUTE}"
GLOBAL_WITH_VALUE = {
    "-r",
    "--runtime-endpoint",
    "-i",
    "--image-endpoint",
    "-t",
    "--timeout",
    "-c",
    "--config",
}


def fatal(message: str) -> int:
    print(f"FATA[0000] {message}", file=sys.stderr)
    return 1


def connection_error(node: Node, endpoint: str) -> str | None:
    """crictl's failure when the runtime socket is not there (k3s not running)."""
    if endpoint == DEFAULT_ENDPOINT and unit.is_active(node):
        return None
    path = endpoint.removeprefix("unix://")
    return (
        f'validate service connection: validate CRI v1 image API for endpoint "{endpoint}": '
        'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while '
        f'dialing: dial unix {path}: connect: no such file or directory"'
    )


def human_size(size: float) -> str:
    """docker's units.HumanSize (decimal units, 4 significant digits)."""
    units = ["B", "kB", "MB", "GB", "TB"]
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000.0
        index += 1
    return f"{size:.4g}{units[index]}"


def cri_images(store: ImageStore) -> list[dict[str, Any]]:
    """Image records grouped as CRI reports them: one image per config digest."""
    grouped: dict[str, dict[str, Any]] = defaultdict(lambda: {"repoTags": [], "repoDigests": []})
    for name, entry in sorted(store.images().items()):
        image = grouped[entry["config"]]
        image.update(id=entry["config"], size=entry["size"], target=entry["target"])
        image["repoDigests" if "@" in name else "repoTags"].append(name)
    return list(grouped.values())


def find_image(store: ImageStore, text: str) -> dict[str, Any] | None:
    images = cri_images(store)
    try:
        ref = str(parse_reference(text))
    except PullError:
        ref = None
    for image in images:
        if ref is not None and (ref in image["repoTags"] or ref in image["repoDigests"]):
            return image
    bare = text.removeprefix("sha256:")
    if len(bare) >= 4:
        for image in images:
            if image["id"].removeprefix("sha256:").startswith(bare):
                return image
    return None


def _pull(node: Node, args: list[str]) -> int:
    creds: tuple[str, str] | None = None
    images: list[str] = []
    while args:
        arg = args.pop(0)
        if arg in ("--creds", "--auth", "-p", "--pod-config", "--username", "-u") and args:
            value = args.pop(0)
            if arg == "--creds":
                user, _, password = value.partition(":")
                creds = (user, password)
            elif arg == "--auth":
                user, _, password = base64.b64decode(value).decode().partition(":")
                creds = (user, password)
        elif not arg.startswith("-"):
            images.append(arg)
    if len(images) != 1:
        return fatal("image name cannot be empty" if not images else "too many arguments")
    try:
        ref = parse_reference(images[0])
    except PullError as exc:
        return fatal(f"pulling image: rpc error: code = Unknown desc = {exc}")
    try:
        result = pull(node, ref, certs_d(node), creds, tool="crictl")
    except PullError as exc:
        code = "NotFound" if exc.not_found else "Unknown"
        return fatal(
            f'pulling image: rpc error: code = {code} desc = failed to pull and unpack image "{ref}": {exc}'
        )
    print(f"Image is up to date for {result.image_id}")
    return 0


def _images(node: Node, args: list[str]) -> int:
    store = ImageStore(node)
    quiet = "-q" in args or "--quiet" in args
    digests = "--digests" in args
    wanted = [a for a in args if not a.startswith("-")]
    rows = []
    for image in cri_images(store):
        for tag_ref in image["repoTags"] or ["<none>:<none>"]:
            repo, _, tag = tag_ref.rpartition(":")
            if wanted and not any(repo == str(parse_reference(w)).rpartition(":")[0] for w in wanted):
                continue
            rows.append((repo, tag, image))
    if quiet:
        for image_id in dict.fromkeys(image["id"] for _, _, image in rows):
            print(image_id)
        return 0
    header = ["IMAGE", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "SIZE"]
    table = [header]
    for repo, tag, image in rows:
        row = [repo, tag]
        if digests:
            row.append(image["target"].removeprefix("sha256:")[:13])
        row += [image["id"].removeprefix("sha256:")[:13], human_size(image["size"])]
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _inspecti(node: Node, args: list[str]) -> int:
    names = []
    while args:
        arg = args.pop(0)
        if arg in ("-o", "--output") and args:
            fmt = args.pop(0)
            if fmt != "json":
                return fatal(f"homelab stand-in: output format {fmt!r} is not modelled (use json)")
        elif not arg.startswith("-"):
            names.append(arg)
    store = ImageStore(node)
    for name in names:
        image = find_image(store, name)
        if image is None:
            return fatal(f'no such image "{name}" present')
        config = json.loads(store.read(image["id"])) if store.has(image["id"]) else {}
        status = {
            "id": image["id"],
            "repoTags": image["repoTags"],
            "repoDigests": image["repoDigests"],
            "size": str(image["size"]),
            "uid": None,
            "username": "",
            "spec": None,
            "pinned": False,
        }
        print(json.dumps({"status": status, "info": {"imageSpec": config}}, indent=2))
    return 0


def _rmi(node: Node, args: list[str]) -> int:
    store = ImageStore(node)
    names = [a for a in args if not a.startswith("-")]
    if not names:
        return fatal("image name cannot be empty")
    failed = False
    for name in names:
        image = find_image(store, name)
        if image is None:
            print(f'ERRO[0000] no such image "{name}"', file=sys.stderr)
            failed = True
            continue
        store.remove(image["repoTags"] + image["repoDigests"])
        for tag in image["repoTags"] or [image["id"]]:
            print(f"Deleted: {tag}")
    return fatal("unable to remove the image(s)") if failed else 0


def main(argv: list[str]) -> int:
    node = Node.from_env()
    endpoint = DEFAULT_ENDPOINT
    args = list(argv)
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in GLOBAL_WITH_VALUE and args:
            value = args.pop(0)
            if flag in ("-r", "--runtime-endpoint", "-i", "--image-endpoint"):
                endpoint = value if "://" in value else f"unix://{value}"
        elif flag.startswith(("--runtime-endpoint=", "--image-endpoint=")):
            value = flag.split("=", 1)[1]
            endpoint = value if "://" in value else f"unix://{value}"
    if not args:
        print("usage: crictl [global options] command [command options] [arguments...]", file=sys.stderr)
        return 1
    command, rest = args[0], args[1:]
    commands = {"pull": _pull, "images": _images, "image": _images, "img": _images}
    commands |= {"inspecti": _inspecti, "rmi": _rmi}
    if command == "version" or command in commands:
        problem = connection_error(node, endpoint)
        if problem is not None:
            return fatal(problem)
    if command == "version":
        print(
            "Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  v1.7.22-k3s1\nRuntimeApiVersion:  v1"
        )
        return 0
    if command not in commands:
        print(f"homelab stand-in: crictl {command} is not modelled", file=sys.stderr)
        return 1
    return commands[command](node, rest)


if __name__ == "__main__":
    run_tool(main)
