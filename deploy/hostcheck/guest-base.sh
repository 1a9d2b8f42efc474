#!/bin/bash
# Finish the debootstrapped root file system ($1) into what a fresh Debian 12 install has, and
# nothing of curtaild's: networking (DHCP on the VM's NIC; qemu's user network), the mirror in
# sources.list, a host name, and the unit that runs the check at boot from the 9p share.
# The site's DNS would resolve the broker's name; here /etc/hosts does.
set -euo pipefail
R=$1
MIRROR=$2

echo "deb $MIRROR bookworm main" >"$R/etc/apt/sources.list"
echo "deb $MIRROR bookworm-updates main" >>"$R/etc/apt/sources.list"
echo "curtaild-host" >"$R/etc/hostname"
cat >"$R/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	curtaild-host
127.0.0.1	mqtt.abilene-1.example
EOF
cat >"$R/etc/fstab" <<'EOF'
/dev/vda	/	ext4	errors=remount-ro	0 1
hostcheck	/hostcheck	9p	trans=virtio,version=9p2000.L,msize=262144,nofail	0 0
EOF
mkdir -p "$R/hostcheck"
cat >"$R/etc/systemd/network/50-dhcp.network" <<'EOF'
[Match]
Name=eth0
[Network]
DHCP=ipv4
EOF
echo "nameserver 10.0.2.3" >"$R/etc/resolv.conf"  # qemu user network's DNS
ln -sf /lib/systemd/system/systemd-networkd.service \
    "$R/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
mkdir -p "$R/etc/systemd/system/network-online.target.wants"
ln -sf /lib/systemd/system/systemd-networkd-wait-online.service \
    "$R/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service"
# Root logs in on the serial console without a password (a throwaway VM; for debugging).
passwd -R "$R" -d root >/dev/null

cat >"$R/etc/systemd/system/hostcheck.service" <<'EOF'
[Unit]
Description=curtaild deploy check (docs/deploy.md, from the 9p share)
Wants=network-online.target
After=network-online.target hostcheck.mount
RequiresMountsFor=/hostcheck

[Service]
Type=oneshot
Environment=HOME=/root
WorkingDirectory=/root
ExecStart=/bin/bash /hostcheck/guest.sh
ExecStopPost=/bin/systemctl poweroff --no-block
TimeoutStartSec=infinity
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/hostcheck.service \
    "$R/etc/systemd/system/multi-user.target.wants/hostcheck.service"
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*
