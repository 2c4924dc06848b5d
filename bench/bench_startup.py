"""Start-up cost: what a run imports, and how long that takes (``python -X importtime``).

    python bench/bench_startup.py [--runs 15]

Each scenario runs ``python -X importtime`` on our ``pygrub`` (in a fresh process, under
the interpreter Xen's pygrub uses) ``--runs`` times. Everything imported from the moment
pygrub starts counts as its start-up: our own modules (their own time, without their
imports) and the standard-library modules they pull in that the interpreter had not
imported already. Medians per module, then summed.

``-X importtime`` sees only imports made by the import statement: a module loaded with
``importlib.import_module`` (how pygrub loads the driver of the filesystem and the
config format it meets) would show only its children. The runner therefore routes
``importlib.import_module`` of an absolute name through ``__import__`` first.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import images
from common import (
    OURS,
    PYTHON,
    MiB,
    child_env,
    compile_sources,
    load_note,
    markdown_table,
    measure_side_by_side,
    python_note,
    seconds,
    write_random,
)

MARK = "pygrub-bench: start"

RUNNER = f"""\
import importlib, runpy, sys
_import_module = importlib.import_module
def import_module(name, package=None):
    if name.startswith("."):
        return _import_module(name, package)
    __import__(name)
    return sys.modules[name]
