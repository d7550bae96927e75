#!/usr/bin/env bash
# Provides a real Kubernetes API server and its etcd in .tools/bin for the homelab tests
# (tests/homelab/kube.py), and crictl for the homelab's real-containerd node
# (tests/homelab/nodes.py): each at the version pinned in tools/versions,
# taken from PATH when they report exactly that version, else from the versioned cache the
# toolchain uses (~/.cache/nexus-cutover/toolchain/<name>-<version>), else built from the
# Go module proxy through the wrapper modules tools/go/kube-apiserver and tools/go/crictl.
# Idempotent: a second
# run only checks versions.
#
# etcd is built, not taken from Debian: bookworm's etcd-server is 3.4.23, and Kubernetes
# 1.37 supports etcd >= 3.5.24 (kubeadm's MinExternalEtcdVersion) with 3.7.0 as default.
set -euo pipefail

log_tag=setup-kube
# reported_version NAME PATH -> the version the binary prints, without a leading v.
reported_version() {
  case $1 in
    kube-apiserver) "$2" --version 2>/dev/null | sed -n 's/^Kubernetes v//p' ;;
    etcd) "$2" --version 2>/dev/null | sed -n 's/^etcd Version: //p' ;;
    crictl) "$2" --version 2>/dev/null | sed -n 's/^crictl version v//p' ;;
  esac
}
# shellcheck source=tools/lib.sh
source "$(dirname "$0")/lib.sh"

wrapper="$root/tools/go/kube-apiserver"

# check_reported NAME VERSION: the installed binary must report VERSION.
check_reported() {
  local reported
  reported=$(reported_version "$1" "$bin/$1") || true
  if [ "$reported" != "$2" ]; then
    log "$1 reports '$reported', expected $2: remove $bin/$1 and $cache/$1-$2, then rerun"
    exit 1
  fi
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

# As cri-tools' Makefile builds release binaries: static, trimmed, the version stamped where
# `crictl --version` reads it.
build_crictl() {
  (cd "$root/tools/go/crictl" && CGO_ENABLED=0 go build -v -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION" \
    -o "$1" sigs.k8s.io/cri-tools/cmd/crictl 2>&1 | sed -u 's/^/  go: /')
}

if ! [ -x "$bin/kube-apiserver" ] || ! [ -x "$bin/etcd" ] ||
  [ "$(cat "$bin/.kube-apiserver.version" 2>/dev/null)" != "$KUBE_APISERVER_VERSION" ] ||
  [ "$(cat "$bin/.etcd.version" 2>/dev/null)" != "$ETCD_VERSION" ]; then
  check_pin k8s.io/kubernetes "v$KUBE_APISERVER_VERSION"
  check_pin go.etcd.io/etcd/server/v3 "v$ETCD_VERSION"
fi
provide etcd "$ETCD_VERSION" build_etcd check_reported
provide kube-apiserver "$KUBE_APISERVER_VERSION" build_kube_apiserver check_reported
provide crictl "$CRICTL_VERSION" build_crictl check_reported
log "kube-apiserver $KUBE_APISERVER_VERSION, etcd $ETCD_VERSION and crictl $CRICTL_VERSION ready in $(seconds_since "$setup_started")s: $bin"
