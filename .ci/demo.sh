#!/usr/bin/env bash
# Runs the jpki-kiosk demo on embedded defaults: a factory-fresh virtual card on its own
# pcscd (off the network), the reference CA on loopback, SQLite files and the sample
# town's registry. With a display it opens the staff and resident windows; without one it
# walks a new issuance through the screens, printing each step, and writes everything it
# made under DIR (default: ./demo-data), screenshots in DIR/screens/.
# Usage (as root on Debian 12):  bash .ci/demo.sh [DIR] [extra demo options, e.g. --headless]
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
dir=${1:-demo-data}
shift || true
cargo build --locked --bins
exec target/debug/jpki-kiosk demo --data "$dir" "$@"
