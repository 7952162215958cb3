#!/usr/bin/env bash
# Retrains the classifier shipped in pack-std (plugins/pack-std/model.json).
#
# usage: scripts/train-model.sh LOGCHUNKS_DIR [MORE_CORPUS_DIR...]
#   LOGCHUNKS_DIR  the LogChunks logs extracted with ../shared/corpus-logchunks/extract.sh
#   MORE_CORPUS    further labelled corpora (labels.jsonl + logs), e.g. ../shared/corpus
#
# Only the `tune` part of each corpus is used (split by project, see
# `guard eval --help`), so `guard eval --corpus LOGCHUNKS_DIR --split holdout`
# stays a measurement on projects the model never saw. The model holds word
# counts per category, never log lines.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,12p "$0"; exit 2; }
args=()
for c in "$@"; do args+=(--corpus "$c"); done
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
cargo run --release -q -- --data "$data" train --split tune --no-examples "${args[@]}" -o plugins/pack-std/model.json
