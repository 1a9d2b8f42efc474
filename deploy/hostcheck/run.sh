#!/bin/bash
# Run docs/deploy.md on a freshly booted Debian 12 VM with systemd as PID 1 (`make deploy-check`).
#
# Host side: build (once, cached) a minimal Debian 12 root file system with a kernel, build the
# release artefacts an operator receives (wheel + source archive, and a "0.2.0" wheel for the
# upgrade), cut the guide's ```sh blocks into files (blocks.py), boot the VM under qemu (KVM when
# /dev/kvm works, else TCG: slow but it works) with a 9p share holding all that, and wait. The
# guest (guest.sh, started by hostcheck.service at boot) runs the blocks in the guide's order,
# checks the outcome, writes out/result.txt and powers off. See README.md in this directory.
#
# Needs root and Debian/Ubuntu packages debootstrap, qemu-system-x86 (installed when missing).
# Env: HOSTCHECK_DIR (work dir, default /var/tmp/curtaild-hostcheck), HOSTCHECK_MIRROR,
# HOSTCHECK_TIMEOUT_S (default 1800), HOSTCHECK_REBUILD=1 (rebuild the cached base image),
# HOSTCHECK_KEEP=1 (a failed run keeps the VM up for debugging until the timeout; guest.sh).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${HOSTCHECK_DIR:-/var/tmp/curtaild-hostcheck}
MIRROR=${HOSTCHECK_MIRROR:-http://deb.debian.org/debian}
TIMEOUT_S=${HOSTCHECK_TIMEOUT_S:-1800}
BASE=$WORK/base            # debootstrap + kernel + network config: what a fresh install has
SHARE=$WORK/share          # 9p share, /hostcheck in the guest
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$REPO/controller/__init__.py")
NEXT=0.2.0                 # the version the upgrade goes to (docs/deploy.md section 9)

log() { printf '[hostcheck %s] %s\n' "$(date +%T)" "$*"; }

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, mkfs -d with owners, qemu)"; exit 1; }
missing=""
command -v debootstrap >/dev/null || missing="$missing debootstrap"
command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86"
command -v mkfs.ext4 >/dev/null || missing="$missing e2fsprogs"
if [ -n "$missing" ]; then
    log "installing$missing"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
mkdir -p "$WORK"

# --- 1. the base image (cached) --------------------------------------------------------------
if [ ! -f "$BASE/.done" ] || [ "${HOSTCHECK_REBUILD:-0}" = 1 ]; then
    log "debootstrap bookworm from $MIRROR (minbase + systemd, dbus, kernel; a few minutes)"
    rm -rf "$BASE"
    debootstrap --variant=minbase --include=systemd-sysv,dbus,linux-image-amd64 \
        bookworm "$BASE" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log"; exit 1; }
    "$HERE/guest-base.sh" "$BASE" "$MIRROR"
    touch "$BASE/.done"
fi

# --- 2. what the operator receives, and the guide's blocks -----------------------------------
log "building curtaild $VERSION and $NEXT wheels and the source archive"
rm -rf "$SHARE" && mkdir -p "$SHARE/payload" "$SHARE/blocks" "$SHARE/out"
build=$(mktemp -d "$WORK/build.XXXXXX")
# The working tree as it is (committed or not), as `git archive` would lay it out.
(cd "$REPO" && git ls-files -co --exclude-standard -z | grep -zv '^deploy/hostcheck/' |
    tar --null -T - -cf - --transform "s,^,curtaild-$VERSION/," ) | tar -C "$build" -xf -
tar -C "$build" -czf "$SHARE/payload/curtaild-$VERSION.tar.gz" "curtaild-$VERSION"
pip_wheel() { "$REPO/.venv/bin/pip" wheel --quiet --no-deps "$1" -w "$SHARE/payload"; }
pip_wheel "$build/curtaild-$VERSION"
sed -i "s/^__version__ = .*/__version__ = \"$NEXT\"/" "$build/curtaild-$VERSION/controller/__init__.py"
pip_wheel "$build/curtaild-$VERSION"
rm -rf "$build"
# A wheelhouse for a guest that cannot reach PyPI (the guide's variant for such hosts).
"$REPO/.venv/bin/pip" download --quiet --require-hashes -r "$REPO/requirements.lock" \
    -d "$WORK/wheelhouse" 2>/dev/null
cp -r "$WORK/wheelhouse" "$SHARE/payload/wheelhouse"
python3 "$HERE/blocks.py" "$REPO/docs/deploy.md" deploy "$SHARE/blocks" >/dev/null
python3 "$HERE/blocks.py" "$REPO/deploy/README.md" readme "$SHARE/blocks" >/dev/null
cp "$HERE/guest.sh" "$HERE/guest-checks.sh" "$HERE/sim_site.py" "$SHARE/"
if [ "${HOSTCHECK_KEEP:-0}" = 1 ]; then touch "$SHARE/keep"; fi   # a failed run stays up (guest.sh)
ls "$SHARE/payload"

# --- 3. a fresh disk from the base image -----------------------------------------------------
log "making the disk image"
disk=$WORK/disk.img
rm -f "$disk" && truncate -s 6G "$disk"
mkfs.ext4 -q -F -L curtaild-host -d "$BASE" "$disk"
kernel=$(ls "$BASE"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$BASE"/boot/initrd.img-* | sort -V | tail -1)

# --- 4. boot and wait --------------------------------------------------------------------------
# TCG (software emulation) by default: it works everywhere, KVM included nested, where the
# sandbox this was written in had a /dev/kvm that answered but hung the guest. HOSTCHECK_KVM=1
# asks for KVM.
accel=(-machine q35,accel=tcg -cpu max)
if [ "${HOSTCHECK_KVM:-0}" = 1 ]; then accel=(-machine q35,accel=kvm -cpu host); fi
log "booting the VM (${accel[1]}); guest log: $SHARE/out/guest.log, console: $WORK/console.log"
start=$(date +%s)
qemu-system-x86_64 "${accel[@]}" -m 2048 -smp 2 -display none -monitor none \
    -serial "file:$WORK/console.log" -no-reboot \
    -kernel "$kernel" -initrd "$initrd" -append "root=/dev/vda rw console=ttyS0 net.ifnames=0" \
    -drive "file=$disk,format=raw,if=virtio" \
    -virtfs "local,path=$SHARE,mount_tag=hostcheck,security_model=none,id=hostcheck" \
    -nic user,model=virtio-net-pci &
qemu=$!
trap 'kill $qemu 2>/dev/null || true' EXIT INT TERM
while kill -0 $qemu 2>/dev/null; do
    if [ $(( $(date +%s) - start )) -gt "$TIMEOUT_S" ]; then
        log "timeout after ${TIMEOUT_S}s: stopping the VM"; kill $qemu; break
    fi
    sleep 5
done
wait $qemu 2>/dev/null || true
trap - EXIT INT TERM
log "VM stopped after $(( $(date +%s) - start )) s"

echo "----- result (guest's out/result.txt) -----"
cat "$SHARE/out/result.txt" 2>/dev/null || echo "no result: see $WORK/console.log"
# Passed only when the guest's last line says so (a failure stops it at the step that failed).
tail -1 "$SHARE/out/result.txt" 2>/dev/null | grep -q 'RESULT: PASS$'
