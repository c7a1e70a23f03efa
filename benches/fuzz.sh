#!/usr/bin/env bash
# Runs a fuzz target for a bounded time (default 60 s). Not part of CI.
# Usage: bash benches/fuzz.sh [vcard_apdu|ca_request] [seconds]
#   vcard_apdu  arbitrary APDU sessions with the virtual card (default)
#   ca_request  arbitrary bytes as a CMP request to the reference CA
# Only a stable toolchain is installed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
set -euo pipefail
# cargo-fuzz looks for ./fuzz by default; the package lives in benches/fuzz.
cd "$(dirname "$0")/.."
FUZZ_DIR=benches/fuzz
TARGET=vcard_apdu
case "${1:-}" in vcard_apdu|ca_request) TARGET=$1; shift ;; esac
CORPUS=$FUZZ_DIR/corpus/$TARGET
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
mkdir -p "$CORPUS"
if [ "$TARGET" = ca_request ]; then
  exec cargo fuzz run --fuzz-dir "$FUZZ_DIR" ca_request "$CORPUS" -- -max_total_time="${1:-60}"
fi
# Seeds: SELECT AP; SELECT 0018 + VERIFY 1234; admin then SELECT 000A + READ BINARY.
printf '\x00\x0f\x00\xa4\x04\x0c\x0a\xd3\x92\xf0\x00\x26\x01\x00\x00\x00\x01' > "$CORPUS"/select_ap
printf '\x00\x0f\x00\xa4\x04\x0c\x0a\xd3\x92\xf0\x00\x26\x01\x00\x00\x00\x01\x00\x07\x00\xa4\x02\x0c\x02\x00\x18\x00\x09\x00\x20\x00\x80\x04\x31\x32\x33\x34' > "$CORPUS"/verify
printf '\x00\x0f\x00\xa4\x04\x0c\x0a\xd3\x92\xf0\x00\x26\x01\x00\x00\x00\x01\x03\x00\x00\x07\x00\xa4\x02\x0c\x02\x00\x0a\x00\x05\x00\xb0\x00\x00\x04' > "$CORPUS"/admin_read
exec cargo fuzz run --fuzz-dir "$FUZZ_DIR" vcard_apdu "$CORPUS" -- -max_total_time="${1:-60}"
