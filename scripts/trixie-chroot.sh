#!/usr/bin/env bash
# Make DIR a Debian 13 (trixie) chroot holding PACKAGE..., for the fixture scripts: the
# host's packages are never upgraded, its tools never used for these images.
#
# A DIR that already has every PACKAGE is kept as it is, so a chroot made once (the
# scripts' TRIXIE_ROOT=DIR) serves every later run. A DIR this script made that lacks one
# is made again with the packages it had and the new ones (the essential variant has no
# apt to add them with); any other non-empty DIR is refused, never deleted.
#
# Usage: scripts/trixie-chroot.sh DIR PACKAGE...
#
# Needs: mmdebstrap, root, and Debian's archive.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR PACKAGE..." >&2; exit 2; }
root=$1
shift
# The packages the chroot was made with, one a line: the mark that this script made it.
mark=.trixie-chroot-packages

has_packages() { # has_packages DIR PACKAGE...
    local dir=$1 package
    shift
    [ -x "$dir/usr/bin/dpkg-query" ] || return 1
    for package in "$@"; do
        # shellcheck disable=SC2016  # ${Status} is dpkg-query's, not the shell's
        [ "$(chroot "$dir" dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = \
            "install ok installed" ] || return 1
    done
}

make_chroot() { # make_chroot DIR PACKAGE...
    local dir=$1
    shift
    mmdebstrap --quiet --variant=essential --mode=root --include="$(IFS=,; echo "$*")" \
        trixie "$dir" \
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main"
    printf '%s\n' "$@" >"$dir/$mark"
}

if ! has_packages "$root" "$@"; then
    if [ ! -e "$root" ] || [ -z "$(ls -A "$root")" ]; then
        make_chroot "$root" "$@"
    elif [ -f "$root/$mark" ]; then
        mapfile -t had <"$root/$mark"
        wanted=$(printf '%s\n' "${had[@]}" "$@" | sort -u)
        rm -rf "$root.new"
        # shellcheck disable=SC2086  # package names are words
        make_chroot "$root.new" $wanted
        mv "$root" "$root.old"
        mv "$root.new" "$root"
        rm -rf "$root.old"
    else
        echo "$root is not empty and lacks some of: $*; give a new or empty directory" >&2
        exit 1
    fi
fi
# mkfs and fsck tools look for mounts in /etc/mtab; nothing is mounted in the chroot. A
# symlink there (to /proc/self/mounts) is removed first, not written through to the host.
rm -f "$root/etc/mtab"
: >"$root/etc/mtab"