importlib.import_module = import_module
sys.stderr.write({MARK!r} + "\\n")
sys.stderr.flush()
runpy.run_module("pygrub", run_name="__main__", alter_sys=True)
"""

#: A Debian-style grub.cfg, as grub-mkconfig writes it (shortened).
DEBIAN_GRUB_CFG = """\
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  else
    insmod efi_gop
    insmod vbe
  fi
}
terminal_output gfxterm
set timeout_style=menu
set timeout=5
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class os $menuentry_id_option 'gnulinux-simple-1234' {
	load_video
	insmod gzio
	insmod part_msdos
	insmod ext2
	set root='hd0,msdos1'
	echo	'Loading Linux 6.1.0-13-amd64 ...'
	linux	/boot/vmlinuz root=/dev/xvda1 ro quiet
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-1234' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-13-amd64 (recovery mode)' --class debian {
		load_video
		insmod gzio
		linux	/boot/vmlinuz root=/dev/xvda1 ro single
		initrd	/boot/initrd.img
	}
}
"""

MENU_LST = """\
default 0
timeout 5
title Debian GNU/Linux
root (hd0,0)
kernel /boot/vmlinuz root=/dev/xvda1 ro quiet
initrd /boot/initrd.img
"""

LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


@dataclass
class Scenario:
    name: str
    args: list[str]
    #: module -> its own import time (µs) in each run.
    own: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def median_us(self, module: str) -> float:
        return statistics.median(self.own[module])

    def modules(self, ours: bool) -> list[str]:
        found = [m for m in self.own if (m == "pygrub" or m.startswith("pygrub.")) == ours]
        return sorted(found, key=self.median_us, reverse=True)

    def total_ms(self, ours: bool) -> float:
        return sum(self.median_us(m) for m in self.modules(ours)) / 1000


def imports_of_one_run(args: list[str]) -> dict[str, int]:
    """Module -> own import time (µs) of everything imported once pygrub starts."""
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", RUNNER, *args],
        capture_output=True, text=True, env=child_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"pygrub {' '.join(args)} failed: {proc.stderr[-2000:]}")
    _before, _mark, after = proc.stderr.partition(MARK)
    return {m[4]: int(m[1]) for m in map(LINE.match, after.splitlines()) if m}


def wall_ms(argv: list[str], runs: int) -> float:
    import time

    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=child_env(), stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


#: The --runas user of the sandbox row: one no passwd names.
RUNAS_UID = 43219


def sandbox_cost(disk: Path, out: Path, runs: int) -> str:
    """A boot with and without the sandbox, interleaved, as root (the toolstack's case)."""
    boot = [*OURS, "-q", f"--output-directory={out}", str(disk)]
    commands = {
        "`-q` (sandboxed by default)": boot,
        "`-q --runas=UID`": [*boot, f"--runas={RUNAS_UID}"],
        "`-q --no-sandbox`": [*boot, "--no-sandbox"],
        # The machine's speed at the time, for scale: on a quiet day this takes 14 ms.
        "`python3 -c pass`": [PYTHON, "-c", "pass"],
    }
    samples = measure_side_by_side(commands, runs, out)
    unsandboxed = samples["`-q --no-sandbox`"]

    def cost(name: str) -> str:
        sample = samples[name]
        if sample.failure or unsandboxed.failure or name not in list(commands)[:2]:
            return "–"
        return f"{(sample.median - unsandboxed.median) * 1000:+.1f}"

    rows = [[name, seconds(samples[name]), cost(name)] for name in commands]
    return markdown_table(("ext4 + GRUB 2, 1 MiB + 1 MiB", "s", "ms over --no-sandbox"), rows)


def make_guests(work: Path) -> dict[str, Path]:
    disks = {}
    for name, config_path, text in (
        ("grub2", "boot/grub/grub.cfg", DEBIAN_GRUB_CFG),
        ("legacy", "boot/grub/menu.lst", MENU_LST),
    ):
        tree = images.make_tree(
            work / f"tree-{name}",
            lambda p: write_random(p, MiB),
            lambda p: write_random(p, MiB),
        )
        (tree / "boot" / "grub" / "grub.cfg").unlink()
        (tree / config_path).write_text(text)
        disk_dir = work / name
        disk_dir.mkdir()
        disks[name] = images.ext4_mbr(disk_dir, tree)
    return disks


def run(runs: int) -> str:
    compile_sources()
    before = load_note()
    with tempfile.TemporaryDirectory(prefix="pygrub-bench-") as tmp:
        work = Path(tmp)
        disks = make_guests(work)
        out = work / "out"
        out.mkdir()
        boot = ["-q", f"--output-directory={out}"]
        scenarios = [
            Scenario("`pygrub --help`", ["--help"]),
            Scenario("ext4 + GRUB 2 (Debian grub.cfg), `-q`", [*boot, str(disks["grub2"])]),
            Scenario("ext4 + GRUB legacy (menu.lst), `-q`", [*boot, str(disks["legacy"])]),
        ]
        for _ in range(runs):
            for scenario in scenarios:
                for module, us in imports_of_one_run(scenario.args).items():
                    scenario.own[module].append(us)
                for f in out.iterdir():
                    f.unlink()
        walls = {
            "`python3 -c pass`": wall_ms([PYTHON, "-c", "pass"], runs),
            "`pygrub --help`": wall_ms([*OURS, "--help"], runs),
            "`pygrub -q` ext4 + GRUB 2, 1 MiB + 1 MiB": wall_ms(
                [*OURS, *boot, str(disks["grub2"])], runs
            ),
        }
        sandbox_before = load_note()
        sandbox_table = sandbox_cost(disks["grub2"], out, 3 * runs)
    rows = [
        [
            s.name,
            str(len(s.modules(True))),
            f"{s.total_ms(True):.1f}",
            str(len(s.modules(False))),
            f"{s.total_ms(False):.1f}",
            f"**{s.total_ms(True) + s.total_ms(False):.1f}**",
        ]
        for s in scenarios
    ]
    typical = scenarios[1]

    def listing(names: list[str]) -> str:
        return ", ".join(f"{m} {typical.median_us(m) / 1000:.1f}" for m in names)

    return "\n".join(
        [
            f"Start-up imports (`-X importtime`), median of {runs} runs, under "
            f"{python_note()}. Machine: {before} before, {load_note()} after.",
            "",
            markdown_table(
                (
                    "run",
                    "pygrub modules",
                    "their own ms",
                    "stdlib modules pulled in",
                    "their ms",
                    "pygrub start-up ms",
                ),
                rows,
            ),
            "",
            f"Standard-library modules pulled in by the ext4 + GRUB 2 run (ms): "
            f"{listing(typical.modules(False))}.",
            "",
            f"Our heaviest modules in that run (ms): {listing(typical.modules(True)[:10])}.",
            "",
            "Wall time, median: "
            + "; ".join(f"{name} {ms:.0f} ms" for name, ms in walls.items())
            + ".",
            "",
            f"The sandbox's cost: a boot with and without it, median of {3 * runs} runs "
            f"each, interleaved, as root. Machine: {sandbox_before} before, {load_note()} "
            "after.",
            "",
            sandbox_table,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    print(run(parser.parse_args().runs))


if __name__ == "__main__":
    main()
