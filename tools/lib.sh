# shellcheck shell=bash
# What tools/setup-toolchain.sh and tools/setup-kube.sh share: the pins, where binaries go
# (.tools/bin) and are cached (~/.cache/nexus-cutover/toolchain/<name>-<version>), and
# `provide`, which takes a binary from PATH when it has the pinned version, else from the
# cache, else builds it into the cache. Sourced, not run: set `log_tag` and define
# `reported_version NAME PATH` (the version a binary reports, no leading v; nothing if it
# cannot tell) first.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tools/versions
source "$root/tools/versions"

bin="$root/.tools/bin"
cache="${NEXUS_CUTOVER_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nexus-cutover/toolchain}"
mkdir -p "$bin" "$cache"

# go.mod/go.sum under tools/go are committed: builds must not re-resolve versions.
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local GOWORK=off

setup_started=$(date +%s)

log() { printf '[%s] %s\n' "$log_tag" "$*"; }

# seconds_since EPOCH_SECONDS -> whole seconds elapsed since then.
seconds_since() { echo $(($(date +%s) - $1)); }

# version_on_path NAME VERSION -> path of NAME on PATH (outside .tools/bin) if it reports VERSION.
version_on_path() {
  local found
  found=$(PATH=$(tr ':' '\n' <<<"$PATH" | grep -vxF "$bin" | paste -sd:) command -v "$1" || true)
  if [ -n "$found" ] && [ "$(reported_version "$1" "$found")" = "$2" ]; then
    echo "$found"
  fi
}

# provide NAME VERSION BUILD_FUNCTION [CHECK_FUNCTION]: installs .tools/bin/NAME at VERSION.
# BUILD_FUNCTION PATH builds the binary at PATH; CHECK_FUNCTION NAME VERSION, if given, must
# accept the installed binary before its version is recorded.
provide() {
  local name=$1 version=$2 builder=$3 check=${4:-} cached="$cache/$1-$2" started from_path
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
      log "$name $version: built in $(seconds_since "$started")s"
    else
      log "$name $version: from cache $cached"
    fi
    install -m 0755 "$cached" "$bin/$name"
  fi
  if [ -n "$check" ]; then
    "$check" "$name" "$version"
  fi
  echo "$version" >"$bin/.$name.version"
}
