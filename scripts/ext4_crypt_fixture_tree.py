#!/usr/bin/env python3
"""The boot tree of the encrypted and casefolded ext4 fixture, and its manifest.

Used by scripts/make-ext4-crypt-fixtures.sh (the tests read the manifest it writes):

    ext4_crypt_fixture_tree.py manifest BOOT LOG DEBUGFS OUT VERSIONS
                        OUT/manifest.json: the image's sha256 and the tools' versions,
                        what the guest printed, debugfs's listing of each directory, and
                        the boot tree (paths from /boot)

write_boot_tree() writes /boot's tree: Debian's kernel, a marker initramfs and the
grub.cfg Debian's grub-mkconfig writes for a /boot on the root filesystem.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from reiserfs_fixture_tree import manifest_text, sha256_file, tree_manifest  # noqa: E402

#: What the real boot test finds after MARKER on the guest's console.
MARKER_TOKEN = "ext4-crypt"
#: The filesystem's UUID (mke2fs -U), which grub.cfg's search names.
UUID = "5f0c2a1e-8d3b-4c6a-9e7f-1b2d3c4e5f60"

#: Debian 13's grub.cfg (00_header trimmed, 10_linux) for a root filesystem holding /boot.
GRUB_CFG = """\
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
set default="0"
if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi
export menuentry_id_option
set timeout=5
### BEGIN /etc/grub.d/10_linux ###
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-@UUID@' {
	insmod gzio
	insmod part_msdos
	insmod ext2
	search --no-floppy --fs-uuid --set=root @UUID@
	echo	'Loading Linux @RELEASE@ ...'
	linux	/boot/vmlinuz-@RELEASE@ root=UUID=@UUID@ ro @ARGS@
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-@RELEASE@
}
### END /etc/grub.d/10_linux ###
"""


def write_boot_tree(
    src: Path, kernel: bytes, release: str, initramfs: Callable[[str], bytes]
) -> None:
    """SRC/boot: what the guest copies into the casefolded /boot."""
    boot = src / "boot"
    (boot / "grub").mkdir(parents=True, exist_ok=True)
    (boot / f"vmlinuz-{release}").write_bytes(kernel)
    (boot / f"initrd.img-{release}").write_bytes(initramfs(MARKER_TOKEN))
    (boot / f"System.map-{release}").write_text("ffffffff81000000 T _stext\n")
    args = f"console=ttyS0 panic=-1 pygrub.test={MARKER_TOKEN}"
    text = GRUB_CFG.replace("@UUID@", UUID).replace("@RELEASE@", release)
    (boot / "grub" / "grub.cfg").write_text(text.replace("@ARGS@", args))


#: One entry of debugfs's ``ls -p``: /inode/mode/uid/gid/name/size/ and a newline (no size
#: for a directory). In an encrypted directory the name is the ciphertext's raw bytes,
#: slashes and newlines too: an entry ends only where the next one, or a blank line, starts.
DEBUGFS_ENTRY = re.compile(
    rb"^/(\d+)/(\d{6})/\d+/\d+/(.*?)/(\d*)/\n(?=/\d+/\d{6}/|\n|\Z)", re.S | re.M
)


def debugfs_listings(text: bytes) -> dict[str, list[dict[str, object]]]:
    """directory -> its entries as debugfs listed them, but for . and ..: inode, mode,
    size, and the name in hex (an encrypted directory's names are not text)."""
    listings: dict[str, list[dict[str, object]]] = {}
    for section in text.split(b"DEBUGFS ")[1:]:
        directory, body = section.split(b"\n", 1)
        listings[directory.decode()] = [
            {"inode": int(inode), "mode": mode.decode(), "name": name.hex(), "size": size.decode()}
            for inode, mode, name, size in DEBUGFS_ENTRY.findall(body)
            if name not in (b".", b"..")
        ]
    return listings


def manifest(boot: Path, log: str, debugfs: bytes, out: Path, versions: str) -> None:
    image = out / "ext4-crypt.img.xz"
    guest = [line for line in log.splitlines() if line.startswith("FIXTURE-")]
    described = {
        image.name: {
            "sha256": sha256_file(image),
            "versions": versions,
            "uuid": UUID,
            "guest": guest,
            "debugfs": debugfs_listings(debugfs),
        }
    }
    (out / "manifest.json").write_text(manifest_text(described, tree_manifest(boot)))


def main(argv: list[str]) -> None:
    if argv[0] != "manifest":
        raise SystemExit(f"unknown command {argv[0]}")
    log = Path(argv[2]).read_text(errors="surrogateescape")
    debugfs = Path(argv[3]).read_bytes()
    manifest(Path(argv[1]) / "boot", log, debugfs, Path(argv[4]), argv[5])


if __name__ == "__main__":
    main(sys.argv[1:])
