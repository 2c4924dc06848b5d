"""--output-format=json and -l --output-format=json: every output validates against the schema.

The volume facts are checked against blkid and sgdisk, the extracted bytes against the
files put in the image, and every corpus case's outputs against the schema.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from corpus import ERRATA_ARGS, corpus_cases, load_expected
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import make_ext, make_fat, make_partitioned, run
from test_corpus import _image_for, linux_view

import pygrub
from pygrub.cli import main, parse_args
from pygrub.config.model import (
    CHAINLOADER,
    LINUX,
    MULTIBOOT,
    MULTIBOOT2,
    OTHER,
    BootEntry,
    BootMenu,
    Submenu,
)
from pygrub.errors import PygrubError, UsageError
from pygrub.output import menu_json, render_json

SCHEMA = pygrub.json_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

KERNEL = os.urandom(150_001)
INITRD = os.urandom(40_003)
UCODE = os.urandom(999)

GRUB_CFG = """\
set default="adv>missing"
set fallback="0"
set timeout=3
menuentry 'Debian GNU/Linux' --id debian {
  linux /boot/vmlinuz-6.1 root=/dev/xvda2 ro quiet
  initrd /boot/initrd.img-6.1
}
submenu 'Advanced options' --id adv {
  menuentry 'Debian, recovery' --id recovery {
    linux /boot/vmlinuz-6.1 root=/dev/xvda2 ro single
    initrd /boot/ucode.img /boot/initrd.img-6.1
  }
  menuentry 'Missing kernel' --id missing {
    linux /boot/vmlinuz-gone root=/dev/xvda2
  }
}
menuentry 'Xen hypervisor' --id xen {
  multiboot2 /boot/xen.gz
  module2 /boot/vmlinuz-6.1
}
"""


def guest_tree() -> dict:
    return {
        "boot/grub/grub.cfg": GRUB_CFG,
        "boot/vmlinuz-6.1": KERNEL,
        "boot/initrd.img-6.1": INITRD,
        "boot/ucode.img": UCODE,
        "boot/xen.gz": b"xen",
    }


@pytest.fixture(scope="module")
def gpt_disk(tmp_path_factory) -> tuple[Path, Path]:
    """A GPT disk: an empty FAT ESP, then an ext4 root named "root" holding the guest."""
    tmp = tmp_path_factory.mktemp("gpt")
    esp = make_fat(tmp, {"EFI/BOOT/README": "no config here\n"}, 12, 4 * 1024, "esp.img")
    root = make_ext(tmp, guest_tree(), size_mb=16, options=("-L", "guest-root"))
    disk = make_partitioned(tmp, [(esp, "U"), (root, "L")], label="gpt", name="gpt.img")
    run("sgdisk", "-c", "2:root", disk)
    return disk, root


def validate(document: dict, kind: str) -> dict:
    VALIDATOR.validate(document)
    assert document["type"] == kind and document["version"] == 1
    return document


def run_main(capfdbinary, *argv: str | os.PathLike[str]) -> tuple[int, bytes, str]:
    code = main([str(a) for a in argv])
    out, err = capfdbinary.readouterr()
    return code, out, err.decode("utf-8", "replace")


def json_of(capfdbinary, *argv: str | os.PathLike[str]) -> tuple[dict, str]:
    code, out, err = run_main(capfdbinary, *argv)
    assert code == 0, err
    # Valid UTF-8 whatever the guest wrote, and nothing but the one object.
    return json.loads(out.decode("utf-8")), err


@pytest.fixture(params=[(), ("--no-sandbox",)], ids=["sandboxed", "no-sandbox"])
def mode(request) -> tuple[str, ...]:
    """Both ways a root run makes its JSON: in the sandboxed child (the default) and in
    this process; the documents must be the same."""
    return request.param


def blkid(image: Path) -> dict[str, str]:
    """The filesystem's UUID, LABEL and TYPE as util-linux reads them (the oracle)."""
    out = run("blkid", "-p", "-o", "export", image).decode()
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def root_volume(root: Path) -> dict:
    """The "volume" object of the guest's root, its filesystem as blkid reads it."""
    oracle = blkid(root)
    return {
        "device": "hd0,gpt2",
        "partition": 2,
        "origin": "GPT partition 2 (Linux filesystem)",
        "partition_label": "root",
        "filesystem": {"type": oracle["TYPE"], "uuid": oracle["UUID"], "label": oracle["LABEL"]},
    }


