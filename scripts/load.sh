#!/usr/bin/env bash
# Load test: a daemon on loopback receives signed GitHub webhooks at rising
# rates (a real HTTP client over TCP; a loopback fake of the GitHub API
# serves the logs and takes the re-runs). Every step checks that every
# webhook was accepted (202) and every event decided — zero loss — and
# prints the sustained rate and the p50/p90/p99 of both the webhook's
# response and the webhook-to-decision latency.
#
#   scripts/load.sh [SECONDS_PER_STEP=10] [RATE...]   (default rates: 100 250 500 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
rates=("$@")
if [ ${#rates[@]} -eq 0 ]; then rates=(100 250 500 1000); fi
cargo bench --no-run -q -p guard --bench daemon
for r in "${rates[@]}"; do
  echo "== $r events/s for $secs s"
  GUARD_BENCH_RATE=$r GUARD_BENCH_SECS=$secs cargo bench -q -p guard --bench daemon 2>&1 | grep -v '^$'
done
