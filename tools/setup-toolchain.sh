#!/usr/bin/env bash
# Provides the pinned Pulumi toolchain in .tools/bin without get.pulumi.com:
# each Go binary is taken from PATH when it already has the pinned version, else from
# a versioned cache outside the repo, else built from the Go module proxy through the
# wrapper modules under tools/go/. Upstream sources are read from the Go module cache.
set -euo pipefail

log_tag=setup-toolchain
# reported_version NAME PATH -> the version NAME reports, without a leading v. Only the CLI
# can report its version.
reported_version() {
  local out
  if [ "$1" = pulumi ]; then
    out=$("$2" version 2>/dev/null) || true
    if [[ $out == v* ]]; then echo "${out#v}"; fi
  fi
}
# shellcheck source=tools/lib.sh
source "$(dirname "$0")/lib.sh"

build="$root/.tools/build"
mkdir -p "$build"

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
log "toolchain ready in $(seconds_since "$setup_started")s: $bin"