def volume_lines(root: Path) -> list[str]:
    """The explanation's first lines: the ESP skipped, the root read, the config found."""
    oracle = blkid(root)
    return [
        "skipped (hd0,gpt1) GPT partition 1 (EFI system partition): fat (no bootloader config)",
        f"volume (hd0,gpt2) GPT partition 2 (Linux filesystem): ext4 UUID={oracle['UUID']}"
        f" LABEL='{oracle['LABEL']}'",
        "config /boot/grub/grub.cfg (grub2)",
    ]


def menu_entry(title, id, path, kernel, initrds, args, default=False, not_bootable=None) -> dict:
    """One entry of GRUB_CFG as -l --output-format=json describes it."""
    return {
        "type": "entry",
        "title": title,
        "id": id,
        "path": path,
        "default": default,
        "kind": "multiboot2" if kernel == "/boot/xen.gz" else "linux",
        "kernel": kernel,
        "initrds": initrds,
        "args": args,
        "device": "hd0,gpt2",
        "not_bootable": not_bootable,
    }


#: How GRUB_CFG's default falls back (the default names a kernel that is not there).
FALLBACK = [
    "default rule: default=adv>missing",
    "default 1>1 'Missing kernel' cannot boot here: /boot/vmlinuz-gone not found",
    "fallback 0 'Debian GNU/Linux' boots",
]
BOOTED = (
    "boot (hd0,gpt2)/boot/vmlinuz-6.1 + (hd0,gpt2)/boot/ucode.img + (hd0,gpt2)/boot/initrd.img-6.1"
)


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(SCHEMA["$defs"]) >= {"boot", "menu"}


def test_boot_json_names_entry_config_and_volume(gpt_disk, tmp_path, capfdbinary, mode):
    disk, root = gpt_disk
    doc, _err = json_of(
        capfdbinary,
        *mode,
        "-q",
        "--output-format=json",
        f"--output-directory={tmp_path}",
        "--entry=recovery",
        "--args=console=hvc0",
        disk,
    )
    validate(doc, "boot")
    assert Path(doc["kernel"]).read_bytes() == KERNEL
    # Two initrds: concatenated, each padded to 4 bytes, as GRUB loads them.
    assert Path(doc["ramdisk"]).read_bytes() == UCODE + bytes(-len(UCODE) % 4) + INITRD + bytes(
        -len(INITRD) % 4
    )
    assert doc["args"] == "root=/dev/xvda2 ro single console=hvc0"
    assert doc["bootloader"] == "grub2"
    assert doc["config"] == "/boot/grub/grub.cfg"
    assert doc["entry"] == {
        "title": "Debian, recovery",
        "id": "recovery",
        "path": [1, 0],
        "titles": ["Advanced options", "Debian, recovery"],
    }
    assert doc["files"] == {
        "device": "hd0,gpt2",
        "kernel": "/boot/vmlinuz-6.1",
        "initrds": ["/boot/ucode.img", "/boot/initrd.img-6.1"],
    }
    assert doc["volume"] == root_volume(root)
    # The ESP came first and held no config: the explanation says so.
    assert doc["explanation"] == [
        *volume_lines(root),
        "entry 'recovery' names 1>0",
        "boot (hd0,gpt2)/boot/vmlinuz-6.1 + (hd0,gpt2)/boot/ucode.img + (hd0,gpt2)/boot/initrd.img-6.1",
    ]


