"""GRUB blocklists (``load_env -f (hd0,gpt2)512+1``, ``source``, ``configfile``) and GRUB
2.14's environment block in Btrfs's reserved area.

Oracles: grub-fstest, GRUB's own blocklist reader, for the syntax and the bytes read;
grub-emu, reading the same disk image, for the default a Btrfs /boot with ``env_block``
gives; grub-editenv for the blocks' contents. GRUB 2.14 itself (its grub-editenv writing
the block, its grub-emu reading it) made tests/fixtures/envblock, see
scripts/make-envblock-fixtures.sh.
"""

from __future__ import annotations

import json
import lzma
import random
import subprocess
from pathlib import Path

import pytest
from grubtools import editenv, grub_emu
from imaging import MiB, make_partitioned, require_tool, run, write_tree

from pygrub.boot import open_guest
from pygrub.config import find_menu
from pygrub.config.grub2 import session_of
from pygrub.config.grub2.blocklist import SECTOR_SIZE, blocklist_runs, read_blocklist
from pygrub.disk.source import FileSource, MemorySource
from pygrub.errors import CorruptError, LimitError
from pygrub.limits import MAX_CONFIG_BYTES

FIXTURES = Path(__file__).parent / "fixtures" / "envblock"

FIXTURES = Path(__file__).parent / "fixtures" / "envblock"

#: GRUB_ENV_BTRFS_OFFSET (include/grub/fs.h, GRUB 2.14): the block's place in the partition.
ENV_BTRFS_OFFSET = 256 * 1024
SIGNATURE = b"# GRUB Environment Block\n"
BIOS_BOOT = "21686148-6449-6e6f-744e-656564454649"

#: The lines GRUB 2.14's util/grub.d/00_header.in writes, and one that shows the result.
HEADER = """\
if [ -s $prefix/grubenv ]; then
  load_env
fi

if [ "${env_block}" ] ; then
  set env_block="(${root})${env_block}"
  export env_block
  load_env -f "${env_block}"
fi

if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   if [ "${env_block}" ] ; then
     save_env -f "${env_block}" next_entry
   else
     save_env next_entry
   fi
   set boot_once=true
else
   set default="${saved_entry}"
fi
echo "default=[${default}]"
"""

ENTRIES = "".join(
    f"menuentry 'Debian, with Linux 6.12.{n}' --id 'linux-{n}' {{\n"
    f"\tlinux /boot/vmlinuz-6.12.{n} root=LABEL=root ro quiet\n}}\n"
    for n in range(3)
)
CONFIG = HEADER + ENTRIES


# -- the blocklist syntax, against grub-fstest -------------------------------------------


def numbered_disk(path: Path, sectors: int) -> Path:
    """Every sector says its own number, so a wrong run reads wrong bytes."""
    rng = random.Random(sectors)
    path.write_bytes(
        b"".join(n.to_bytes(8, "little") + rng.randbytes(SECTOR_SIZE - 8) for n in range(sectors))
    )
    return path


def fstest_cat(disk: Path, name: str) -> bytes | None:
    """What grub-fstest reads from blocklist ``name`` of (loop0), None when GRUB refuses it."""
    proc = subprocess.run(
        [require_tool("grub-fstest"), str(disk), "cat", f"(loop0){name}"],
        capture_output=True,
        timeout=30,
    )
    if proc.returncode != 0:
        assert b"error" in proc.stderr, proc.stderr
        return None
    return proc.stdout


def ours(disk: Path, name: str) -> bytes | None:
    source = MemorySource(disk.read_bytes())
    try:
        return read_blocklist(source, name, name, MAX_CONFIG_BYTES)
    except CorruptError:
        return None


def random_blocklist(rng: random.Random, sectors: int) -> str:
    """Mostly well-formed runs near the disk's end, and damaged ones."""

    def number(limit: int) -> str:
        value = rng.choice((0, 1, rng.randrange(limit), limit - 1, limit, limit + 1, 1 << 64))
        form = rng.choice(("{}", "{}", "0x{:x}", "0{:o}", " {}"))
        return form.format(value)

    runs = []
    for _ in range(rng.randint(1, 4)):
        first = "" if rng.random() < 0.1 else number(sectors)
        runs.append(f"{first}+{number(8)}")
    name = ",".join(runs)
    if rng.random() < 0.3:
        i = rng.randrange(len(name) + 1)
        name = name[:i] + rng.choice("+, x-\t0") + name[i:]
    # GRUB 2.06 (grub-fstest here) has no open-ended runs (N+): 2.14's are tested below.
    if name.endswith("+") or "+," in name:
        name += "1"
    return name.replace("+,", "+1,")


