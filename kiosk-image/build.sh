#!/usr/bin/env bash
# Builds the counter appliance's disk image from Debian 12 with Debian's own tools.
#
#   sudo kiosk-image/build.sh OUT.img [--binary PATH] [--update-key PUB.pem] [--mirror URL]
#                             [--data-seed DIR]
#
# Without --binary it runs `cargo build --release --bin jpki-kiosk` once. Without
# --update-key it makes a development key pair beside OUT.img (never ship that image).
# --data-seed DIR copies DIR (e.g. a provisioned site.toml and ca/) onto the data partition,
# owned by the kiosk user: pre-provisioned images, and the boot test.
# Needs root on Debian 12 (kiosk-image/setup.sh installs the tools). No loop devices or
# mounts: file systems are filled with mkfs.ext4 -d and mtools, then placed with dd.
# See docs/imaging-guide.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(cd "$here/.." && pwd)
out=""; binary=""; update_key=""; seed=""; reuse_root=""; mirror="http://deb.debian.org/debian"
while (($#)); do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --update-key) update_key=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --data-seed) seed=$2; shift 2 ;;
    # For working on this script: start from an earlier mmdebstrap directory (copied).
    --reuse-root) reuse_root=$2; shift 2 ;;
    -*) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
[ -n "$out" ] || { echo "usage: $0 OUT.img [--binary PATH] [--update-key PUB.pem] [--mirror URL]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "build.sh: run as root" >&2; exit 1; }
bash "$here/setup.sh"
t0=$(date +%s); stamp() { echo "build.sh: [$(( $(date +%s) - t0 )) s] $*"; }

# Sizes in MiB.
BOOT_MB=128 DATA_MB=1024
DISK_ID=4a504b49   # "JPKI": root=PARTUUID=${DISK_ID}-02

if [ -z "$binary" ]; then
  stamp "cargo build --release --bin jpki-kiosk"
  (cd "$repo" && cargo build --locked --release --bin jpki-kiosk)
  binary="$repo/target/release/jpki-kiosk"
fi
[ -x "$binary" ] || { echo "build.sh: $binary is not an executable" >&2; exit 1; }

work=$(mktemp -d /var/tmp/jpki-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root data=$work/data

if [ -z "$update_key" ]; then
  echo "build.sh: WARNING: no --update-key; making a development key pair ${out%.img}.update-key{,.pub}.pem" >&2
  openssl genpkey -algorithm ed25519 -out "${out%.img}.update-key.pem"
  openssl pkey -in "${out%.img}.update-key.pem" -pubout -out "${out%.img}.update-key.pub.pem"
  update_key="${out%.img}.update-key.pub.pem"
fi

# The root file system: minbase plus only what the kiosk needs. No compilers, no ssh, no
# vpcd, no jpki-vcard or jpki-ca.
packages=(
  systemd systemd-sysv systemd-timesyncd udev dbus libpam-systemd kmod e2fsprogs
  linux-image-amd64 initramfs-tools
  pcscd libccid libpcsclite1 libusb-1.0-0
  cage fonts-ipaexfont-gothic libfontconfig1 libfreetype6 libxkbcommon0 libwayland-client0
  libwayland-cursor0 libwayland-egl1 libinput10
  cups-client openssl ca-certificates
)
if [ -n "$reuse_root" ]; then
  stamp "copying $reuse_root instead of mmdebstrap"
  cp -a "$reuse_root" "$root"
else
stamp "mmdebstrap bookworm (${#packages[@]} packages)"
mmdebstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  bookworm "$root" "$mirror"
fi

stamp "customise"
cp -a "$here/rootfs/." "$root/"
install -D -m 0755 "$binary" "$root/usr/lib/jpki-kiosk/jpki-kiosk"
install -D -m 0644 "$repo/udev/70-jpki-kiosk.rules" "$root/usr/lib/udev/rules.d/70-jpki-kiosk.rules"
install -D -m 0644 "$repo/udev/71-jpki-kiosk-resident.rules.in" "$root/usr/share/jpki-kiosk/71-jpki-kiosk-resident.rules.in"
install -D -m 0755 "$repo/udev/render-resident-rules.sh" "$root/usr/share/jpki-kiosk/render-resident-rules.sh"
install -D -m 0644 "$update_key" "$root/usr/share/jpki-kiosk/update-key.pem"
missing=$(chroot "$root" ldd /usr/lib/jpki-kiosk/jpki-kiosk | grep 'not found' || true)
[ -z "$missing" ] || { echo "build.sh: the kiosk binary lacks libraries in the image: $missing" >&2; exit 1; }
groups=lp,video,input
for g in render pcscd; do chroot "$root" getent group "$g" >/dev/null && groups=$groups,$g; done
chroot "$root" groupadd --system jpki-kiosk
chroot "$root" useradd --system --gid jpki-kiosk --groups "$groups" --home-dir /var/lib/jpki-kiosk \
  --no-create-home --shell /usr/sbin/nologin jpki-kiosk
chroot "$root" passwd --lock root >/dev/null
uid=$(chroot "$root" id -u jpki-kiosk) gid=$(chroot "$root" id -g jpki-kiosk)
# No login anywhere: no getty on VTs or the serial console (it only shows logs).
chroot "$root" systemctl mask getty@.service serial-getty@.service autovt@.service console-getty.service \
  getty.target >/dev/null 2>&1
# The root is read-only and updates come as signed bundles: no apt timers.
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer >/dev/null 2>&1
chroot "$root" systemctl enable jpki-kiosk.service jpki-kiosk-doctor.service jpki-kiosk-udev-site.service \
  systemd-networkd.service systemd-timesyncd.service pcscd.socket >/dev/null 2>&1
chroot "$root" systemctl set-default multi-user.target >/dev/null
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nType=ether\n\n[Network]\nDHCP=yes\n' > "$root/etc/systemd/network/20-wired.network"
ln -sfn /var/lib/jpki-kiosk/system/timesyncd.conf "$root/etc/systemd/timesyncd.conf.d/50-site.conf"
echo jpki-kiosk > "$root/etc/hostname"
: > "$root/etc/machine-id"   # a transient id per boot: the root is read-only
mkdir -p "$root/var/lib/jpki-kiosk" "$root/var/log/journal"
cat > "$root/etc/fstab" <<FSTAB
# The root is read-only; the data partition holds everything that changes.
PARTUUID=${DISK_ID}-02  /                   ext4   ro,noatime,errors=remount-ro          0 1
PARTUUID=${DISK_ID}-03  /var/lib/jpki-kiosk ext4   rw,nosuid,nodev,noatime,commit=5      0 2
/var/lib/jpki-kiosk/system/journal /var/log/journal none bind,x-systemd.requires-mounts-for=/var/lib/jpki-kiosk 0 0
tmpfs  /tmp              tmpfs  mode=1777,nosuid,nodev,size=256M  0 0
tmpfs  /var/tmp          tmpfs  mode=1777,nosuid,nodev,size=64M   0 0
tmpfs  /var/lib/systemd  tmpfs  mode=0755,nosuid,nodev,size=16M   0 0
tmpfs  /var/cache        tmpfs  mode=0755,nosuid,nodev,size=64M   0 0
FSTAB
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1); initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)
cp "$kernel" "$work/vmlinuz"; cp "$initrd" "$work/initrd.img"
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/usr/share/jpki-kiosk/.keep"