def test_not_really_json_has_null_paths(gpt_disk, tmp_path, capfdbinary, mode):
    doc, err = json_of(capfdbinary, *mode, "-qn", "--output-format=json", gpt_disk[0])
    validate(doc, "boot")
    assert doc["kernel"] is None and doc["ramdisk"] is None
    # The default names a missing kernel: fallback 0 boots, and the explanation says why.
    assert doc["entry"] == {
        "title": "Debian GNU/Linux",
        "id": "debian",
        "path": [0],
        "titles": ["Debian GNU/Linux"],
    }
    assert doc["args"] == "root=/dev/xvda2 ro quiet"
    assert doc["files"]["initrds"] == ["/boot/initrd.img-6.1"]
    assert doc["explanation"] == [
        *volume_lines(gpt_disk[1]),
        *FALLBACK,
        "boot (hd0,gpt2)/boot/vmlinuz-6.1 + (hd0,gpt2)/boot/initrd.img-6.1",
    ]
    assert "would extract" in err


def test_kernel_flag_json_has_no_entry(gpt_disk, tmp_path, capfdbinary, mode):
    doc, _err = json_of(
        capfdbinary,
        *mode,
        "-q",
        "--output-format=json",
        f"--output-directory={tmp_path}",
        "--kernel=/boot/vmlinuz-6.1",
        "--args=root=/dev/xvda2",
        gpt_disk[0],
    )
    validate(doc, "boot")
    assert (doc["entry"], doc["bootloader"], doc["config"], doc["ramdisk"]) == (
        None,
        None,
        None,
        None,
    )
    assert Path(doc["kernel"]).read_bytes() == KERNEL
    assert doc["args"] == "root=/dev/xvda2"


def test_json_goes_to_the_output_file(gpt_disk, tmp_path, capfdbinary):
    output = tmp_path / "result.json"
    output.touch()
    code, out, err = run_main(
        capfdbinary, "-qn", "--output-format=json", f"--output={output}", gpt_disk[0]
    )
    assert (code, out) == (0, b""), err
    assert validate(json.loads(output.read_bytes()), "boot")["entry"]["id"] == "debian"


def test_list_json_is_the_menu_tree(gpt_disk, capfdbinary, mode):
    doc, err = json_of(capfdbinary, *mode, "-l", "--output-format=json", gpt_disk[0])
    validate(doc, "menu")
    assert err == ""
    assert (doc["bootloader"], doc["config"], doc["timeout"]) == ("grub2", "/boot/grub/grub.cfg", 3)
    assert (doc["default"], doc["default_reason"], doc["chosen"]) == (
        [1, 1],
        "default=adv>missing",
        [0],
    )
    assert doc["volume"] == root_volume(gpt_disk[1])
    assert doc["explanation"] == [*volume_lines(gpt_disk[1]), *FALLBACK]

    linux, initrd = "/boot/vmlinuz-6.1", "/boot/initrd.img-6.1"
    recovery = menu_entry(
        "Debian, recovery",
        "recovery",
        [1, 0],
        linux,
        ["/boot/ucode.img", initrd],
        "root=/dev/xvda2 ro single",
    )
    missing = menu_entry(
        "Missing kernel",
        "missing",
        [1, 1],
        "/boot/vmlinuz-gone",
        [],
        "root=/dev/xvda2",
        default=True,
        not_bootable="/boot/vmlinuz-gone not found",
    )
    xen = menu_entry(
        "Xen hypervisor",
        "xen",
        [2],
        "/boot/xen.gz",
        [],
        "",
        not_bootable="a multiboot2 entry, not a Linux kernel",
    )
    assert doc["items"] == [
        menu_entry("Debian GNU/Linux", "debian", [0], linux, [initrd], "root=/dev/xvda2 ro quiet"),
        {"type": "submenu", "title": "Advanced options", "id": "adv", "path": [1], "default": True,
         "items": [recovery, missing]},
        xen,
    ]  # fmt: skip


def test_list_json_with_explain_keeps_stdout_json(gpt_disk, capfdbinary):
    doc, err = json_of(capfdbinary, "-l", "--explain", "--output-format=json", gpt_disk[0])
    validate(doc, "menu")
    assert err.splitlines() == [f"explain: {line}" for line in doc["explanation"]]


