#!/usr/bin/env bash
# Renders 71-jpki-kiosk-resident.rules for one site.
# Usage: render-resident-rules.sh USB_PORT_PATH CONNECTOR > DATA/system/udev/71-jpki-kiosk-resident.rules
# Example: render-resident-rules.sh pci-0000:00:14.0-usb-0:3 HDMI-A-2
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 USB_PORT_PATH CONNECTOR" >&2; exit 2; }
# Only characters udev paths and connector names use: nothing that could end the match value.
for v in "$1" "$2"; do
  [[ "$v" =~ ^[A-Za-z0-9:._-]+$ ]] || { echo "$0: refusing value '$v' (allowed: A-Z a-z 0-9 : . _ -)" >&2; exit 2; }
done
sed -e "/^# @/d" -e "s|@USB_PORT_PATH@|$1|g" -e "s|@CONNECTOR@|$2|g" \
  "$(dirname "$0")/71-jpki-kiosk-resident.rules.in"