# The data partition's factory content: system/ is root's, the rest the kiosk's.
mkdir -p "$data/system/slots" "$data/system/journal" "$data/system/udev"
printf '# NTP servers of this site, e.g.\n# [Time]\n# NTP=ntp.example.lg.jp\n' > "$data/system/timesyncd.conf"
chown -R 0:0 "$data"
if [ -n "$seed" ]; then
  # The kiosk's files (not system/, which stays root's).
  (cd "$seed" && find . -mindepth 1 -maxdepth 1 ! -name system -exec cp -a {} "$data/" \;)
  find "$data" -mindepth 1 -path "$data/system" -prune -o -exec chown "$uid:$gid" {} +
fi
chown "$uid:$gid" "$data"; chmod 0750 "$data"

stamp "file systems"
root_mb=$(( $(du -sm "$root" | cut -f1) * 13 / 10 + 64 ))
mkfs.ext4 -q -F -L jpki-root -d "$root" "$work/root.img" "${root_mb}M"
mkfs.ext4 -q -F -L jpki-data -d "$data" "$work/data.img" "${DATA_MB}M"
mkfs.vfat -F 32 -n JPKI-BOOT -C "$work/boot.img" $((BOOT_MB * 1024)) >/dev/null
cat > "$work/syslinux.cfg" <<CFG
SERIAL 0 115200
DEFAULT kiosk
PROMPT 0
TIMEOUT 0
LABEL kiosk
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=PARTUUID=${DISK_ID}-02 ro console=tty1 console=ttyS0,115200 panic=10
CFG
mcopy -i "$work/boot.img" "$work/vmlinuz" "$work/initrd.img" "$work/syslinux.cfg" ::/
syslinux --install "$work/boot.img"

stamp "disk image"
s_boot=2048 n_boot=$((BOOT_MB * 2048)); n_root=$((root_mb * 2048)); n_data=$((DATA_MB * 2048))
s_root=$((s_boot + n_boot)); s_data=$((s_root + n_root))
rm -f "$out"; truncate -s $(( (s_data + n_data + 2048) * 512 )) "$out"
sfdisk -q "$out" <<PT
label: dos
label-id: 0x${DISK_ID}
unit: sectors
start=${s_boot}, size=${n_boot}, type=c, bootable
start=${s_root}, size=${n_root}, type=83
start=${s_data}, size=${n_data}, type=83
PT
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$out" bs=440 count=1 conv=notrunc status=none
dd if="$work/boot.img" of="$out" bs=512 seek=$s_boot conv=notrunc,sparse status=none
dd if="$work/root.img" of="$out" bs=512 seek=$s_root conv=notrunc,sparse status=none
dd if="$work/data.img" of="$out" bs=512 seek=$s_data conv=notrunc,sparse status=none
stamp "done: $out ($(du -h --apparent-size "$out" | cut -f1), root ${root_mb} MiB)"