def test_explain_for_people(gpt_disk, tmp_path, capfdbinary):
    code, out, err = run_main(capfdbinary, "-l", "--explain", gpt_disk[0])
    assert code == 0
    lines = out.decode().splitlines()
    # Xen's lines first, unchanged; then the tree with the default marked, ids shown.
    assert lines[0] == "title: Debian GNU/Linux"
    explain = [line for line in lines if line.startswith("explain: ")]
    assert explain[:6] == [
        "explain: menu of /boot/grub/grub.cfg (grub2); * the default:",
        "explain:   0 Debian GNU/Linux [id debian] (boots: fallback)",
        "explain: * 1 Advanced options [id adv] >",
        "explain:     1>0 Debian, recovery [id recovery]",
        "explain: *   1>1 Missing kernel [id missing] "
        "(cannot boot here: /boot/vmlinuz-gone not found)",
        "explain:   2 Xen hypervisor [id xen] "
        "(cannot boot here: a multiboot2 entry, not a Linux kernel)",
    ]
    assert explain[6].startswith("explain: skipped (hd0,gpt1) GPT partition 1")
    assert explain[6].endswith(": fat (no bootloader config)")
    assert "explain: default rule: default=adv>missing" in explain
    code, out, err = run_main(capfdbinary, "-q", "-n", "--explain", gpt_disk[0])
    assert code == 0
    assert "explain: fallback 0 'Debian GNU/Linux' boots" in err.splitlines()
    assert b"explain" not in out


def test_explain_lines_show_no_control_characters(tmp_path, capfdbinary):
    cfg = "menuentry 'Evil \x1b]0;owned\x07 \u202etitle' {\n  linux /k\n}\n"
    image = make_ext(tmp_path, {"boot/grub/grub.cfg": cfg, "k": b"k"}, size_mb=4)
    code, out, _err = run_main(capfdbinary, "-l", "--explain", image)
    assert code == 0
    explain = [line for line in out.decode().splitlines() if line.startswith("explain: ")]
    assert explain and not any("\x1b" in line or "\u202e" in line for line in explain)


def test_api_json_of_a_choice_names_what_was_extracted(gpt_disk, tmp_path):
    """pygrub.as_json: the paths of ``extracted`` and the entry's own command line; null
    paths before anything is extracted."""
    with pygrub.open_image(gpt_disk[0]) as image:
        choice = image.choose("recovery")
        extracted = image.extract(choice, tmp_path)
        done, planned = pygrub.as_json(choice, extracted), pygrub.as_json(choice)
    assert (done["kernel"], done["ramdisk"]) == (extracted.kernel, extracted.ramdisk)
    assert extracted.ramdisk is not None and Path(extracted.ramdisk).is_file()
    assert (planned["kernel"], planned["ramdisk"]) == (None, None)
    assert done["args"] == planned["args"] == "root=/dev/xvda2 ro single"
    assert validate(done, "boot") | {"kernel": None, "ramdisk": None} == planned


def test_menu_json_of_a_menu_with_nothing_to_boot_chooses_nothing(tmp_path, capfdbinary, mode):
    cfg = "menuentry 'Gone' {\n  linux /boot/vmlinuz-gone\n}\n"
    image = make_ext(tmp_path, {"boot/grub/grub.cfg": cfg}, size_mb=4)
    doc, _err = json_of(capfdbinary, *mode, "-l", "--output-format=json", image)
    assert validate(doc, "menu")["chosen"] is None
    assert doc["items"][0]["not_bootable"] == "/boot/vmlinuz-gone not found"


def test_lone_surrogates_at_both_ends_of_the_range_are_replaced(open_gpt):
    """U+D800 and U+DFFF, the first and last surrogates (a loader decoding broken UTF-16
    keeps them), become U+FFFD like the U+DC80-U+DCFF of undecodable bytes."""
    volume = open_gpt._guest.volumes[1]
    fs = open_gpt._guest.filesystem(volume)
    entry = BootEntry(title="\ud800a\udfff\ud7ff\ue000", kernel="/boot/vmlinuz-6.1", kind=LINUX)
    menu = open_gpt._public_menu(BootMenu([entry], "grub2", "/c", (0,)), volume, fs, ())
    assert menu_json(menu)["items"][0]["title"] == "\ufffda\ufffd\ud7ff\ue000"


