#!/bin/bash
# Build the ZFS test images with the real ZFS (zfs-fuse 0.7, pool version <= 23) and
# write them, xz-compressed, with a manifest of every file, to tests/fixtures/zfs/.
#
# Run as root: zfs-fuse needs /dev/fuse. Debian packages: zfs-fuse xz-utils python3.
# The manifest is read back through the zfs-fuse mount, so it is what ZFS itself says
# the pool holds; tests/test_zfs.py compares what pygrub reads against it.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=$here/tests/fixtures/zfs
work=$(mktemp -d /tmp/zfs-fixtures.XXXXXX)
mkdir -p "$out"
daemon_pid=
pools=()

cleanup() {
    for pool in "${pools[@]}"; do [ -n "$pool" ] && zpool export -f "$pool" 2>/dev/null || true; done
    if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if ! zpool list >/dev/null 2>&1; then
    /usr/sbin/zfs-fuse --no-daemon >"$work/zfs-fuse.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 50); do zpool list >/dev/null 2>&1 && break; sleep 0.2; done
fi

# Text that xz squeezes to nothing but no ZFS compressor erases: numbered lines.
lines() { # lines COUNT TAG
    python3 -c 'import sys; n, tag = int(sys.argv[1]), sys.argv[2]
sys.stdout.write("".join(f"{tag} line {i:08d} {(i * 2654435761) % 4294967296:010d}\n" for i in range(n)))' "$1" "$2"
}

vdev() { # vdev NAME -> a 64 MiB sparse file
    truncate -s 64M "$work/$1"
    echo "$work/$1"
}

create() { # create POOL MOUNTPOINT VDEV-SPEC... (pool options come from $POOL_OPTS)
    local pool=$1 mnt=$2
    shift 2
    # shellcheck disable=SC2086
    zpool create -f -o version=23 ${POOL_OPTS:-} -m "$mnt" "$pool" "$@"
    pools+=("$pool")
}

# Common content: small files, a file with indirect blocks, a sparse file, symlinks
# (short ones live in the znode's bonus buffer, long ones in a data block).
populate() { # populate DIR TAG
    local dir=$1 tag=$2
    mkdir -p "$dir/boot/grub" "$dir/etc" "$dir/links" "$dir/empty"
    echo "hello from $tag" >"$dir/hello.txt"
    : >"$dir/etc/empty-file"
    lines 40 "$tag-small" >"$dir/etc/small.txt"
    lines 9000 "$tag-medium" >"$dir/etc/medium.txt"
    ln -s ../hello.txt "$dir/links/short"
    ln -s "../etc/././././././././././././././././././././././././././././././././././medium.txt" "$dir/links/long"
    ln -s /boot/grub "$dir/links/absolute"
    ln -s missing "$dir/links/dangling"
}

export_pool() { # zfs-fuse can call a pool busy for a moment after heavy writes
    for _ in $(seq 20); do
        sync
        zpool export "$1" 2>/dev/null && return 0
        sleep 1
    done
    zpool export "$1"
}

finish() { # finish POOL IMAGE-NAME VDEV
    local pool=$1 name=$2 vdev=$3
    python3 "$here/scripts/zfs-manifest.py" "$pool" >"$out/$name.manifest.json"
    export_pool "$pool"
    pools=("${pools[@]/$pool}")
    xz -9e -T1 -c "$vdev" >"$out/$name.img.xz"
    echo "$name: $(stat -c %s "$out/$name.img.xz") bytes compressed"
}

# 1. Uncompressed, small records: indirect blocks, a fat ZAP directory, /boot on the root dataset.
v=$(vdev plain)
create zplain /zfx/plain "$v"
zfs set compression=off zplain
zfs create -o recordsize=4k zplain/small
populate /zfx/plain plain
lines 60000 plain-big >/zfx/plain/small/big.txt   # ~2 MiB in 4 KiB records: 2 levels of indirects
lines 3000 plain-records >/zfx/plain/small/records.txt
dd if=/dev/zero of=/zfx/plain/small/sparse bs=4k count=1 seek=300 status=none
echo "tail" >>/zfx/plain/small/sparse
mkdir /zfx/plain/many
for i in $(seq -w 1 2100); do echo "$i" >"/zfx/plain/many/entry-$i"; done
finish zplain plain "$v"

# 2. lzjb and 3. gzip-9 (with two copies of every block), then zle.
for comp in lzjb gzip-9 zle; do
    name=${comp%%-*}
    v=$(vdev "$name")
    create "z$name" "/zfx/$name" "$v"
    zfs set compression="$comp" "z$name"
    [ "$comp" = gzip-9 ] && zfs set copies=2 "z$name"
    populate "/zfx/$name" "$name"
    lines 20000 "$name-big" >"/zfx/$name/big.txt"
    dd if=/dev/zero of="/zfx/$name/zeros" bs=64k count=8 status=none
    finish "z$name" "$name" "$v"
done

# 4. A two-way mirror; only the first member is kept.
a=$(vdev mirror-a)
b=$(vdev mirror-b)
create zmirror /zfx/mirror mirror "$a" "$b"
populate /zfx/mirror mirror
finish zmirror mirror "$a"

# 5. A boot pool: datasets, bootfs, a snapshot and a clone; the kernel lives in bootfs.
v=$(vdev boot)
create rpool /zfx/rpool "$v"
zfs create -o mountpoint=none rpool/ROOT
zfs create -o mountpoint=/zfx/os rpool/ROOT/os
zfs create -o mountpoint=/zfx/data rpool/data
populate /zfx/os os
lines 30000 kernel >/zfx/os/boot/vmlinuz-2.6.32
lines 10000 initrd >/zfx/os/boot/initrd.img-2.6.32
cat >/zfx/os/boot/grub/menu.lst <<'MENU'
default 0
timeout 5
title ZFS guest
    root (hd0,0)
    kernel /boot/vmlinuz-2.6.32 root=ZFS=rpool/ROOT/os ro
    initrd /boot/initrd.img-2.6.32
title Other
    kernel /boot/other
MENU
echo "data set" >/zfx/data/readme
zfs snapshot rpool/ROOT/os@install
zfs clone -o mountpoint=/zfx/clone rpool/ROOT/os@install rpool/ROOT/clone
echo "only in the clone" >/zfx/clone/clone-only.txt
rm /zfx/clone/etc/small.txt
zpool set bootfs=rpool/ROOT/os rpool
finish rpool boot "$v"

# 6. Ubuntu's boot pool layout: no bootfs, one dataset under BOOT mounted at /boot.
v=$(vdev bpool)
create bpool /zfx/bpool "$v"
zfs create -o mountpoint=none bpool/BOOT
zfs create -o mountpoint=/zfx/ubuntu bpool/BOOT/ubuntu_ab12cd
mkdir -p /zfx/ubuntu/grub
lines 2000 ubuntu-kernel >/zfx/ubuntu/vmlinuz-5.15.0-generic
echo "set default=0" >/zfx/ubuntu/grub/grub.cfg
finish bpool bpool "$v"