def test_blocklists_read_as_grub_fstest(tmp_path):
    sectors = 64
    disk = numbered_disk(tmp_path / "disk.img", sectors)
    rng = random.Random(2026)
    names = ["1+2,5+1", "0+64", "63+1", "63+2", "1+0", "+3", "0x3+0x2", "010+1", "08+1"]
    names += ["3+1,3+1", "2+4,1+2", "1+1 ", "1+1 2+2", "1+1 ,2+2", "1+1, 2+2", "1+1,", ""]
    names += ["x", "1", "1+1x", "-1+1", "1+-1", f"{1 << 64}+1", "1+18446744073709551615"]
    names += [random_blocklist(rng, sectors) for _ in range(80)]
    refused = 0
    for name in names:
        want = fstest_cat(disk, name)
        assert ours(disk, name) == want, name
        refused += want is None
    assert 0 < refused < len(names)


def test_open_ended_runs_reach_the_device_end():
    """GRUB 2.14 (kern/fs.c): a run without a count is the rest of the device."""
    assert blocklist_runs("+", 100, "x", None) == [(0, 100)]
    assert blocklist_runs("90+,+2", 100, "x", None) == [(90, 10), (0, 2)]
    with pytest.raises(CorruptError, match="run 1 starts past the device"):
        blocklist_runs("100+", 100, "x", None)
    with pytest.raises(CorruptError, match=r"run 2 \(99\+2\) ends past the device's 100"):
        blocklist_runs("1+1,99+2", 100, "(hd0,gpt2)1+1,99+2", None)


class CountingSource(MemorySource):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def pread(self, offset: int, length: int) -> bytes:
        self.reads += 1
        return super().pread(offset, length)


