#!/usr/bin/env bash
# Compares guard's native scanner with ripgrep running the same patterns on
# the same 100 MB synthetic log. Not part of CI (it installs ripgrep and
# takes minutes). Usage: scripts/bench-rg.sh
set -euo pipefail
cd "$(dirname "$0")/.."

command -v rg >/dev/null 2>&1 || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y ripgrep; }

cargo bench -p guard --bench scan -- --warm-up-time 1 --measurement-time 10
cargo build --release -p guard
log=target/scan-bench.log
# rg joins the patterns into one regex, so: named groups become plain groups
# (duplicate names are an error there), `\s` may not match a newline, and
# word boundaries are made ASCII as guard's scanner does (with Unicode `\b`
# rg's automaton falls back to its slowest engine: minutes for 10 MB).
./target/release/guard --data target/bench-data patterns list --regex \
  | sed -E 's/\(\?P<[A-Za-z0-9_]+>/(/g; s/\\s/[\\t\\x0B\\x0C\\r ]/g; s/\\b/(?-u:\\b)/g' > target/bench-patterns.txt
echo "patterns: $(wc -l < target/bench-patterns.txt), log: $(du -h "$log" | cut -f1)"

for i in 1 2 3; do
  /usr/bin/time -f "rg (same patterns):  %e s, %M KB max RSS" rg --no-config -c -f target/bench-patterns.txt "$log" > /dev/null || true
  /usr/bin/time -f "guard detect:        %e s, %M KB max RSS" ./target/release/guard --data target/bench-data detect "$log" > /dev/null
done
