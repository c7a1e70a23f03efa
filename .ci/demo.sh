#!/usr/bin/env bash
# Runs the jpki-kiosk demo on embedded defaults: a virtual card on its own pcscd
# (off the network), and writes everything it made under DIR (default: ./demo-data).
# Usage (as root on Debian 12):  bash .ci/demo.sh [DIR] [-- extra demo options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
dir=${1:-demo-data}
shift || true
cargo build --locked --bins
exec target/debug/jpki-kiosk card-demo --data "$dir" "$@"
