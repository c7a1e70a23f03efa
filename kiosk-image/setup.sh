#!/usr/bin/env bash
# Installs what kiosk-image/build.sh and boot-test.sh need on a Debian 12 build host.
# Safe to run twice: apt runs only when a package is missing. Needs root.
set -euo pipefail
packages=(
  mmdebstrap          # the root file system from Debian's archive
  fdisk               # sfdisk: the partition table
  e2fsprogs           # mkfs.ext4 -d: root and data file systems without mounting
  dosfstools mtools   # the FAT boot partition, filled without mounting
  syslinux syslinux-common  # BIOS boot loader installed into the FAT partition
  openssl             # update bundles are signed with Ed25519
  systemd             # systemd-analyze security --offline
  qemu-system-x86     # boot-test.sh

)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
