"""systemd-boot: loader.conf, Boot Loader Specification type #1 entries and unified kernel
images (type #2).

The oracles are systemd's own tools: ``bootctl list`` (userspace twin of systemd-boot's
sorting, title and default logic) on the same ESP tree, ``systemd-analyze
compare-versions`` for the version comparison, and UKIs assembled with objcopy from the
real systemd EFI stub.
"""

from __future__ import annotations

import functools
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import ukitools
from corpus import corpus_cases, load_expected
from hostfs import HostDirFilesystem, guest_of_dirs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import require_tool, write_tree

from pygrub.boot import plan_boot
from pygrub.config import LoadContext, find_menu, uki
from pygrub.config import systemd_boot as sd
from pygrub.config.model import LINUX, OTHER, BootEntry, BootMenu
from pygrub.errors import LimitError, PygrubError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STUB = ukitools.STUB


def esp_menu(root: Path) -> BootMenu:
    guest, volumes = guest_of_dirs(("hd0,gpt1", root))
    menu, attempts = find_menu(guest, volumes[0], guest.filesystem(volumes[0]))
    assert menu is not None, attempts
    return menu


def default_entry(menu: BootMenu) -> BootEntry:
    item = menu.item_at(menu.default)
    assert isinstance(item, BootEntry)
    return item


def entry_file(title: str, linux: str = "/vmlinuz", **keys: str) -> str:
    lines = [f"title {title}"] + [f"{k.replace('_', '-')} {v}" for k, v in keys.items()]
    return "\n".join(lines + [f"linux {linux}"]) + "\n"


# -- the corpus ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", corpus_cases("systemd-boot"))
def test_corpus_case(case, tmp_path):
    expected = load_expected(case)
    root = tmp_path / "esp"
    shutil.copytree(case, root, ignore=shutil.ignore_patterns("expected.json"))
    for entry in expected["entries"]:
        for path in [entry["kernel"], *entry["initrd"]]:
            write_tree(root, {path: path})
    menu = esp_menu(root)
    assert menu.config_path == "/loader/loader.conf" and menu.format == "systemd-boot"
    assert list(menu.default) == expected["default_path"]
    assert [(e.id, e.title) for e in menu.items] == [
        (e["id"], e["title"]) for e in expected["entries"]
    ]
    for mine, want in zip(menu.items, expected["entries"], strict=True):
        assert (mine.kernel, mine.initrds, mine.args) == (
            want["kernel"],
            want["initrd"],
            want["args"],
        )
    guest, _ = guest_of_dirs(("hd0,gpt1", root))
    plan = plan_boot(guest)
    want = expected["default"]
    assert (plan.kernel.path, [r.path for r in plan.initrds], plan.args) == (
        want["kernel"],
        want["initrd"],
        want["args"],
    )


# -- loader.conf and entries --------------------------------------------------------------


def test_entry_keys(tmp_path):
    root = write_tree(
        tmp_path,
        {
            "loader/loader.conf": '# comment\ntimeout "3"\ndefault  "fedora-*"\n',
            "loader/entries/fedora-6.1.conf": (
                "title Fedora\nversion 6.1\nmachine-id 0123456789abcdef0123456789abcdef\n"
                "options root=/dev/xvda2\noptions  ro quiet\nlinux fedora/linux\n"
                "initrd /fedora/ucode\ninitrd /fedora/initrd\ndevicetree /fedora/board.dtb\n"
                "architecture x64\nunknown-key whatever\n"
            ),
            "fedora/linux": "k",
            "fedora/ucode": "u",
            "fedora/initrd": "i",
        },
    )
    menu = esp_menu(root)
    entry = default_entry(menu)
    assert (entry.id, entry.title, entry.kind) == ("fedora-6.1", "Fedora", LINUX)
    assert (entry.kernel, entry.initrds) == ("/fedora/linux", ["/fedora/ucode", "/fedora/initrd"])
    assert entry.args == "root=/dev/xvda2 ro quiet"
    assert menu.timeout == 3.0 and menu.timeout_style == "menu"
    plan = plan_boot(guest_of_dirs(("hd0,gpt1", root))[0])
    assert [r.path for r in plan.initrds] == ["/fedora/ucode", "/fedora/initrd"]


