#!/usr/bin/env bash
# Builds the Docker image the package test installs tether-host into: Debian bookworm with
# systemd as PID 1 and wpa_supplicant, laid into a root filesystem here by debootstrap
# from Debian's packages (no registry is needed) and imported. An image already built is
# kept; TETHER_DEBIAN_REBUILD=1 builds it again.
#
# Usage: deploy/debian-image.sh   (prints the image's name)
# TETHER_DEBIAN_MIRROR overrides the mirror (http://deb.debian.org/debian). Exits 3 when
# docker or debootstrap is missing, saying how to get it, so a test can skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tag changes with what goes into the image.
image=tether-debian-systemd:bookworm-1
mirror=${TETHER_DEBIAN_MIRROR:-http://deb.debian.org/debian}

docker info >/dev/null 2>&1 || { echo "debian-image: no Docker engine (docker info failed)" >&2; exit 3; }
if [ -z "${TETHER_DEBIAN_REBUILD:-}" ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image"
    exit 0
fi
command -v debootstrap >/dev/null ||
    { echo "debian-image: debootstrap is missing: apt-get install debootstrap" >&2; exit 3; }
[ "$(id -u)" -eq 0 ] || { echo "debian-image: debootstrap needs root" >&2; exit 3; }

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/tether-debian-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
echo "debian-image: debootstrap bookworm from $mirror (a few minutes)..." >&2
start=$(date +%s)
if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,wpasupplicant,iproute2 \
    bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
    tail -n 20 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    echo "debian-image: debootstrap failed" >&2
    exit 1
fi
rm -f "$rootfs.log"
# The test starts its own wpa_supplicant (the distribution's unit wants D-Bus); nothing
# in the container needs a login console.
ln -sf /dev/null "$rootfs/etc/systemd/system/wpa_supplicant.service"
ln -sf /dev/null "$rootfs/etc/systemd/system/getty.target"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import --change 'CMD ["/sbin/init"]' - "$image" >/dev/null
echo "debian-image: $image built in $(($(date +%s) - start)) s" >&2
echo "$image"
