#!/usr/bin/env bash
# Provides a real Kubernetes API server and its etcd in .tools/bin for the homelab tests
# (tests/homelab/kube.py): kube-apiserver and etcd at the versions pinned in tools/versions,
# taken from PATH when they report exactly that version, else from the versioned cache the
# toolchain uses (~/.cache/nexus-cutover/toolchain/<name>-<version>), else built from the
# Go module proxy through the wrapper module tools/go/kube-apiserver. Idempotent: a second
# run only checks versions.
#
# etcd is built, not taken from Debian: bookworm's etcd-server is 3.4.23, and Kubernetes
# 1.37 supports etcd >= 3.5.24 (kubeadm's MinExternalEtcdVersion) with 3.7.0 as default.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/versions
source "$root/tools/versions"

bin="$root/.tools/bin"
cache="${NEXUS_CUTOVER_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nexus-cutover/toolchain}"
wrapper="$root/tools/go/kube-apiserver"
mkdir -p "$bin" "$cache"

# go.mod/go.sum under tools/go are committed: builds must not re-resolve versions.
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local GOWORK=off

log() { printf '[setup-kube] %s\n' "$*"; }

# reported_version NAME PATH -> the version the binary prints, without a leading v.
reported_version() {
  case $1 in
    kube-apiserver) "$2" --version 2>/dev/null | sed -n 's/^Kubernetes v//p' ;;
    etcd) "$2" --version 2>/dev/null | sed -n 's/^etcd Version: //p' ;;
  esac
}

# version_on_path NAME VERSION -> path of NAME on PATH (outside .tools/bin) if it is VERSION.
version_on_path() {
  local found
  found=$(PATH=$(tr ':' '\n' <<<"$PATH" | grep -vxF "$bin" | paste -sd:) command -v "$1" || true)
  if [ -n "$found" ] && [ "$(reported_version "$1" "$found")" = "$2" ]; then
    echo "$found"
  fi
}

# provide NAME VERSION BUILD_FUNCTION: installs .tools/bin/NAME at VERSION.
provide() {
  local name=$1 version=$2 builder=$3 cached="$cache/$1-$2" started from_path
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/.$name.version" 2>/dev/null)" = "$version" ]; then
    log "$name $version: already in .tools/bin"
    return
  fi
  from_path=$(version_on_path "$name" "$version")
  if [ -n "$from_path" ]; then
    ln -sf "$from_path" "$bin/$name"
    log "$name $version: using $from_path from PATH"
  else
    if [ ! -x "$cached" ]; then
      log "$name $version: building (progress below; a cold build takes minutes)"
      started=$(date +%s)
      "$builder" "$cached.tmp"
      mv -f "$cached.tmp" "$cached"
      log "$name $version: built in $(($(date +%s) - started))s"
    else
      log "$name $version: from cache $cached"
    fi
    install -m 0755 "$cached" "$bin/$name"
  fi
  if [ "$(reported_version "$name" "$bin/$name")" != "$version" ]; then
    log "$name reports '$(reported_version "$name" "$bin/$name")', expected $version: remove $bin/$name and $cached, then rerun"
    exit 1
  fi
  echo "$version" >"$bin/.$name.version"
}

# module_field MODULE FIELD -> a field of MODULE as the wrapper module resolves it.
module_field() { (cd "$wrapper" && go list -m -f "{{$2}}" "$1"); }

check_pin() { # check_pin MODULE VERSION: the wrapper's go.mod must agree with tools/versions.
  local resolved
  resolved=$(module_field "$1" .Version)
  if [ "$resolved" != "$2" ]; then
    log "tools/go/kube-apiserver resolves $1 to $resolved, tools/versions pins $2"
    exit 1
  fi
}

# As upstream's hack/lib/golang.sh builds release binaries: static, stripped, trimmed, with
# its build tags, and the version stamped where `--version` and /version read it. The build
# date is the release's module time, so the binary does not depend on when it was built.
build_kube_apiserver() {
  local pkg=k8s.io/component-base/version client=k8s.io/client-go/pkg/version date minor ldflags=(-s -w)
  date=$(module_field k8s.io/kubernetes '.Time.UTC.Format "2006-01-02T15:04:05Z"')
  minor=$(cut -d. -f2 <<<"$KUBE_APISERVER_VERSION")
  for p in "$pkg" "$client"; do
    ldflags+=(
      "-X $p.gitVersion=v$KUBE_APISERVER_VERSION" "-X $p.gitMajor=1" "-X $p.gitMinor=$minor"
      "-X $p.gitTreeState=clean" "-X $p.buildDate=$date"
    )
  done
  (cd "$wrapper" && CGO_ENABLED=0 go build -v -trimpath -tags selinux,notest,grpcnotrace \
    -ldflags "${ldflags[*]}" -o "$1" k8s.io/kubernetes/cmd/kube-apiserver 2>&1 | sed -u 's/^/  go: /')
}

# As etcd's build script: static and trimmed; its version is a constant of the source.
build_etcd() {
  (cd "$wrapper" && CGO_ENABLED=0 go build -v -trimpath -ldflags "-s -w" \
    -o "$1" go.etcd.io/etcd/server/v3 2>&1 | sed -u 's/^/  go: /')
}

total_started=$(date +%s)
if ! [ -x "$bin/kube-apiserver" ] || ! [ -x "$bin/etcd" ] ||
  [ "$(cat "$bin/.kube-apiserver.version" 2>/dev/null)" != "$KUBE_APISERVER_VERSION" ] ||
  [ "$(cat "$bin/.etcd.version" 2>/dev/null)" != "$ETCD_VERSION" ]; then
  check_pin k8s.io/kubernetes "v$KUBE_APISERVER_VERSION"
  check_pin go.etcd.io/etcd/server/v3 "v$ETCD_VERSION"
fi
provide etcd "$ETCD_VERSION" build_etcd
provide kube-apiserver "$KUBE_APISERVER_VERSION" build_kube_apiserver
log "kube-apiserver $KUBE_APISERVER_VERSION and etcd $ETCD_VERSION ready in $(($(date +%s) - total_started))s: $bin"