@pytest.mark.parametrize(
    ("line", "timeout", "style"),
    [
        ("", 0.0, "hidden"),
        ("timeout 0\n", 0.0, "hidden"),
        ("timeout 10\n", 10.0, "menu"),
        ("timeout menu-force\n", None, "menu"),
        ("timeout menu-hidden\n", 0.0, "hidden"),
        ("timeout 5\ntimeout bogus\n", 5.0, "menu"),
    ],
)
def test_timeouts(tmp_path, line, timeout, style):
    root = write_tree(
        tmp_path,
        {"loader/loader.conf": line, "loader/entries/a.conf": entry_file("A"), "vmlinuz": "k"},
    )
    menu = esp_menu(root)
    assert (menu.timeout, menu.timeout_style) == (timeout, style)


def test_entries_systemd_boot_would_not_list(tmp_path):
    root = write_tree(
        tmp_path,
        {
            "loader/loader.conf": "default @saved\n",
            "loader/entries/missing-kernel.conf": entry_file("Missing", "/nope"),
            "loader/entries/no-program.conf": "title Nothing\noptions x\n",
            "loader/entries/two-kinds.conf": "title Both\nlinux /vmlinuz\nefi /shell.efi\n",
            "loader/entries/auto-windows.conf": entry_file("Auto"),
            "loader/entries/.hidden.conf": entry_file("Hidden"),
            "loader/entries/readme.txt": entry_file("Text"),
            "loader/entries/shell.conf": "title Shell\nefi /shell.efi\n",
            "loader/entries/linux.conf": entry_file("Linux"),
            "vmlinuz": "k",
            "shell.efi": "e",
        },
    )
    menu = esp_menu(root)
    assert [e.id for e in menu.items] == ["shell", "linux"]
    assert menu.items[0].kind == OTHER and menu.items[0].not_bootable
    assert "@saved" in menu.default_reason
    # The default (the shell) is no Linux kernel: pygrub says so rather than boot another.
    with pytest.raises(PygrubError, match="cannot boot"):
        plan_boot(guest_of_dirs(("hd0,gpt1", root))[0])


def test_boot_counting(tmp_path):
    root = write_tree(
        tmp_path,
        {
            "loader/loader.conf": "",
            "loader/entries/a-2+0-3.conf": entry_file("A2"),
            "loader/entries/a-1+2-1.conf": entry_file("A1"),
            "loader/entries/a-0.conf": entry_file("A0"),
            "vmlinuz": "k",
        },
    )
    menu = esp_menu(root)
    # a-2 has no tries left: last, though its version is the newest.
    assert [e.id for e in menu.items] == ["a-1", "a-0", "a-2"]
    assert sd.split_counter("x+3") == ("x", 3, 0) and sd.split_counter("x+y") == ("x+y", -1, -1)


def test_found_without_loader_conf_and_under_boot(tmp_path):
    esp = write_tree(
        tmp_path / "esp",
        {
            "loader/entries.srel": "type1\n",
            "loader/entries/a.conf": entry_file("A"),
            "vmlinuz": "k",
        },
    )
    assert esp_menu(esp).config_path == "/loader/entries.srel"
    binary = write_tree(
        tmp_path / "bin",
        {
            "EFI/systemd/systemd-bootx64.efi": b"MZ\0\0",
            "loader/entries/a.conf": entry_file("A"),
            "vmlinuz": "k",
        },
    )
    assert [e.id for e in esp_menu(binary).items] == ["a"]
    rootfs = write_tree(
        tmp_path / "root",
        {
            "boot/loader/loader.conf": "default b.conf\n",
            "boot/loader/entries/a.conf": entry_file("A"),
            "boot/loader/entries/b.conf": entry_file("B", "/k-b", options="ro"),
            "boot/k-b": "k",
        },
    )
    menu = esp_menu(rootfs)
    entry = default_entry(menu)
    assert [e.id for e in menu.items] == ["b"] and entry.kernel == "/boot/k-b"
    assert plan_boot(guest_of_dirs(("hd0,msdos1", rootfs))[0]).kernel.path == "/boot/k-b"


