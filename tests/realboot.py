"""Helpers for booting what pygrub extracts: a real Debian kernel, a busybox initramfs
made here, pygrub run the way libxl runs it, and QEMU as the domain builder.

The kernel package is fetched once and kept, with its vmlinuz and the modules a guest
needs, in a cache directory ($PYGRUB_TEST_CACHE, else ~/.cache/pygrub-tests), so later
runs need no network.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import re
import select
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from imaging import require_tool, run

#: The metapackage that names the current kernel package of the distribution.
KERNEL_METAPACKAGE = os.environ.get("PYGRUB_TEST_KERNEL", "linux-image-amd64")

#: What init prints once it runs: the marker proves the initramfs pygrub copied booted.
MARKER = "PYGRUB-BOOT-OK"
#: Prefix of the line on which init prints /proc/cmdline.
CMDLINE_MARKER = "PYGRUB-CMDLINE"


def cache_dir() -> Path:
    root = os.environ.get("PYGRUB_TEST_CACHE") or Path.home() / ".cache" / "pygrub-tests"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the kernel ---------------------------------------------------------------------------


def kernel_package() -> str | None:
    """The versioned package the metapackage depends on (linux-image-6.1.0-NN-amd64), or
    None when apt's package lists do not know it."""
    apt_cache = require_tool("apt-cache")
    proc = subprocess.run([apt_cache, "depends", KERNEL_METAPACKAGE], capture_output=True)
    names = re.findall(r"^\s*Depends:\s*(linux-image-\S+)$", proc.stdout.decode(), re.M)
    return names[0] if names else None


def deb_file_name(package: str) -> str:
    """The .deb file name apt would download (name_version_arch.deb), without downloading."""
    out = run("apt-get", "download", "--print-uris", package).decode()
    m = re.search(r"^'[^']+' (\S+\.deb) ", out, re.M)
    if m is None:
        pytest.fail(f"apt-get download --print-uris {package} gave no .deb:\n{out}")
    return m[1]


@dataclass(frozen=True)
class Kernel:
    path: Path
    #: The kernel release, as in /boot/vmlinuz-<release> (6.1.0-56-amd64).
    release: str

    @classmethod
    def at(cls, path: Path) -> Kernel:
        return cls(path, path.name.removeprefix("vmlinuz-"))


def debian_kernel() -> Kernel:
    """The distribution's current kernel (its /boot/vmlinuz-*), downloaded once per
    package version. Without apt's package lists, the newest one cached."""
    package = kernel_package()
    if package is None:
        cached = sorted(cache_dir().glob("*/vmlinuz-*"), key=lambda p: p.stat().st_mtime)
        if cached:
            return Kernel.at(cached[-1])
        pytest.fail(
            f"apt does not know {KERNEL_METAPACKAGE} and {cache_dir()} holds no kernel: "
            "run apt-get update"
        )
    deb = deb_file_name(package)
    home = cache_dir() / deb.removesuffix(".deb")
    if not home.is_dir():
        with tempfile.TemporaryDirectory(dir=cache_dir()) as work:
            run_in(work, "apt-get", "download", "-q", package)
            unpacked = Path(work) / "unpacked"
            unpacked.mkdir()
            vmlinuz = unpack_vmlinuz(Path(work) / deb, unpacked)
            check_md5sum(Path(work) / deb, vmlinuz, f"boot/{vmlinuz.name}")
            try:
                unpacked.rename(home)
            except OSError:
                if not home.is_dir():  # else another run cached it first
                    raise
            # Kept for kernel_modules(): a second download would cost as much again.
            (Path(work) / deb).replace(cache_dir() / deb)
    found = sorted(home.glob("vmlinuz-*"))
    if len(found) != 1:
        pytest.fail(f"{home} holds {len(found)} vmlinuz-* files, not one")
    return Kernel.at(found[0])


