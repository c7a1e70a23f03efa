#!/usr/bin/env bash
# Installs the Debian 12 packages that jpki-kiosk builds, demos and tests with.
# Safe to run twice: apt runs only when a package is missing. Needs root.
set -euo pipefail

packages=(
  # build
  pkg-config libpcsclite-dev libusb-1.0-0-dev libfontconfig1-dev
  # the reference CA signs with OpenSSL's libcrypto (the openssl crate)
  libssl-dev
  # the virtual card stack: pcscd with vsmartcard's vpcd, in a namespace of its own
  pcscd libpcsclite1 vsmartcard-vpcd iproute2 util-linux
  # interop peers and inspection tools used by tests
  opensc pcsc-tools openssl sqlite3 poppler-utils
  # receipt printing: a private cupsd with a PDF-writing queue in the print tests
  cups cups-client printer-driver-cups-pdf
  # fonts for receipts and screens
  fonts-ipaexfont-gothic
  # fallback for the few registered characters IPAex Gothic lacks (𠮷 and other
  # ideographs outside the BMP): found at run time through fontconfig
  fonts-noto-cjk
  ca-certificates
  # the appliance tests: udevadm parses the rules; bwrap rebuilds the kiosk unit's mounts;
  # systemd-analyze scores the unit; libusb for doctor's USB check
  udev bubblewrap systemd libusb-1.0-0
  # the appliance's display path on a Wayland compositor: weston's kiosk shell on its
  # headless backend (cage, the image's compositor, needs a DRM device even headless)
  weston
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the package scripts from starting a host-wide pcscd: the kiosk's
  # demo and tests start their own, off the network.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.jpki && chmod +x /usr/sbin/policy-rc.d.jpki
  had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  [ "$had_policy" = 1 ] || cp /usr/sbin/policy-rc.d.jpki /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ "$had_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
  rm -f /usr/sbin/policy-rc.d.jpki
fi

command -v cargo >/dev/null || { echo "setup: cargo not found (the Rust toolchain must be installed)" >&2; exit 1; }
