#!/usr/bin/env bash
# Provides the pinned Pulumi toolchain in .tools/bin without get.pulumi.com:
# each Go binary is taken from PATH when it already has the pinned version, else from
# a versioned cache outside the repo, else built from the Go module proxy through the
# wrapper modules under tools/go/. Upstream sources are read from the Go module cache.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/versions
source "$root/tools/versions"

bin="$root/.tools/bin"
build="$root/.tools/build"
cache="${NEXUS_CUTOVER_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nexus-cutover/toolchain}"
mkdir -p "$bin" "$build" "$cache"

# go.mod/go.sum under tools/go are committed: builds must not re-resolve versions.
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local GOWORK=off

log() { printf '[setup-toolchain] %s\n' "$*"; }

# version_on_path NAME VERSION -> prints the path of NAME on PATH (outside .tools/bin)
# when it reports VERSION, nothing otherwise. Only the CLI can report its version.
version_on_path() {
  local name=$1 version=$2 found
  found=$(PATH=$(tr ':' '\n' <<<"$PATH" | grep -vxF "$bin" | paste -sd:) command -v "$name" || true)
  [ -n "$found" ] || return 0
  if [ "$name" = pulumi ] && [ "$("$found" version 2>/dev/null)" = "v$version" ]; then
    echo "$found"
  fi
}

# provide NAME VERSION BUILD_FUNCTION: installs .tools/bin/NAME at VERSION.
provide() {
  local name=$1 version=$2 builder=$3 cached="$cache/$1-$2" started elapsed from_path
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
      elapsed=$(($(date +%s) - started))
      log "$name $version: built in ${elapsed}s"
    else
      log "$name $version: from cache $cached"
    fi
    install -m 0755 "$cached" "$bin/$name"
  fi
  echo "$version" >"$bin/.$name.version"
}

module_dir() { # module_dir WRAPPER MODULE -> directory of MODULE in the module cache
  (cd "$root/tools/go/$1" && go mod download "$2" && go list -m -f '{{.Dir}}' "$2")
}

build_pulumi() {
  (cd "$root/tools/go/pulumi" && go build -v -o "$1" \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi 2>&1 | sed -u 's/^/  go: /')
}

build_language_python() {
  (cd "$root/tools/go/language-python" && go build -v -o "$1" \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_LANGUAGE_PYTHON_VERSION" \
    github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python 2>&1 | sed -u 's/^/  go: /')
}

# The provider's main package embeds schema-embed.json, which upstream makes with
# `go generate` (its generate.go stamps the version into schema.json). The module cache
# is read-only, so the package is assembled in .tools/build/kubernetes (ignored by git).
build_kubernetes() {
  local src work="$build/kubernetes"
  src=$(module_dir kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4)/cmd/pulumi-resource-kubernetes
  rm -rf "$work" && mkdir -p "$work"
  cp "$root/tools/go/kubernetes/go.mod" "$root/tools/go/kubernetes/go.sum" "$work/"
  cp "$src/main.go" "$src/generate.go" "$src/schema.json" "$src/terraform-mapping.json" "$work/"
  chmod -R u+w "$work"
  (cd "$work" && VERSION="$PULUMI_KUBERNETES_VERSION" go run generate.go && go build -v -o "$1" \
    -ldflags "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PULUMI_KUBERNETES_VERSION" \
    . 2>&1 | sed -u 's/^/  go: /')
}

# Shell/Python shims shipped inside the SDK module at the CLI's version.
copy_sdk_script() { # copy_sdk_script RELATIVE_PATH NAME
  local sdk
  sdk=$(module_dir pulumi "github.com/pulumi/pulumi/sdk/v3")
  install -m 0755 "$sdk/$1" "$bin/$2"
  echo "$PULUMI_VERSION" >"$bin/.$2.version"
  log "$2 $PULUMI_VERSION: copied from the sdk/v3 module"
}

total_started=$(date +%s)
provide pulumi "$PULUMI_VERSION" build_pulumi
provide pulumi-language-python "$PULUMI_LANGUAGE_PYTHON_VERSION" build_language_python
provide pulumi-resource-kubernetes "$PULUMI_KUBERNETES_VERSION" build_kubernetes
copy_sdk_script python/cmd/pulumi-language-python-exec pulumi-language-python-exec
copy_sdk_script python/dist/pulumi-resource-pulumi-python pulumi-resource-pulumi-python

actual=$("$bin/pulumi" version)
if [ "$actual" != "v$PULUMI_VERSION" ]; then
  log "pulumi reports $actual, expected v$PULUMI_VERSION: remove .tools and $cache, then rerun make setup"
  exit 1
fi
log "toolchain ready in $(($(date +%s) - total_started))s: $bin"