def kernel_modules(release: str, names: tuple[str, ...]) -> dict[str, bytes]:
    """The named modules of the kernel package of ``release`` (as .ko, decompressed),
    fetched once and cached beside the kernel, for guests that only a kernel can fill."""
    home = cache_dir() / f"modules-{release}"
    home.mkdir(exist_ok=True)
    missing = tuple(name for name in names if not (home / f"{name}.ko").is_file())
    if missing:
        # Each guest wants its own modules: add the missing ones to what earlier runs
        # cached, each renamed into place whole so a concurrent run never reads half.
        for name, data in unpack_modules(kernel_deb(release), missing).items():
            with tempfile.NamedTemporaryFile(dir=home, delete=False) as part:
                part.write(data)
            os.replace(part.name, home / f"{name}.ko")
    return {name: (home / f"{name}.ko").read_bytes() for name in names}


def kernel_deb(release: str) -> Path:
    """The kernel package of ``release``: the one debian_kernel() kept, else downloaded."""
    package = f"linux-image-{release}"
    kept = sorted(cache_dir().glob(f"{package}_*.deb"))
    if not kept:
        run_in(cache_dir(), "apt-get", "download", "-q", package)
        kept = sorted(cache_dir().glob(f"{package}_*.deb"))
    if len(kept) != 1:
        pytest.fail(f"{cache_dir()} holds {len(kept)} packages of {package}, not one")
    return kept[0]


