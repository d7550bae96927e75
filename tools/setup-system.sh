#!/usr/bin/env bash
# Debian packages the homelab and its tests run for real: registries, registry client,
# SSH servers/clients, network namespaces, nftables (a node's "mirror unreachable" switch),
# containerd (the homelab's real-containerd node). Installs only what is missing (idempotent).
set -euo pipefail

packages=(docker-registry skopeo openssh-server openssh-client iproute2 util-linux nftables containerd)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[setup-system] Debian packages present: ${packages[*]}"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "[setup-system] missing ${missing[*]}: run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "[setup-system] installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
