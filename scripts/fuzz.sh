#!/usr/bin/env bash
# Fuzzes guard's input parsers with cargo-fuzz (libFuzzer + AddressSanitizer,
# nightly toolchain): webhooks of all three platforms, log reading and
# normalisation, rule import, and guard.toml. Outside CI: it needs minutes
# per target. Crashes land in fuzz/artifacts/<target>/; keep each as a
# regression test next to the code it broke.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET=60] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(webhook_github webhook_gitlab webhook_jenkins normalize rules_import config)
fi

rustup toolchain install nightly --profile minimal >/dev/null
# guard's build script builds the standard plugins with the same toolchain.
rustup target add --toolchain nightly wasm32-wasip2 >/dev/null
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Seed corpora from the real payloads and logs at hand.
shared=tests/data
corpus=${GUARD_CORPUS:-../shared/corpus}
seed() {
  local t=$1
  mkdir -p "fuzz/corpus/$t"
  case $t in
    webhook_github)
      for f in "$shared"/fixtures/github/*.json; do
        (printf '\000'; cat "$f") > "fuzz/corpus/$t/$(basename "$f")"
        (printf '\001'; cat "$f") > "fuzz/corpus/$t/run-$(basename "$f")"
      done ;;
    webhook_gitlab) cp "$shared"/fixtures/gitlab/*.json "fuzz/corpus/$t/" ;;
    webhook_jenkins)
      printf '{"name":"app","url":"job/app/","build":{"full_url":"http://jenkins/job/app/7/","number":7,"phase":"FINALIZED","status":"FAILURE","url":"job/app/7/","scm":{"commit":"abc","branch":"main"}}}' \
        > "fuzz/corpus/$t/finalized.json" ;;
    normalize)
      cp examples/*.log "fuzz/corpus/$t/"
      find "$corpus" -name '*.log' -size -64k 2>/dev/null | head -50 | xargs -r -I{} cp {} "fuzz/corpus/$t/" ;;
    rules_import) cp plugins/pack-std/rules/*.toml "fuzz/corpus/$t/" ;;
    config) cargo run -q -p guard -- config template > "fuzz/corpus/$t/template.toml" ;;
  esac
}

for t in "${targets[@]}"; do
  seed "$t"
  echo "== $t for ${secs}s"
  cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -max_len=262144 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    2>&1 | grep -E 'stat::|^Done|==[0-9]+==ERROR|^SUMMARY|panicked|crash-|timeout-' || true
  if ls "fuzz/artifacts/$t"/crash-* "fuzz/artifacts/$t"/timeout-* >/dev/null 2>&1; then
    echo "!! $t found problems: fuzz/artifacts/$t" >&2
  fi
done