def unpack_modules(deb: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """lib/modules/*/kernel/**/NAME.ko (or .ko.xz, decompressed) of a kernel package."""
    wanted = {f"{name}{suffix}": name for name in names for suffix in (".ko", ".ko.xz")}
    found: dict[str, bytes] = {}
    proc = subprocess.Popen(
        [require_tool("dpkg-deb"), "--fsys-tarfile", str(deb)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            for member in archive:
                name = wanted.get(member.name.rpartition("/")[2])
                if name is None or "/lib/modules/" not in member.name or not member.isfile():
                    continue
                data = archive.extractfile(member)
                assert data is not None
                raw = data.read()
                found[name] = lzma.decompress(raw) if member.name.endswith(".xz") else raw
                if len(found) == len(names):
                    break
    finally:
        proc.kill()
        proc.wait()
    missing = sorted(set(names) - set(found))
    if missing:
        pytest.fail(f"{deb.name} has no module {', '.join(missing)}")
    return found


def unpack_vmlinuz(deb: Path, into: Path) -> Path:
    """./boot/vmlinuz-* of a kernel package, written into ``into``.

    dpkg-deb -x would write all 400 MB of modules; the data archive is sorted by name,
    so reading it as a stream can stop once ./boot/ is behind.
    """
    proc = subprocess.Popen(
        [require_tool("dpkg-deb"), "--fsys-tarfile", str(deb)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    found: list[Path] = []
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            for member in archive:
                directory, _, name = member.name.removeprefix("./").rpartition("/")
                if directory == "boot" and name.startswith("vmlinuz-") and member.isfile():
                    data = archive.extractfile(member)
                    assert data is not None
                    (into / name).write_bytes(data.read())
                    found.append(into / name)
                elif found and directory != "boot":
                    break
    finally:
        proc.kill()
        proc.wait()
    if len(found) != 1:
        pytest.fail(f"{deb.name} holds {len(found)} /boot/vmlinuz-* files, not one")
    return found[0]


def check_md5sum(deb: Path, file: Path, name: str) -> None:
    """The file is what the package's own md5sums list says it is."""
    sums = run("dpkg-deb", "--info", deb, "md5sums").decode()
    want = re.search(rf"^([0-9a-f]{{32}})  {re.escape(name)}$", sums, re.M)
    if want is None:
        pytest.fail(f"{deb.name}: md5sums has no line for {name}")
    if hashlib.md5(file.read_bytes()).hexdigest() != want[1]:
        pytest.fail(f"{deb.name}: {name} does not match its md5sum")


def run_in(cwd: str | os.PathLike[str], *argv: str) -> None:
    tool = require_tool(argv[0])
    proc = subprocess.run([tool, *argv[1:]], cwd=cwd, capture_output=True)
    if proc.returncode != 0:
        pytest.fail(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")


# -- the initramfs ------------------------------------------------------------------------

#: A static busybox, from the busybox-static package.
BUSYBOX = "/bin/busybox"

#: ELF64 program header (Elf64_Phdr): p_type, p_flags, p_offset, p_vaddr, p_paddr,
#: p_filesz, p_memsz, p_align.
ELF64_PHDR = struct.Struct("<IIQQQQQQ")
PT_INTERP = 3


def static_busybox() -> bytes:
    """/bin/busybox, which must need no dynamic loader (the initramfs has none)."""
    require_tool("busybox")
    data = Path(BUSYBOX).read_bytes()
    # e_phoff at 32, e_phentsize and e_phnum at 54 and 56 of the ELF64 header.
    if data[:5] != b"\x7fELF\x02":
        pytest.fail(f"{BUSYBOX} is not a 64-bit ELF file")
    (phoff,) = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for index in range(phnum):
        if ELF64_PHDR.unpack_from(data, phoff + index * phentsize)[0] == PT_INTERP:
            pytest.fail(f"{BUSYBOX} is dynamically linked: install busybox-static")
    return data


@dataclass(frozen=True)
class CpioEntry:
    name: str
    mode: int
    data: bytes = b""
    #: Device number of a character or block device node.
    rdev: tuple[int, int] = (0, 0)


S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR = 0o040000, 0o100000, 0o120000, 0o020000

#: The "newc" header (Linux's Documentation/driver-api/early-userspace/buffer-format.rst):
#: c_magic "070701", then 13 eight-digit hex fields: c_ino, c_mode, c_uid, c_gid,
#: c_nlink, c_mtime, c_filesize, c_devmajor, c_devminor, c_rdevmajor, c_rdevminor,
#: c_namesize (with its NUL), c_check.
NEWC_MAGIC = b"070701"


def newc_archive(entries: list[CpioEntry]) -> bytes:
    """A cpio archive in the newc format; name and data each padded to 4 bytes."""
    out = bytearray()
    for ino, entry in enumerate([*entries, CpioEntry("TRAILER!!!", 0)], 1):
        name = os.fsencode(entry.name) + b"\0"  # names the host could not decode too
        nlink = 2 if entry.mode & 0o170000 == S_IFDIR else 1
        fields = (ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0, *entry.rdev)
        out += NEWC_MAGIC + b"".join(b"%08X" % f for f in (*fields, len(name), 0))
        out += name + bytes(-(len(out) + len(name)) % 4)
        out += entry.data + bytes(-(len(out) + len(entry.data)) % 4)
    return bytes(out)


def init_script(marker_token: str) -> str:
    """/init: quiet the kernel, print the marker and the command line, power off."""
    return (
        "#!/bin/sh\n"
        "/bin/busybox mount -t proc proc /proc\n"
        # Kernel messages on the console would otherwise break into our lines.
        "/bin/busybox dmesg -n 1\n"
        f'echo "{MARKER} {marker_token}"\n'
        f'echo "{CMDLINE_MARKER} $(/bin/busybox cat /proc/cmdline)"\n'
        "/bin/busybox poweroff -f\n"
    )


def busybox_entries() -> list[CpioEntry]:
    """What every initramfs here starts with: static busybox, /dev/console and /proc."""
    return [
        CpioEntry("bin", S_IFDIR | 0o755),
        CpioEntry("bin/busybox", S_IFREG | 0o755, static_busybox()),
        CpioEntry("bin/sh", S_IFLNK | 0o777, b"busybox"),
        CpioEntry("dev", S_IFDIR | 0o755),
        # The kernel opens /dev/console for init's stdio: character device 5:1.
        CpioEntry("dev/console", S_IFCHR | 0o600, rdev=(5, 1)),
        CpioEntry("proc", S_IFDIR | 0o755),
    ]


def initramfs(marker_token: str) -> bytes:
    """A gzip-compressed newc initramfs: static busybox and an init that says it ran."""
    entries = [
        *busybox_entries(),
        CpioEntry("init", S_IFREG | 0o755, init_script(marker_token).encode()),
    ]
    return gzip.compress(newc_archive(entries), compresslevel=6, mtime=0)


def tree_entries(src: Path, prefix: str) -> list[CpioEntry]:
    """The directories, files and symlinks under ``src`` as cpio entries under ``prefix``."""
    entries = [CpioEntry(prefix, S_IFDIR | 0o755)]
    for path in sorted(src.rglob("*")):
        name = f"{prefix}/{path.relative_to(src)}"
        if path.is_symlink():
            entries.append(CpioEntry(name, S_IFLNK | 0o777, os.fsencode(os.readlink(path))))
        elif path.is_dir():
            entries.append(CpioEntry(name, S_IFDIR | 0o755))
        else:
            entries.append(CpioEntry(name, S_IFREG | 0o644, path.read_bytes()))
    return entries


#: What the filling guest prints when every step worked, and before what went wrong.
FILLED, FILL_FAILED = "PYGRUB-FILLED-OK", "PYGRUB-FILL-FAILED"


def fill_with_kernel(
    kernel: Kernel,
    image: Path,
    fstype: str,
    modules: tuple[str, ...],
    src: Path,
    mount_options: str = "",
    then: tuple[str, ...] = (),
) -> None:
    """Copy the tree ``src`` into the empty filesystem ``image`` with the guest kernel's
    own driver: for filesystems that no tool outside a kernel writes (ReiserFS), or
    that only the kernel writes in every form (F2FS's inline dentries). ``modules`` are
    loaded in order, the filesystem's own last; ``then`` are shell commands run in /mnt
    after the copy (sparse files, which a cpio archive cannot carry)."""
    init = (
        "#!/bin/busybox sh\n"
        "/bin/busybox --install -s /bin\n"
        "export PATH=/bin\n"
        "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n"
        "dmesg -n 1\n"
        f"for m in {' '.join(modules)}; do insmod /lib/$m.ko || echo {FILL_FAILED} $m; done\n"
        "for i in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.1; done\n"
        f"mount -t {fstype} {'-o ' + mount_options if mount_options else ''} /dev/vda /mnt"
        f" || echo {FILL_FAILED} mount\n"
        f"cp -a /src/. /mnt/ || echo {FILL_FAILED} cp\n"
        "cd /mnt\n"
        + "".join(f"{command} || echo {FILL_FAILED} then-{i}\n" for i, command in enumerate(then))
        + "cd /\n"
        f"umount /mnt && echo {FILLED}\n"
        "poweroff -f\n"
    )
    entries = [
        *busybox_entries(),
        *(CpioEntry(d, S_IFDIR | 0o755) for d in ("sys", "mnt", "lib")),
        *(
            CpioEntry(f"lib/{name}.ko", S_IFREG | 0o644, data)
            for name, data in kernel_modules(kernel.release, modules).items()
        ),
        *tree_entries(src, "src"),
        CpioEntry("init", S_IFREG | 0o755, init.encode()),
    ]
    ramdisk = image.with_name(image.name + ".filler.cpio.gz")
    ramdisk.write_bytes(gzip.compress(newc_archive(entries), compresslevel=1, mtime=0))
    try:
        timeout = 60 if kvm_usable() else 300
        console = qemu_boot(kernel.path, ramdisk, "console=ttyS0 panic=-1", timeout, (image,))
    finally:
        ramdisk.unlink()
    if FILL_FAILED in console or FILLED not in console:
        pytest.fail(f"the guest did not fill {image.name}; console ends:\n{console[-3000:]}")


# -- pygrub as libxl runs it --------------------------------------------------------------


@dataclass(frozen=True)
class BootloaderResult:
    kernel: Path
    ramdisk: Path | None
    args: str | None


def run_pygrub_for_qemu(
    image: Path, out_dir: Path, timeout: float = 120
) -> tuple[BootloaderResult, dict]:
    """What a QEMU/KVM user runs (README, "Direct kernel boot"): ``pygrub -q
    --output-format=json``, the object on stdout; the result and the object itself."""
    out_dir.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pygrub", "-q", "--output-format=json",
         f"--output-directory={out_dir}", str(image)],
        capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, f"pygrub failed: {proc.stderr.decode(errors='replace')}"
    assert proc.stderr == b"", proc.stderr
    found = json.loads(proc.stdout)
    ramdisk = found["ramdisk"]
    result = BootloaderResult(
        Path(found["kernel"]), Path(ramdisk) if ramdisk else None, found["args"]
    )
    return result, found


def parse_simple0(data: bytes) -> BootloaderResult:
    """The output file as libxl reads it: NUL-terminated "kernel", "ramdisk", "args" items."""
    items: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, _, value = item.decode("utf-8", "surrogateescape").partition(" ")
        if key in ("kernel", "ramdisk", "args"):
            items[key] = value
    assert "kernel" in items, f"no kernel in the bootloader output {data!r}"
    ramdisk = items.get("ramdisk")
    return BootloaderResult(
        Path(items["kernel"]), Path(ramdisk) if ramdisk else None, items.get("args")
    )


def run_pygrub_like_libxl(image: Path, out_dir: Path, timeout: float = 120) -> BootloaderResult:
    """pygrub -q with libxl's argv, TERM=vt100 and a pty on stdin and stdout."""
    out_dir.mkdir(exist_ok=True)
    output = out_dir.parent / (out_dir.name + ".out")
    output.write_bytes(b"")  # libxl makes the file; pygrub only opens it
    argv = [
        sys.executable,
        "-m",
        "pygrub",
        "-q",
        f"--output={output}",
        "--output-format=simple0",
        f"--output-directory={out_dir}",
        str(image),
    ]
    primary, secondary = os.openpty()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=secondary,
            stdout=secondary,
            stderr=subprocess.PIPE,
            env=dict(os.environ, TERM="vt100"),
            start_new_session=True,
        )
        os.close(secondary)
        secondary = -1
        console = drain_until_exit(proc, primary, timeout)
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    assert proc.returncode == 0, f"pygrub failed: {err.decode(errors='replace')}"
    assert err == b"", err
    assert console == b"", f"pygrub wrote to the console: {console!r}"
    return parse_simple0(output.read_bytes())


def drain_until_exit(proc: subprocess.Popen[bytes], fd: int, timeout: float) -> bytes:
    """Everything written to the pty until the process exits (it would block on a full pty)."""
    seen = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            proc.wait()
            pytest.fail(f"pygrub took longer than {timeout} s")
        ready, _, _ = select.select([fd], [], [], min(left, 0.2))
        if not ready:
            if proc.poll() is not None:
                return bytes(seen)
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the last writer closed its end
            chunk = b""
        if not chunk:
            proc.wait(timeout=max(left, 1))
            return bytes(seen)
        seen += chunk


# -- QEMU ---------------------------------------------------------------------------------


def kvm_usable() -> bool:
    """Whether QEMU can use KVM here: /dev/kvm opens read-write and hardware
    virtualisation backs it. (A nested host may offer a /dev/kvm that is software
    paravirtualisation, kvm_pvm, on which an ordinary kernel never gets past its
    decompressor.) PYGRUB_TEST_ACCEL=kvm or tcg overrides the guess."""
    forced = os.environ.get("PYGRUB_TEST_ACCEL")
    if forced:
        return forced == "kvm"
    if not any(Path("/sys/module", m).is_dir() for m in ("kvm_intel", "kvm_amd")):
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def qemu_boot(
    kernel: Path,
    ramdisk: Path | None,
    args: str,
    timeout: float,
    disks: tuple[Path, ...] = (),
    memory_mb: int = 256,
    snapshot: bool = False,
) -> str:
    """The serial console of a QEMU guest booted straight into ``kernel``, as text;
    ``disks`` are raw images it sees as /dev/vda, /dev/vdb... (with ``snapshot``, its
    writes go to a temporary file and the images stay as they were)."""
    qemu = require_tool("qemu-system-x86_64")
    accel = ["-accel", "kvm"] if kvm_usable() else ["-accel", "tcg"]
    argv = [
        qemu,
        *accel,
        "-m",
        str(memory_mb),
        *(["-snapshot"] if snapshot else []),
        "-kernel",
        str(kernel),
        *(["-initrd", str(ramdisk)] if ramdisk else []),
        "-append",
        args,
        "-nographic",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
        "-nic",
        "none",
        *(arg for disk in disks for arg in ("-drive", f"file={disk},format=raw,if=virtio")),
    ]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        tail = (e.stdout or b"")[-3000:].decode(errors="replace")
        pytest.fail(f"the guest did not power off within {timeout} s; console ends:\n{tail}")
    console = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        pytest.fail(
            f"qemu exited {proc.returncode}: {proc.stderr.decode(errors='replace')}\n"
            f"console ends:\n{console[-3000:]}"
        )
    return console
