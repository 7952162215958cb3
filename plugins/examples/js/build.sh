#!/usr/bin/env bash
# Builds js-diagnose.wasm from healer.js with componentize-js (pinned in
# package-lock.json; installed with `npm ci` if missing). wasi:http is
# disabled (-d http -d fetch-event) so the component imports only what guard serves.
# Usage: ./build.sh [OUT_DIR]   (default: this directory)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
cd "$here"
[ -x node_modules/.bin/componentize-js ] || npm ci --silent --no-audit --no-fund
node_modules/.bin/componentize-js healer.js -w "$here/../../../wit" -n healer-plugin -d http -d fetch-event -o "$out/js-diagnose.wasm" >/dev/null
echo "$out/js-diagnose.wasm"
