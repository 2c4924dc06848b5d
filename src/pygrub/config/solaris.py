"""Solaris and illumos boot facts: for the GRUB legacy loader, and Xen's sniffing of a
disk without a config.

A Solaris x86 kernel lives at ``/platform/<platform>/kernel/[<isa>/]unix``: platform
i86pc runs on bare metal, i86xpv in a Xen paravirtualised domain, and only i86xpv can be
started by Xen's PV domain builder. Both load the i86pc boot archive as their ramdisk.
The kernel takes its own path as the first word of its command line (GRUB passes the
whole ``kernel`` line as the Multiboot command line; Xen's pygrub put it there when it
sniffed a Solaris guest), then flags and ``-B`` property lists. On a ZFS root it finds
its root dataset in the ``zfs-bootfs=<pool>/<dataset object>`` property, which pygrub
fills in from the pool as Xen does with libfsimage's getbootstring.
"""

from __future__ import annotations

import re

from .._typing import TYPE_CHECKING
from ..fs import Filesystem

if TYPE_CHECKING:
    from ..fs.zfs import ZfsFilesystem

#: /platform/<platform>/kernel/[amd64/]unix (32-bit kernels sit right in kernel/).
SOLARIS_KERNEL = re.compile(r"/platform/(?P<platform>[^/]+)/kernel/(?P<isa>(?:amd64/)?)unix")
#: The platform a Xen PV domain runs.
PV_PLATFORM = "i86xpv"
#: What illumos GRUB's $ISADIR becomes on a 64-bit machine; Xen runs 64-bit PV guests.
ISADIR = "amd64"

#: Xen's sniff_solaris without a config: the PV kernels it looks for, 64-bit first, each
#: with the boot archive it boots as the ramdisk.
SNIFFED_KERNELS = (
    ("/platform/i86xpv/kernel/amd64/unix", "/platform/i86pc/amd64/boot_archive"),
    ("/platform/i86xpv/kernel/unix", "/platform/i86pc/boot_archive"),
)
#: Xen's sniff_netware: the NetWare loader it boots when it finds one.
NETWARE_LOADER = "/nwserver/xnloader.sys"

#: Xen's pattern for a ``zfs-bootfs=`` property, widened to take in a whole boot string it
#: made (``,bootpath='...'``), so that putting a boot string in twice changes nothing.
_ZFS_BOOTFS = re.compile(r"zfs-bootfs=[\w\-.:@/]+(?:,bootpath='[^']*')?")
#: Xen's reading of ``zfs-bootfs=`` in --args: the value ends at a blank, a comma or a quote.
_ZFS_BOOTFS_OPTION = re.compile(r'zfs-bootfs=(.*?)[\s,"]')
#: Words Xen's sniff_solaris keeps in front of the kernel path.
_XEN_WORDS = ("root=", "ip=")


def is_solaris_kernel(path: str) -> bool:
    return SOLARIS_KERNEL.fullmatch(path) is not None


def pv_kernel(path: str) -> str | None:
    """The i86xpv kernel of the same ISA as the Solaris kernel ``path``; None if it is none."""
    m = SOLARIS_KERNEL.fullmatch(path)
    if m is None:
        return None
    return f"/platform/{PV_PLATFORM}/kernel/{m['isa']}unix"


def sniffed_args(kernel: str, args: str) -> str:
    """Xen's sniff_solaris command line: its root= and ip= words, the kernel path, the rest.

    Blanks are Xen's too (``"root=x  /platform/.../unix -k "``): libxl passes the line on
    as it is, and so do we.
    """
    if not args:
        return kernel
    words = args.split()
    xen = "".join(w + " " for w in words if w.startswith(_XEN_WORDS))
    user = "".join(w + " " for w in words if not w.startswith(_XEN_WORDS) and w != kernel)
    return f"{xen} {kernel} {user}"


def zfs_bootfs_option(args: str) -> str | None:
    """The dataset a ``zfs-bootfs=`` in --args names, read as Xen reads it; None if none."""
    m = _ZFS_BOOTFS_OPTION.search(f'"{args}"')
    return (m[1] or None) if m is not None else None


def with_boot_string(args: str, boot_string: str) -> str:
    """Xen's rule for a command line booted from ZFS: every ``zfs-bootfs=`` property becomes
    the pool's boot string, and without one ``-B <boot string>`` is appended. An empty
    command line stays empty, as in Xen."""
    if not args:
        return args
    replaced, count = _ZFS_BOOTFS.subn(lambda _match: boot_string, args)
    return replaced if count else f"{args} -B {boot_string}"


def boot_args(kernel: str, args: str, boot_string: str | None) -> str:
    """The command line Xen's pygrub gives ``kernel`` read from a filesystem with
    ``boot_string`` (ZFS's pool and dataset; None elsewhere). Xen does this for whatever it
    boots from ZFS; only a Solaris kernel reads it, so a Linux command line on ZFS is left
    as its config wrote it."""
    if boot_string is None or not is_solaris_kernel(kernel):
        return args
    return with_boot_string(args, boot_string)


def sniff(fs: Filesystem, extra_args: str) -> tuple[Filesystem, str, str | None, str] | None:
    """Xen's pygrub on a disk without a config: a Solaris PV kernel with its boot archive,
    else a NetWare loader, found by path, as (filesystem, kernel, ramdisk, command line);
    None if neither is there. On ZFS, ``zfs-bootfs=`` in --args names the dataset."""
    dataset = zfs_bootfs_option(extra_args) if fs.kind == "zfs" else None
    if dataset is not None:
        fs = as_zfs(fs).with_dataset(dataset)
    for kernel, ramdisk in SNIFFED_KERNELS:
        if fs.is_file(kernel):
            args = boot_args(kernel, sniffed_args(kernel, extra_args), fs.bootstring())
            return fs, kernel, ramdisk, args
    if fs.is_file(NETWARE_LOADER):
        return fs, NETWARE_LOADER, None, extra_args
    return None


def as_zfs(fs: Filesystem) -> ZfsFilesystem:
    """``fs``, known to be a ZFS one, with the ZFS driver's own methods (its datasets)."""
    from ..fs.zfs import ZfsFilesystem

    assert isinstance(fs, ZfsFilesystem)
    return fs