def test_bytes_that_are_not_utf8_become_replacement_characters(tmp_path, capfdbinary, mode):
    """Each byte that is not UTF-8 is one U+FFFD in JSON; the rest of the text is kept."""
    cfg = b"menuentry 'Debian \xff\xfe caf\xc3\xa9' --id 'a\x80' {\n  linux /k ro\xc0 x\n}\n"
    image = make_ext(tmp_path, {"boot/grub/grub.cfg": cfg, "k": b"k"}, size_mb=4)
    doc, _err = json_of(capfdbinary, *mode, "-qn", "--output-format=json", image)
    assert doc["entry"]["title"] == doc["entry"]["titles"][0] == "Debian \ufffd\ufffd caf\u00e9"
    assert (doc["entry"]["id"], doc["args"]) == ("a\ufffd", "ro\ufffd x")


@pytest.mark.parametrize(
    "argv",
    [
        ["--output-format=json", "--isconfig", "grub.cfg"],
        ["--output-format=JSON", "d"],
    ],
)
def test_json_combinations_refused(argv):
    with pytest.raises(UsageError):
        parse_args(argv)


@pytest.mark.parametrize("mode", [["-lq"], ["-q"]])
def test_json_explain_and_format_allowed_with_runas(mode):
    o = parse_args(
        [*mode, "--output-format=json", "--runas=1000", "--explain", "--format=raw", "d"]
    )
    assert (o.output_format, o.explain, o.image_format) == ("json", True, "raw")


# -- the corpus: every case's outputs validate ---------------------------------------------


@pytest.mark.parametrize("case", corpus_cases())
def test_corpus_json_validates(case, tmp_path, capfdbinary):
    expected = load_expected(case)
    view = linux_view(expected)
    image = _image_for(case, view, tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = run_main(
        capfdbinary, "-q", "--output-format=json", f"--output-directory={out_dir}", image
    )
    if view is None:
        assert code == 1 and "not a Linux kernel" in err
    else:
        assert code == 0, err
        doc = validate(json.loads(out), "boot")
        assert Path(doc["kernel"]).read_bytes() == b"KERNEL:" + view["kernel"].encode()
        assert doc["args"] == ERRATA_ARGS.get(case.name, view["args"])
        assert (doc["ramdisk"] is None) == (not view["initrd"])
        # BLS entries are read by the GRUB 2 config that loads them.
        assert doc["bootloader"] == {"bls": "grub2"}.get(expected["format"], expected["format"])
    code, out, err = run_main(capfdbinary, "-l", "--output-format=json", image)
    assert code == 0, err
    menu = validate(json.loads(out), "menu")
    if view is not None:
        assert menu["chosen"] == doc["entry"]["path"]
        assert menu["config"] == doc["config"]


# -- hostile input ---------------------------------------------------------------------------


def _guest_text() -> st.SearchStrategy[str]:
    """Text as loaders make it: any bytes, those not UTF-8 kept as surrogates."""
    return st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))


def _entries() -> st.SearchStrategy[BootEntry]:
    return st.builds(
        BootEntry,
        title=_guest_text(),
        kernel=st.one_of(st.none(), st.sampled_from(["/boot/vmlinuz-6.1", "/nope"]), _guest_text()),
        initrds=st.lists(_guest_text(), max_size=3),
        args=_guest_text(),
        id=st.one_of(st.none(), _guest_text()),
        device=st.one_of(st.none(), st.sampled_from(["hd0,gpt2", "hd0,gpt1", "hd7", "lvm/x"])),
        kind=st.sampled_from([LINUX, MULTIBOOT, MULTIBOOT2, CHAINLOADER, OTHER]),
        not_bootable=st.one_of(st.none(), _guest_text()),
    )