def test_glob_default_and_no_match(tmp_path):
    files = {f"loader/entries/{n}.conf": entry_file(n) for n in ("os-5.10", "os-6.1", "rescue")}
    files["vmlinuz"] = "k"
    # Menu order: rescue, os-6.1, os-5.10 (ids compared as versions, newest first).
    for pattern, index in [
        ("os-*", 1),
        ("*5.10.conf", 2),
        ("RESCUE", 0),
        ("none*", 0),
        ("os-?.1", 1),
    ]:
        root = write_tree(tmp_path / pattern.replace("*", "_").replace("?", "_"), files)
        write_tree(root, {"loader/loader.conf": f"default {pattern}\n"})
        assert esp_menu(root).default == (index,), pattern


# -- version comparison against systemd-analyze -------------------------------------------

VERSION = st.text("0123456789abcAB~-^._+", max_size=10)


def systemd_compare(a: str, b: str) -> int:
    tool = require_tool("systemd-analyze")
    proc = subprocess.run([tool, "compare-versions", "--", a, b], capture_output=True, timeout=30)
    return {0: 0, 11: 1, 12: -1}[proc.returncode]


@settings(max_examples=150, deadline=None)
@given(VERSION, VERSION)
def test_version_compare_agrees_with_systemd(a, b):
    assert sd.version_compare(a, b) == systemd_compare(a, b)


def test_version_order_of_the_specification():
    order = [
        "122.1",
        "123~rc1-1",
        "123",
        "123-a",
        "123-a.1",
        "123-1",
        "123-1.1",
        "123^post1",
        "123.a-1",
        "123.1-1",
        "123a-1",
        "124-1",
    ]
    for older, newer in zip(order, order[1:], strict=False):
        assert sd.version_compare(older, newer) == -1 and sd.version_compare(newer, older) == 1


# -- bootctl as the oracle ----------------------------------------------------------------


def bootctl_list(root: Path, mount: Path) -> tuple[list[dict], str | None]:
    """``bootctl list`` on a copy of ``root`` mounted as a file system of its own.

    bootctl wants the ESP to be the root of a file system: a tmpfs in a private mount
    namespace, so nothing outside the command sees it.
    """
    unshare, bootctl = require_tool("unshare"), require_tool("bootctl")
    mount.mkdir(exist_ok=True)
    script = (
        'mount -t tmpfs none "$1" && cp -a "$2/." "$1/" && '
        'bootctl --esp-path="$1" --no-pager --json=short list && echo "----" && '
        'bootctl --esp-path="$1" --no-pager list'
    )
    proc = subprocess.run(
        [unshare, "-rm", "sh", "-c", script, "sh", str(mount), str(root)],
        capture_output=True,
        timeout=60,
        env={"SYSTEMD_RELAX_ESP_CHECKS": "1", "PATH": str(Path(bootctl).parent) + ":/usr/bin:/bin"},
    )
    if proc.returncode != 0:
        pytest.fail(f"bootctl list failed: {proc.stderr.decode(errors='replace')}")
    listing, text = proc.stdout.decode().split("----\n", 1)
    entries = [json.loads(line) for line in listing.splitlines() if line.strip()]
    default = None
    marked = False
    for line in text.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "title":
            marked = "(default)" in value
        elif key == "id" and marked:
            default = value
    return [e for e in entries if not e["id"].startswith("auto-")], default


ENTRY_NAME = st.text("abcdefghij0123456789.-", min_size=1, max_size=8).filter(lambda n: n[0] != ".")


