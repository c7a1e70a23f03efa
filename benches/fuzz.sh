#!/usr/bin/env bash
# Runs a fuzz target for a bounded time (default 60 s). Not part of CI.
# Usage: bash benches/fuzz.sh [vcard_apdu|ca_request] [seconds]
#   vcard_apdu  arbitrary APDU sessions with the virtual card (default)
#   ca_request  arbitrary bytes as a CMP request to the reference CA
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags on a stable toolchain. Targets build
# in the dev profile (--dev): a release build of the whole crate with one codegen unit
# under AddressSanitizer takes longer than the fuzzing.
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
  # Seeds: what `openssl cmp` sends to a real jpki-ca (p10cr with MAC protection, ir and
  # rr signed with the RA key, genm, and each certConf), captured with -reqout. The
  # fuzz target then opens the same CA, so the seeds' protection verifies.
  ca_dir=$FUZZ_DIR/ca
  if [ ! -e "$CORPUS/p10cr.der" ]; then
    # Built as the tests build it (RUSTC_BOOTSTRAP would change every fingerprint).
    env -u RUSTC_BOOTSTRAP cargo build --quiet --bin jpki-ca
    work=$(mktemp -d)
    coproc CA { exec target/debug/jpki-ca serve --dir "$ca_dir" --listen 127.0.0.1:0; }
    trap 'kill "$CA_PID" 2>/dev/null || true' EXIT
    read -r line <&"${CA[0]}"
    http=$(printf '%s\n' "$line" | tr ' ' '\n' | sed -n 's/^http=//p')
    cmp() { openssl cmp -server "$http/pkix/" -trusted "$ca_dir/sign-ca.pem" -recipient /CN=jpki-ca "$@" >/dev/null 2>&1; }
    ra=(-cert "$ca_dir/ra.pem" -key "$ca_dir/ra.key")
    openssl req -new -newkey rsa:2048 -nodes -keyout "$work/ee.key" -subj /CN=seed -out "$work/ee.csr" 2>/dev/null
    cmp -cmd p10cr -ref "$(cat "$ca_dir/pbm-ref")" -secret "pass:$(cat "$ca_dir/pbm-secret")" \
      -csr "$work/ee.csr" -certout "$work/p10.pem" -reqout "$CORPUS/p10cr.der,$CORPUS/p10cr-certconf.der"
    openssl genrsa -out "$work/ir.key" 2048 2>/dev/null
    cmp -cmd ir -newkey "$work/ir.key" -subject /CN=seed -certout "$work/ir.pem" "${ra[@]}" \
      -reqout "$CORPUS/ir.der,$CORPUS/ir-certconf.der"
    cmp -cmd genm -infotype caCerts "${ra[@]}" -reqout "$CORPUS/genm.der"
    cmp -cmd rr -oldcert "$work/ir.pem" -revreason 1 "${ra[@]}" -reqout "$CORPUS/rr.der"
    kill "$CA_PID"; wait "$CA_PID" 2>/dev/null || true
    trap - EXIT
    rm -rf "$work"
    echo "fuzz: $(ls "$CORPUS" | wc -l) seed requests in $CORPUS"
  fi
  export JPKI_FUZZ_CA_DIR=$PWD/$ca_dir
  exec cargo fuzz run --dev --fuzz-dir "$FUZZ_DIR" ca_request "$CORPUS" -- -max_total_time="${1:-60}"
fi
# Seeds: SELECT AP; SELECT 0018 + VERIFY 1234; admin then SELECT 000A + READ BINARY.
printf '\x00\x0f\x00\xa4\x04\x0c\x0a\xd3\x92\xf0\x00\x26\x01\x00\x00\x00\x01' > "$CORPUS"/select_ap
printf '\x00\x0f\x00\xa4\x04\x0c\x0a\xd3\x92\xf0\x00\x26\x01\x00\x00\x00\x01\x00\x07\x00\xa4\x02\x0c\x02\x00\x18\x00\x09\x00\x20\x00\x80\x04\x31\x32\x33\x34' > "$CORPUS"/verify
printf '\x00\x0f\x00\xa4\x04\x0c\x0a\xd3\x92\xf0\x00\x26\x01\x00\x00\x00\x01\x03\x00\x00\x07\x00\xa4\x02\x0c\x02\x00\x0a\x00\x05\x00\xb0\x00\x00\x04' > "$CORPUS"/admin_read
exec cargo fuzz run --dev --fuzz-dir "$FUZZ_DIR" vcard_apdu "$CORPUS" -- -max_total_time="${1:-60}"
