#!/usr/bin/env bash
# The README's test command: install the test tools (Debian packages when root, Python
# packages in a venv), then ruff, mypy and the whole pytest suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
    e2fsprogs fdisk gdisk util-linux dosfstools mtools xorriso genisoimage binutils
    xfsprogs btrfs-progs f2fs-tools squashfs-tools erofs-utils qemu-utils liblzo2-dev gcc makefs reiserfsprogs lvm2 mdadm zfs-fuse
    qemu-system-x86 busybox-static cpio groff-base man-db
    grub-common grub-emu rpm systemd systemd-boot systemd-boot-efi xen-utils-4.17
    mmdebstrap
    make python3-lz4 python3-zstandard xz-utils zstd bzip2 isolinux
)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "test tools missing: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

venv=${PYGRUB_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -e '.[test]'
"$venv/bin/ruff" check src tests bench scripts fuzz
"$venv/bin/ruff" format --check src tests bench scripts fuzz
"$venv/bin/mypy"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