@pytest.mark.parametrize(
    "name",
    [
        "0+",  # the whole 4 MiB device
        "0+" + str(MAX_CONFIG_BYTES // SECTOR_SIZE + 1),
        ",".join(["0+1"] * 100_000),  # huge count of runs, each small
        ",".join(["0+8000"] * 3),  # overlapping runs, past the bound together
    ],
)
def test_blocklists_are_bounded_before_anything_is_read(name):
    source = CountingSource(bytes(4 * MiB))
    with pytest.raises(LimitError, match=f"over {MAX_CONFIG_BYTES} bytes"):
        read_blocklist(source, name, "(hd0)" + name[:20], MAX_CONFIG_BYTES)
    assert source.reads == 0


# -- GRUB 2.14's Btrfs environment block, images made here --------------------------------


def empty_block(tmp: Path) -> Path:
    """A block as GRUB 2.14's grub-editenv first writes it (util/grub-editenv.c,
    create_env_on_block): the signature, then '#' up to one 512-byte sector."""
    path = tmp / "block"
    path.write_bytes(SIGNATURE + b"#" * (SECTOR_SIZE - len(SIGNATURE)))
    return path


def btrfs_boot_disk(
    tmp: Path, file_values: dict[str, str], block: bytes, config: str = CONFIG
) -> Path:
    """A GPT disk: (hd0,gpt1) 1 MiB of BIOS boot, (hd0,gpt2) Btrfs holding /boot/grub with
    ``grub.cfg`` and a grubenv of ``file_values``, and ``block`` at 256 KiB of gpt2."""
    tree = write_tree(tmp / "tree", {"boot/grub/grub.cfg": config})
    editenv(tree / "boot" / "grub" / "grubenv", **file_values)
    fs = tmp / "btrfs.img"
    fs.unlink(missing_ok=True)
    with open(fs, "wb") as f:
        f.truncate(128 * MiB)
    run("mkfs.btrfs", "-q", "-f", "-L", "root", "-r", tree, fs)
    disk = make_partitioned(tmp, [(1, BIOS_BOOT), (fs, "L")], label="gpt")
    with open(disk, "r+b") as f:
        f.seek(4096 * SECTOR_SIZE + ENV_BTRFS_OFFSET)
        f.write(block)
    return disk


def pygrub_view(disk: Path) -> tuple[str, str, str]:
    """(what the config echoed, the default entry's id, why) as pygrub loads the disk."""
    source = FileSource(str(disk))
    try:
        guest = open_guest(source)
        volume = guest.find_volume("hd0,gpt2")
        assert volume is not None
        menu, _attempts = find_menu(guest, volume, guest.filesystem(volume))
        assert menu is not None
        entry = menu.item_at(menu.default)
        echoed = session_of(menu).output
        return echoed, entry.id, menu.default_reason
    finally:
        source.close()


def grub_view(disk: Path, tmp: Path) -> str:
    """What grub-emu's run of the guest's grub.cfg echoed, reading the same disk."""
    text = "set root=hd0,gpt2\nset prefix=($root)/boot/grub\nsource $prefix/grub.cfg\n"
    return grub_emu(text, tmp / "emu", disk=disk)


CASES = {
    # grub-reboot: next_entry in the block wins over the file's saved_entry.
    "next_entry": ({"saved_entry": "linux-0"}, {"next_entry": "linux-2"}, "linux-2"),
    # savedefault at boot writes saved_entry into the block, which is read after the file.
    "saved_entry": ({"saved_entry": "linux-0"}, {"saved_entry": "linux-1"}, "linux-1"),
    "nothing in the block": ({"saved_entry": "linux-1"}, {}, "linux-1"),
}


@pytest.mark.parametrize("case", CASES)
def test_btrfs_env_block_default_same_as_grub(case, tmp_path):
    file_values, block_values, want = CASES[case]
    block = editenv(empty_block(tmp_path), **block_values)
    assert len(block) == SECTOR_SIZE
    disk = btrfs_boot_disk(tmp_path, {**file_values, "env_block": "512+1"}, block)
    echoed, default_id, reason = pygrub_view(disk)
    assert echoed == grub_view(disk, tmp_path)
    assert echoed == f"default=[{want}]\n"
    assert default_id == want
    source = "(hd0,gpt2)512+1" if block_values else "/boot/grub/grubenv"
    name = "next_entry" if "next_entry" in block_values else "saved_entry"
    assert reason == f"{name}={want} from {source}"


#: env_block's value and the block (None: one holding next_entry=linux-2), and the
#: default GRUB and pygrub take: linux-2 when the block is read, else the file's linux-1.
HOSTILE = {
    "garbage block": ("512+1", b"\xff" * SECTOR_SIZE, "linux-1"),
    "no signature": ("512+1", b"next_entry=linux-2\n".ljust(SECTOR_SIZE, b"#"), "linux-1"),
    "past the partition": ("300000+1", None, "linux-1"),
    "huge count": ("512+18446744073709551615", None, "linux-1"),
    "count past 64 bits": ("512+18446744073709551616", None, "linux-1"),
    "zero count": ("512+0", None, "linux-1"),
    # GRUB reads the whole partition and finds no signature; pygrub stops at its bound.
    "the whole partition": ("0+262136", None, "linux-1"),
    "not a blocklist": ("/boot/grub/grubenv", None, "linux-1"),
    "garbage name": ("5x12+1", None, "linux-1"),
    # Runs that overlap or repeat are read as listed: the block's first copy counts.
    "overlapping": ("512+1,511+2", None, "linux-2"),
    "many runs": (",".join(["512+1"] * 150), None, "linux-2"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_env_block_read_as_grub(case, tmp_path):
    """A block or an env_block GRUB cannot use leaves the file's values, in both."""
    env_block, raw, want = HOSTILE[case]
    block = raw if raw is not None else editenv(empty_block(tmp_path), next_entry="linux-2")
    disk = btrfs_boot_disk(tmp_path, {"saved_entry": "linux-1", "env_block": env_block}, block)
    echoed, default_id, _reason = pygrub_view(disk)
    assert echoed == grub_view(disk, tmp_path)
    assert default_id == want, echoed


def test_source_and_configfile_read_blocklists_as_grub(tmp_path):
    """GRUB opens any file name without '/' as a blocklist, for ``source`` too."""
    script = b"echo from-blocklist\nset saved_entry=linux-2\n".ljust(2 * SECTOR_SIZE, b"\n")
    config = "source (hd0,gpt1)0+2\nconfigfile (hd0,gpt1)0+2x\n" + CONFIG
    disk = btrfs_boot_disk(tmp_path, {}, b"", config=config)
    with open(disk, "r+b") as f:
        f.seek(2048 * SECTOR_SIZE)
        f.write(script)
    echoed, default_id, _reason = pygrub_view(disk)
    assert echoed == grub_view(disk, tmp_path)
    assert echoed == "from-blocklist\ndefault=[linux-2]\n"
    assert default_id == "linux-2"


# -- made by GRUB 2.14 itself ------------------------------------------------------------


def test_grub_2_14_wrote_the_block_and_chose_the_default(tmp_path):
    """grub-editenv 2.14 wrote env_block=512+1 into the mounted Btrfs's grubenv and the
    block at 256 KiB of its partition (next_entry, as grub-reboot does); grub-emu 2.14
    read them and chose the default pygrub chooses."""
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    disk = tmp_path / "disk.img"
    disk.write_bytes(lzma.decompress((FIXTURES / manifest["image"]).read_bytes()))
    at = manifest["partition_start_sector"] * SECTOR_SIZE + ENV_BTRFS_OFFSET
    (tmp_path / "block").write_bytes(disk.read_bytes()[at : at + SECTOR_SIZE])
    assert run("grub-editenv", tmp_path / "block", "list").decode() == manifest["block_list"]
    assert "next_entry=linux-2\n" in manifest["block_list"]
    assert "env_block=512+1\n" in manifest["grubenv"]
    echoed, default_id, reason = pygrub_view(disk)
    assert echoed == manifest["grub_emu_echo"] == "default=[linux-2]\n"
    assert default_id == "linux-2"
    assert reason == "next_entry=linux-2 from (hd0,gpt2)512+1"
    # GRUB's boot emptied next_entry with save_env into the block (of a copy of the image);
    # pygrub never writes, so the image still says linux-2.
    assert manifest["block_list_after_boot"] == "next_entry=\n"
