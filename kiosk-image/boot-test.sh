#!/usr/bin/env bash
# Boots an image from build.sh under qemu-system-x86_64 with software emulation (TCG) and
# no display, and waits until the serial console shows that the kiosk service is active
# and the self-test ran. Exit 0 when both markers appear before the timeout.
#
#   kiosk-image/boot-test.sh OUT.img [TIMEOUT_SECONDS (default 900)]
#
# The image is booted with -snapshot, so OUT.img is unchanged.
# The serial console is kept in OUT.img.serial.log.
set -euo pipefail
img=${1:?usage: $0 IMG [TIMEOUT]}; timeout=${2:-900}
log="$img.serial.log"
trap '[ -n "${qpid:-}" ] && kill "$qpid" 2>/dev/null || true' EXIT
# -snapshot: writes go to a temporary file qemu deletes; the image is unchanged.
accel=tcg; [ "${JPKI_BOOT_KVM:-0}" = 1 ] && [ -w /dev/kvm ] && accel=kvm
: > "$log"
t0=$(date +%s)
# -nographic: no display at all (the kiosk runs headless: no /dev/dri); serial to the log.
# The network is qemu's user-mode NAT inside this process: nothing listens on the host.
qemu-system-x86_64 -machine pc,accel=$accel -m 1024 -smp 2 -nographic -vga none \
  -snapshot -drive file="$img",format=raw,if=virtio \
  -nic user,model=virtio-net-pci,restrict=on \
  -serial file:"$log" -monitor none -no-reboot &
qpid=$!
kiosk="" doctor=""
while :; do
  now=$(( $(date +%s) - t0 ))
  [ -z "$kiosk" ] && grep -q 'JPKI-KIOSK-ACTIVE' "$log" && kiosk=$now && echo "boot-test: kiosk service active after ${now} s"
  [ -z "$doctor" ] && grep -q 'JPKI-DOCTOR-DONE' "$log" && doctor=$now && echo "boot-test: doctor ran after ${now} s"
  if [ -n "$kiosk" ] && [ -n "$doctor" ]; then
    grep -a -E 'JPKI-|\[(OK  |WARN|FAIL)\]' "$log" | tail -40
    echo "boot-test: PASS (kiosk ${kiosk} s, doctor ${doctor} s, accel $accel)"
    exit 0
  fi
  if ! kill -0 "$qpid" 2>/dev/null; then echo "boot-test: qemu exited early; see $log" >&2; tail -30 "$log" >&2; exit 1; fi
  if (( now > timeout )); then echo "boot-test: FAIL: no markers within ${timeout} s; see $log" >&2; tail -30 "$log" >&2; exit 1; fi
  sleep 5
done