_ITEMS = st.recursive(
    st.lists(_entries(), max_size=4),
    lambda inner: st.lists(
        st.one_of(_entries(), st.builds(Submenu, title=_guest_text(), items=inner)), max_size=4
    ),
    max_leaves=20,
)
_PATHS = st.lists(st.integers(min_value=-1, max_value=5), min_size=1, max_size=3).map(tuple)


@pytest.fixture(scope="module")
def open_gpt(gpt_disk):
    with pygrub.open_image(gpt_disk[0]) as image:
        yield image


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=_ITEMS, default=_PATHS, fallback=st.lists(_PATHS, max_size=3), reason=_guest_text())
def test_any_menu_gives_valid_json(open_gpt, items, default, fallback, reason):
    """Whatever a loader builds (odd defaults, empty submenus, raw bytes) validates."""
    volume = open_gpt._guest.volumes[1]
    fs = open_gpt._guest.filesystem(volume)
    assert fs is not None
    menu = BootMenu(items, "grub2", "/boot/grub/grub.cfg", default, fallback)
    menu.default_reason = reason
    public = open_gpt._public_menu(menu, volume, fs, ())
    document = menu_json(public)
    validate(document, "menu")
    assert json.loads(render_json(document).decode("utf-8")) == document
    if public.chosen is not None:
        entry = public.item_at(public.chosen)
        assert isinstance(entry, pygrub.MenuEntry) and entry.bootable


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory) -> bytes:
    tmp = tmp_path_factory.mktemp("small")
    fs = make_ext(tmp, guest_tree(), size_mb=2, fstype="ext2")
    return make_partitioned(tmp, [(fs, "83")], bootable=1, gap_mb=1).read_bytes()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flips=st.lists(
        st.tuples(st.integers(0, (4 << 20) - 1), st.integers(1, 255)), min_size=1, max_size=8
    ),
    near_metadata=st.booleans(),
    truncate=st.one_of(st.none(), st.integers(0, 4 << 20)),
)
def test_hostile_image_gives_valid_json_or_our_error(
    small_disk, tmp_path, flips, near_metadata, truncate
):
    data = bytearray(small_disk)
    for offset, mask in flips:
        # Half the runs flip the MBR and the ext2 metadata (the partition starts at 1 MiB).
        if near_metadata:
            offset = offset % 512 if offset % 5 == 0 else (1 << 20) + offset % (256 << 10)
        if offset < len(data):
            data[offset] ^= mask
    if truncate is not None:
        del data[truncate:]
    path = tmp_path / "hostile.img"
    path.write_bytes(data)
    try:
        with pygrub.open_image(path) as image:
            for volume in image.volumes():
                assert volume.filesystem is not None or volume.problem is not None
            try:
                validate(pygrub.as_json(image.menu()), "menu")
            except PygrubError:
                pass
            try:
                choice = image.choose()
            except PygrubError:
                return
            validate(pygrub.as_json(choice), "boot")
            sink = _Sink()
            try:
                image.write_kernel(choice, sink, max_size=8 << 20)
                image.write_ramdisk(choice, sink, max_size=8 << 20)
            except PygrubError:
                pass
    except PygrubError:
        pass


class _Sink:
    """A binary file object that counts what it is given."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)


def test_list_json_under_runas_is_the_plain_one(capfdbinary, monkeypatch):
    """-l runs whole in the --runas sandbox: its JSON is the same as without it."""
    if os.geteuid() != 0:
        pytest.fail("the --runas test needs root, and CI runs it as root")
    monkeypatch.setenv("PYGRUB_MAX_RAM_USAGE_MB", "4096")
    sample = Path(__file__).resolve().parent.parent / "samples" / "guest.img"
    plain, _ = json_of(capfdbinary, "-lq", "--output-format=json", sample)
    boxed, _ = json_of(capfdbinary, "-lq", "--runas=43231", "--output-format=json", sample)
    assert validate(boxed, "menu") == plain
