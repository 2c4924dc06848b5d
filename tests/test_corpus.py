"""Every corpus case through the whole command: an ext4 image per case, pygrub run as libxl does.

Debian 13's grub-mkconfig cases (tests/fixtures/grub-mkconfig) run here too, each on a
disk with the partitions and filesystem UUIDs its expected.json lists.

The image holds the case's files at their paths plus a distinct fake kernel and initrd at
each path the expected default entry names; pygrub must extract exactly those and print
the expected command line.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from corpus import ERRATA_ARGS, ESP_LAYOUTS, MKCONFIG, cases_in, corpus_cases, load_expected
from imaging import make_ext, make_fat, make_partitioned


def _abs(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def linux_view(expected: dict) -> dict | None:
    """What pygrub should boot for the default: kernel, initrd list, args; None if not Linux.

    For SYSLINUX mboot.c32 Xen entries, Xen's pygrub boots the Linux kernel after the
    first ``---`` (``pygrub_view``), relative to the config file's directory.
    """
    default = expected["default"]
    kind = default.get("type", "linux")
    if kind == "linux":
        return {
            "kernel": default.get("kernel_resolved") or default["kernel"],
            "initrd": default.get("initrd_resolved") or default.get("initrd") or [],
            "args": default.get("args", ""),
        }
    if kind == "mboot.c32" and default.get("pygrub_view"):
        view = dict(default["pygrub_view"])
        base = "/" + expected["config_files"][0].rsplit("/", 1)[0]
        view["kernel"] = (
            f"{base}/{view['kernel']}" if not view["kernel"].startswith("/") else view["kernel"]
        )
        view["initrd"] = [i if i.startswith("/") else f"{base}/{i}" for i in view.get("initrd", [])]
        return view
    return None


def _tree_for(case, view: dict | None) -> dict:
    tree: dict = {}
    for f in case.rglob("*"):
        if f.is_file() and f.name != "expected.json":
            tree[str(f.relative_to(case))] = f.read_bytes()
    if view is not None:
        tree[_abs(view["kernel"]).lstrip("/")] = b"KERNEL:" + view["kernel"].encode()
        for index, initrd in enumerate(view["initrd"]):
            tree[_abs(initrd).lstrip("/")] = b"INITRD%d:" % index + initrd.encode() + b"\n"
    return tree


def _image_for(case, view, tmp_path):
    """A whole-disk ext4 image; for an ESP layout, a GPT disk with a FAT ESP and an ext4 root;
    for a case that lists its volumes, a disk with those partitions."""
    tree = _tree_for(case, view)
    volumes = load_expected(case).get("volumes")
    if volumes is not None:
        return _disk_of(volumes, tree, tmp_path)
    layout = ESP_LAYOUTS.get(case.name)
    if layout is None:
        return make_ext(tmp_path, tree, size_mb=64)
    esp_dir, _config, uuid = layout
    prefix = esp_dir.strip("/") + "/"
    esp_tree = {k[len(prefix) :]: v for k, v in tree.items() if k.startswith(prefix)}
    root_tree = {k: v for k, v in tree.items() if not k.startswith(prefix)}
    esp = make_fat(tmp_path, esp_tree, bits=16, size_kb=32 * 1024, name="esp.img")
    root = make_ext(tmp_path, root_tree, size_mb=64, options=("-U", uuid))
    return make_partitioned(tmp_path, [(esp, "U"), (root, "L")], label="gpt")


def _disk_of(volumes: list[dict], tree: dict, tmp_path):
    """Partition N of expected.json's hd0,msdosN / hd0,gptN: its folder's files, its UUID."""
    folders = [v["folder"].strip("./") for v in volumes]
    partitions = []
    for index, volume in enumerate(volumes):
        folder = folders[index]
        nested = [f for f in folders if f != folder and f.startswith(folder)]
        files = {
            path.removeprefix(folder + "/") if folder else path: data
            for path, data in tree.items()
            if (not folder or path.startswith(folder + "/"))
            and not any(path.startswith(f + "/") for f in nested)
        }
        name = f"part{index + 1}.img"
        if volume["fs"] == "vfat":
            serial = ("-i", volume["uuid"].replace("-", ""))
            image = make_fat(tmp_path, files, bits=16, size_kb=32 * 1024, name=name, options=serial)
            partitions.append((image, "U"))
        else:
            options = ("-U", volume["uuid"])
            partitions.append((make_ext(tmp_path, files, 64, options=options, name=name), "L"))
        assert volume["grub_name"].endswith(str(index + 1)), "volumes are listed in disk order"
    label = "gpt" if "gpt" in volumes[0]["grub_name"] else "dos"
    return make_partitioned(tmp_path, partitions, label=label)


@pytest.mark.parametrize("case", corpus_cases() + cases_in(MKCONFIG))
def test_corpus_case_boots_expected_entry(case, tmp_path):
    expected = load_expected(case)
    view = linux_view(expected)
    image = _image_for(case, view, tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = tmp_path / "output"
    output.touch()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pygrub",
            "-q",
            f"--output={output}",
            "--output-format=simple0",
            f"--output-directory={out_dir}",
            str(image),
        ],
        capture_output=True,
        timeout=120,
    )
    if view is None:
        # A hypervisor or chainloader entry by default and no Linux fallback: a clear refusal.
        assert proc.returncode == 1
        assert f"a {expected['default']['type']} entry, not a Linux kernel" in proc.stderr.decode()
        return
    assert proc.returncode == 0, proc.stderr.decode()
    items = dict(item.split(" ", 1) for item in output.read_text().split("\0") if item)
    with open(items["kernel"], "rb") as f:
        assert f.read() == b"KERNEL:" + view["kernel"].encode()
    initrds = view["initrd"]
    if initrds:
        want = b""
        for index, initrd in enumerate(initrds):
            part = b"INITRD%d:" % index + initrd.encode() + b"\n"
            want += part + bytes(-len(part) % 4 if len(initrds) > 1 else 0)
        with open(items["ramdisk"], "rb") as f:
            assert f.read() == want
    else:
        assert "ramdisk" not in items
    assert items.get("args", "") == ERRATA_ARGS.get(case.name, view["args"])
