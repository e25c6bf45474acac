#!/usr/bin/env bash
# Refreshes the vendored caniemail data (the HTML check's client support
# tables) from the npm package `caniemail` (MIT): its data file and its
# licence, unchanged. Run by hand, then review the diff and run
# `cargo test -p sokkel-web htmlcheck`; CI never runs it.
#
#   crates/web/data/refresh-caniemail.sh           # the latest version
#   crates/web/data/refresh-caniemail.sh 2.0.2     # a given version
set -euo pipefail

version="${1:-latest}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
tarball="$(npm pack --silent "caniemail@$version")"
tar -xzf "$tarball"
cp package/data/caniemail.json "$here/caniemail.json"
cp package/LICENSE "$here/caniemail.LICENSE"
node -e 'const p = require("./package/package.json"); console.log(`caniemail ${p.version}`)'
node -e 'const d = require("./package/data/caniemail.json"); console.log(`data last updated ${d.last_update_date}, ${d.data.length} features`)'