@st.composite
def esp_trees(draw):
    names = draw(st.lists(ENTRY_NAME, min_size=1, max_size=5, unique=True))
    files: dict[str, str] = {"vmlinuz": "k"}
    for name in names:
        keys = {}
        for key, values in [
            ("version", VERSION.filter(lambda v: v.strip() == v and v)),
            ("machine_id", st.sampled_from(["aaaa1111", "bbbb2222"])),
            ("sort_key", st.sampled_from(["debian", "fedora", "arch"])),
        ]:
            if draw(st.booleans()):
                keys[key] = draw(values)
        title = draw(st.sampled_from(["Linux", "Linux", "Other OS"]))
        files[f"loader/entries/{name}.conf"] = entry_file(title, **keys)
    pattern = draw(
        st.one_of(
            st.sampled_from([n + ".conf" for n in names]),
            st.sampled_from(names).map(lambda n: n[:2] + "*"),
            st.just("*.conf"),
            st.just("nothing-matches"),
        )
    )
    files["loader/loader.conf"] = f"timeout 3\ndefault {pattern}\n"
    return files


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(esp_trees())
def test_agrees_with_bootctl(tmp_path, files):
    root = tmp_path / "esp"
    shutil.rmtree(root, ignore_errors=True)
    write_tree(root, files)
    theirs, their_default = bootctl_list(root, tmp_path / "mnt")
    menu = esp_menu(root)
    assert [e.id + ".conf" for e in menu.items] == [e["id"] for e in theirs]
    assert [e.title for e in menu.items] == [e["showTitle"] for e in theirs]
    assert their_default is not None
    assert menu.items[menu.default[0]].id + ".conf" == their_default


# -- unified kernel images ----------------------------------------------------------------


def build_uki(
    directory: Path, name: str, osrel: str, cmdline: str, kernel: bytes, initrd: bytes
) -> Path:
    """A UKI made as dracut/mkinitcpio do (ukitools.build_uki), from its four parts."""
    sections = {".osrel": osrel.encode(), ".cmdline": cmdline.encode()}
    return ukitools.build_uki(directory, name, {**sections, ".linux": kernel, ".initrd": initrd})


