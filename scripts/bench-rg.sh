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
./target/release/guard --data target/bench-data patterns list --regex > target/bench-patterns.txt
echo "patterns: $(wc -l < target/bench-patterns.txt), log: $(du -h "$log" | cut -f1)"

time_it() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
for i in 1 2 3; do
  echo "rg (same patterns):   $(time_it rg --no-config -c -f target/bench-patterns.txt "$log") s"
  echo "guard detect:         $(time_it ./target/release/guard --data target/bench-data detect "$log") s"
done
