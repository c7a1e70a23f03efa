#!/usr/bin/env bash
# Builds a signed update bundle for jpki-kiosk-update on the appliance.
# Usage: kiosk-image/make-update.sh SIGNING-KEY.pem JPKI-KIOSK-BINARY VERSION OUT.tar
# The key is the vendor's Ed25519 private key (openssl genpkey -algorithm ed25519); its
# public half is baked into the image (build.sh --update-key PUB.pem).
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 KEY.pem BINARY VERSION OUT.tar" >&2; exit 2; }
key=$1 bin=$2 version=$3 out=$4
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
install -m 0755 "$bin" "$work/jpki-kiosk"; echo "$version" > "$work/VERSION"
tar --owner=0 --group=0 --numeric-owner -cf "$work/payload.tar" -C "$work" jpki-kiosk VERSION
openssl pkeyutl -sign -inkey "$key" -rawin -in "$work/payload.tar" -out "$work/payload.tar.sig"
tar -cf "$out" -C "$work" payload.tar payload.tar.sig
echo "wrote $out ($version)"
