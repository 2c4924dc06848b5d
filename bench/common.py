"""What every benchmark shares: fresh-process timing, the machine's load, Markdown tables.

Each command runs as a fresh process under GNU time, which reports the peak RSS of
exactly that process (see ``spawn``). Commands compared in
one table run interleaved (run 1 of each, then run 2 of each, ...) so that a burst of
load on the machine falls on all of them alike; the figure is the median.
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20
REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
XEN_PYGRUB = "/usr/lib/xen-4.17/bin/pygrub"
#: GNU time (Debian package "time"): the peak RSS of exactly the command.
GNU_TIME = "/usr/bin/time"


def xen_interpreter() -> str:
    """The Python that Xen's pygrub runs under (its #! line), else this one.

    Ours runs under the same interpreter, so that the figures compare the two programs
    and not two Pythons' start-up (a development Python's site may import much more).
    """
    try:
        with open(XEN_PYGRUB, "rb") as f:
            first = f.readline().decode(errors="replace")
    except OSError:
        return sys.executable
    interpreter = first[2:].split()[0] if first.startswith("#!") else ""
    return interpreter if os.access(interpreter, os.X_OK) else sys.executable


PYTHON = xen_interpreter()


def dropin_wrapper() -> Path:
    """Our command as libxl runs it after ``pygrub-dropin --install``: the wrapper script
    (sh, then PYTHON -I -S with site's directories and this tree on its path)."""
    sys.path.insert(0, str(SRC))
    from pygrub import dropin

    directory = Path(tempfile.mkdtemp(prefix="pygrub-bench-dropin-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    wrapper = directory / "pygrub"
    paths = [str(SRC), *dropin.site_paths(PYTHON)]
    wrapper.write_text(dropin.wrapper_text(PYTHON, str(directory), paths))
    wrapper.chmod(0o755)
    return wrapper


#: Our command: this tree, run as the toolstack runs an installed drop-in (Xen's pygrub
#: runs as its own script, /usr/bin/python3 with site).
OURS = [str(dropin_wrapper())]

#: mkfs.xfs 5.19 and later refuse filesystems under 300 MB unless fstests runs them.
SMALL_XFS_ENV = {"TEST_DIR": "/tmp", "TEST_DEV": "/dev/null", "QA_CHECK_FS": "xfs"}


class BenchError(Exception):
    """A tool the benchmark needs failed or is missing."""


def tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        raise BenchError(f"{name} is not installed")
    return path


def sh(*argv: str | os.PathLike[str], stdin: bytes | None = None, env: dict | None = None) -> bytes:
    """Run a tool to build a fixture; its stderr becomes the error when it fails."""
    proc = subprocess.run(
        [tool(str(argv[0])), *map(str, argv[1:])],
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise BenchError(f"{argv[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def compile_sources() -> None:
    """An installed package has its bytecode compiled; so must the benchmarked tree."""
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(SRC)], check=True, env=child_env())


def child_env() -> dict[str, str]:
    # Stale bytecode recompiled on every start would be measured otherwise.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(SRC)
    return env


def python_note() -> str:
    version = subprocess.run(
        [PYTHON, "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return f"{PYTHON} (Python {version})"


def load_note() -> str:
    """The machine as the figures were taken: cores and load averages."""
    with open("/proc/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return f"{os.cpu_count()} CPUs, load average {one} {five} {fifteen} (1/5/15 min)"


@dataclass
class Sample:
    """The runs of one command: wall seconds and peak RSS (KiB) of each, or why it failed."""

    times: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    failure: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def peak_mib(self) -> float:
        return max(self.peaks) / 1024


def spawn(argv: Sequence[str], out_dir: Path | None, env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in KiB and stderr (when it failed) of one fresh process.

    The command runs under GNU time, which forks it and reports its ru_maxrss: a process
    exec'd straight from this one would inherit this process's peak RSS as its own floor
    (Linux keeps the larger of the old and the new image's peak across execve).
    """
    if out_dir is not None:
        for f in out_dir.iterdir():
            f.unlink()
    with tempfile.TemporaryDirectory(prefix="pygrub-spawn-") as tmp:
        rss_file, err_file = Path(tmp) / "rss", Path(tmp) / "err"
        wrapped = [GNU_TIME, "-q", "-f", "%M", "-o", str(rss_file), *argv]
        with open(os.devnull, "wb") as devnull, open(err_file, "wb") as err:
            start = time.perf_counter()
            proc = subprocess.run(
                wrapped, stdin=subprocess.DEVNULL, stdout=devnull, stderr=err, env=env
            )
            elapsed = time.perf_counter() - start
        message = ""
        if proc.returncode != 0:
            lines = err_file.read_text(errors="replace").strip().splitlines()
            message = lines[-1] if lines else f"exit status {proc.returncode}"
        peak = int(rss_file.read_text().split()[-1])
    return elapsed, peak, message


def measure_side_by_side(
    commands: dict[str, Sequence[str]], runs: int, out_dir: Path | None
) -> dict[str, Sample]:
    """Each command ``runs`` times, interleaved. A command that fails once is dropped."""
    env = child_env()
    samples = {name: Sample() for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            sample = samples[name]
            if sample.failure is not None:
                continue
            elapsed, peak, failure = spawn(argv, out_dir, env)
            if failure:
                sample.failure = failure
                continue
            sample.times.append(elapsed)
            sample.peaks.append(peak)
    return samples


#: The messages of the failures shown as "fails" since the last failures_note().
_failures_shown: set[str] = set()


def seconds(sample: Sample | None) -> str:
    if sample is None:
        return "n/a"
    if sample.failure is not None:
        _failures_shown.add(shorten(sample.failure))
        return "fails"
    return f"{sample.median:.3f}"


def failures_note() -> str:
    """A line under a table saying what "fails" meant in it (empty when nothing failed)."""
    messages = sorted(_failures_shown)
    _failures_shown.clear()
    return f'\n\n"fails": {"; ".join(messages)}.' if messages else ""


def shorten(text: str, width: int = 70) -> str:
    text = " ".join(text.replace("|", "/").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def ratio(a: Sample | None, b: Sample | None) -> str:
    if a is None or b is None or a.failure or b.failure:
        return "–"
    return f"{a.median / b.median:.2f}x"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_random(path: Path, size: int) -> None:
    """``size`` random bytes, written in pieces so this process's memory stays small."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            piece = min(left, MiB)
            f.write(os.urandom(piece))
            left -= piece


def write_compressible(path: Path, size: int) -> None:
    """About 4:1 compressible bytes: random quarters among repeated text, never zero blocks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (b"the quick brown fox jumps over the lazy dog 0123456789\n" * 1200)[: 3 * 16384]
    with open(path, "wb") as f:
        left = size
        while left:
            piece = (os.urandom(16384) + text)[:left]
            f.write(piece)
            left -= len(piece)


def read_simple0(path: Path) -> dict[str, str]:
    """The items of a ``--output-format=simple0`` result."""
    items = path.read_bytes().decode("utf-8", "surrogateescape").split("\0")
    return dict(item.split(" ", 1) for item in items if item)
