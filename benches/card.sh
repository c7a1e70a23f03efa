#!/usr/bin/env bash
# Card figures for docs/performance.md: runs the card demo RUNS times (default 5), each on
# a fresh virtual card in its own private pcscd, and prints the median of every figure
# the demo reports with its hidden --stats option (one JSON object per run).
# Usage (as root on Debian 12):  bash benches/card.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
cargo build --locked --bins
runs=${1:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in $(seq "$runs"); do
  target/debug/jpki-kiosk card-demo --data "$tmp/run$i" --stats | tail -n 1 >>"$tmp/stats.jsonl"
done
echo "card figures, median of $runs runs (debug build, $(nproc) cores):"
# Flat JSON, one object per line: split into key/value pairs, then a median per key.
tr -d '{}' <"$tmp/stats.jsonl" | tr ',' '\n' | grep -v '^\s*$' | grep -v '^[0-9]' |
  sed -e 's/"//g' -e 's/:/ /' | grep -v 'cert_sizes' |
  sort -k1,1 -k2,2g |
  awk '{ v[$1] = v[$1] " " $2; n[$1]++ }
       END { for (k in v) { split(substr(v[k], 2), a, " "); m = a[int((n[k] + 1) / 2)];
             printf "  %-42s %s\n", k, m } }' | sort
