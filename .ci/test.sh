#!/usr/bin/env bash
# Runs every test of jpki-kiosk: unit tests, and integration tests against real peers
# (pcscd + vpcd + jpki-vcard in private namespaces, jpki-ca and openssl on loopback).
# Usage (as root on Debian 12):  bash .ci/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh

export CARGO_TERM_COLOR=never
cargo build --locked --all-targets

# Each test runs in a process of its own: a process talks to exactly one pcscd (libpcsclite
# reads the socket path once), and integration tests each start a private card stack.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
cargo test --locked --doc
# Last, so the run closes on nextest's summary line.
cargo nextest run --locked --no-fail-fast --config-file .ci/nextest.toml --profile ci
