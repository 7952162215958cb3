#!/usr/bin/env bash
# Builds py-traceback.wasm from app.py + detector.py with componentize-py.
# Usage: ./build.sh [OUT_DIR]   (default: this directory)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
version=0.25.1
if ! componentize-py --version 2>/dev/null | grep -q "$version"; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "componentize-py==$version" \
    || python3 -m pip install --quiet --disable-pip-version-check --user "componentize-py==$version"
fi
cd "$here"
componentize-py -d "$here/../../../wit" -w detector-plugin componentize app -o "$out/py-traceback.wasm" >/dev/null
echo "$out/py-traceback.wasm"