def test_uki_sections_and_menu_entry(tmp_path):
    kernel, initrd = bytes(range(256)) * 20, b"initrd\n" * 300
    efi = tmp_path / "esp" / "EFI" / "Linux"
    efi.mkdir(parents=True)
    build_uki(
        efi,
        "debian-6.1.efi",
        'ID=debian\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\n',
        "root=/dev/xvda2 ro  quiet\n",
        kernel,
        initrd,
    )
    root = write_tree(
        tmp_path / "esp",
        {
            "loader/loader.conf": "default debian-*\n",
            "loader/entries/zz.conf": entry_file("Type 1"),
            "vmlinuz": "k",
        },
    )
    image = uki.read_uki(HostDirFilesystem(root), "/EFI/Linux/debian-6.1.efi")
    assert image is not None
    data = (efi / "debian-6.1.efi").read_bytes()
    for section, content in [(".linux", kernel), (".initrd", initrd)]:
        s = image.sections[section]
        assert data[s.offset : s.offset + s.size] == content
    # As systemd-stub passes it: the newline dropped, the inner blanks kept.
    assert image.cmdline == "root=/dev/xvda2 ro  quiet"
    assert image.os_release["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"

    menu = esp_menu(root)
    theirs, their_default = bootctl_list(root, tmp_path / "mnt")
    assert [e.id for e in menu.items] == ["debian-6.1", "zz"]
    assert [e["id"] for e in theirs] == ["debian-6.1.efi", "zz.conf"]
    assert [e.title for e in menu.items] == [e["showTitle"] for e in theirs]
    assert their_default == "debian-6.1.efi" and menu.default == (0,)
    entry = default_entry(menu)
    # It boots: tests/test_uki_boot.py extracts its sections.
    assert entry.kind == LINUX and entry.not_bootable is None
    assert entry.kernel_range == (image.sections[".linux"].offset, len(kernel))


def test_pe_without_linux_section_is_no_uki(tmp_path):
    shutil.copy(STUB, tmp_path / "stub.efi")
    assert uki.read_uki(HostDirFilesystem(tmp_path), "/stub.efi") is None


@functools.cache
def sample_uki() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = build_uki(Path(d), "x.efi", "ID=x\n", "ro\n", b"K" * 512, b"I" * 512)
        return path.read_bytes()


@FUZZ
@given(st.data())
def test_fuzz_uki_headers(tmp_path_factory, data):
    blob = bytearray(sample_uki())
    header_end = struct.unpack_from("<I", blob, 0x3C)[0] + 24 + 240 + 40 * 16
    for _ in range(data.draw(st.integers(0, 8))):
        where = data.draw(st.integers(0, header_end))
        blob[where] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    directory = tmp_path_factory.mktemp("uki")
    (directory / "x.efi").write_bytes(bytes(blob))
    try:
        image = uki.read_uki(HostDirFilesystem(directory), "/x.efi")
    except PygrubError:
        return
    if image is not None:
        for section in image.sections.values():
            assert 0 <= section.offset and section.offset + section.size <= len(blob)


def test_uki_section_count_is_bounded(tmp_path):
    blob = bytearray(sample_uki())
    pe = struct.unpack_from("<I", blob, 0x3C)[0]
    struct.pack_into("<H", blob, pe + 6, 0xFFFF)
    (tmp_path / "x.efi").write_bytes(bytes(blob))
    with pytest.raises(LimitError, match="sections"):
        uki.read_uki(HostDirFilesystem(tmp_path), "/x.efi")


# -- hostile input ------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "title",
        "version",
        "machine-id",
        "sort-key",
        "linux",
        "initrd",
        "options",
        "efi",
        "uki",
        "default",
        "timeout",
        " ",
        "\t",
        "\n",
        "\r\n",
        '"',
        "#",
        "/vmlinuz",
        "*",
        "?",
        "[",
        "]",
        "[!a-",
        "@saved",
        "menu-force",
        "1",
        "99999999999999",
        "~",
        "^",
        "-",
        ".",
        "\x00",
        "é",
    ]
)


@FUZZ
@given(st.lists(FRAGMENTS, max_size=50).map("".join), st.lists(FRAGMENTS, max_size=50).map("".join))
def test_fuzz_never_crashes(tmp_path_factory, loader_conf, entry):
    root = write_tree(
        tmp_path_factory.mktemp("esp"),
        {"loader/entries/a.conf": entry, "loader/entries/b+1-1.conf": entry, "vmlinuz": "k"},
    )
    try:
        menu = sd.load(LoadContext("/loader/loader.conf", loader_conf, HostDirFilesystem(root)))
    except PygrubError:
        return
    if menu.items:
        assert isinstance(menu.item_at(menu.default), BootEntry)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_fuzz_version_compare_is_an_order(a, b):
    r = sd.version_compare(a, b)
    assert r in (-1, 0, 1) and sd.version_compare(b, a) == -r


def test_too_many_entry_files_is_a_limit_error(tmp_path):
    directory = tmp_path / "loader" / "entries"
    directory.mkdir(parents=True)
    for i in range(sd.MAX_ENTRY_FILES + 1):
        (directory / f"e{i}.conf").touch()
    with pytest.raises(LimitError):
        sd.load(LoadContext("/loader/entries.srel", "", HostDirFilesystem(tmp_path)))


def test_huge_default_pattern_is_a_limit_error(tmp_path):
    root = write_tree(tmp_path, {"loader/entries/a.conf": entry_file("A"), "vmlinuz": "k"})
    with pytest.raises(LimitError, match="pattern"):
        sd.load(
            LoadContext("/loader/loader.conf", "default " + "*a" * 5000, HostDirFilesystem(root))
        )
