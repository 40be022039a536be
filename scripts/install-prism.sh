#!/usr/bin/env bash
# Installs Stoplight Prism (the mock server `cargo test --test contract` checks our requests
# against) into the project-local, git-ignored prefix .tools/prism, and prints the path of its
# `prism` binary on stdout. Does nothing but print the path when that version is already there.
# Needs Node 20+ and npm with registry access.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION_RANGE="5.14"
PREFIX="$PWD/.tools/prism"
BIN="$PREFIX/node_modules/.bin/prism"
PACKAGE_JSON="$PREFIX/node_modules/@stoplight/prism-cli/package.json"

installed_version() {
  [ -f "$PACKAGE_JSON" ] || return 1
  node -p 'require(process.argv[1]).version' "$PACKAGE_JSON" 2>/dev/null
}

if version="$(installed_version)" && [ -x "$BIN" ] && [[ "$version" == "$VERSION_RANGE".* ]]; then
  echo "prism $version already installed" >&2
else
  command -v npm >/dev/null || { echo "install-prism: npm is not installed (Node 20+ needed)" >&2; exit 1; }
  echo "installing @stoplight/prism-cli@$VERSION_RANGE into $PREFIX" >&2
  mkdir -p "$PREFIX"
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
    "@stoplight/prism-cli@$VERSION_RANGE" >&2
  version="$(installed_version)" || { echo "install-prism: the install left no prism-cli package" >&2; exit 1; }
  [ -x "$BIN" ] || { echo "install-prism: $BIN is missing after the install" >&2; exit 1; }
  echo "installed prism $version" >&2
fi

echo "$BIN"
