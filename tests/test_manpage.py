"""pygrub(1): generated from the --help table, well-formed for groff, installed by pip."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from imaging import require_tool

import pygrub
from pygrub import cli, manpage

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "man" / "pygrub.1"

#: An option as a flag table shows it: -q, --quiet, --output-format (without =VALUE).
_FLAG = re.compile(r"(?<![\w-])(--?[a-z][a-z0-9_-]*)")


def help_output() -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pygrub", "--help"], capture_output=True, text=True, check=True
    )
    return proc.stdout


def rendered_page(path: Path = PAGE) -> str:
    """The page as man-db shows it on an 80-column terminal, formatting removed."""
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0", LC_ALL="C.UTF-8")
    proc = subprocess.run(
        [require_tool("man"), "-l", str(path)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return re.sub(r".\x08", "", proc.stdout).replace("\u2010", "-").replace("\u2212", "-")


def defined_flags(text: str, indent: str) -> set[str]:
    """Flags that start a line of an option list (at ``indent``), not those in the prose."""
    found = set()
    for line in text.splitlines():
        if line.startswith(indent + "-") and not line.startswith(indent + " "):
            head = re.split(r"\s{2,}", line.strip())[0]
            found |= set(_FLAG.findall(head))
    return found


def section(text: str, title: str) -> str:
    """A section of the rendered page: its lines up to the next unindented heading."""
    body = text.split(f"\n{title}\n", 1)[1]
    return re.split(r"\n(?=[A-Z])", body, maxsplit=1)[0]


def test_committed_page_is_generated():
    assert PAGE.read_text() == manpage.render(), (
        "man/pygrub.1 is stale: run python -m pygrub.manpage > man/pygrub.1"
    )


def test_groff_reads_it_without_warnings():
    proc = subprocess.run(
        [require_tool("groff"), "-man", "-Tutf8", "-ww", "-z", str(PAGE)],
        capture_output=True,
        text=True,
    )
    assert (proc.returncode, proc.stderr) == (0, "")


def test_every_help_flag_is_in_the_page_and_back():
    help_flags = defined_flags(help_output(), "  ")
    table = {f"--{f.long}" for f in cli.FLAGS} | {f"-{f.short}" for f in cli.FLAGS if f.short}
    assert help_flags == table
    options = section(rendered_page(), "OPTIONS")
    page_flags = defined_flags(options, " " * 7)
    assert page_flags == help_flags


def test_every_flag_parses_and_says_what_it_takes():
    """The table drives getopt too: each flag parses, with a value exactly when it names one."""
    for flag in cli.FLAGS:
        if flag.long in ("help", "version"):
            with pytest.raises((cli.HelpRequested, cli.VersionRequested)):
                cli.parse_args([f"--{flag.long}"])
            continue
        argv = [f"--{flag.long}=x"] if flag.value else [f"--{flag.long}"]
        if flag.long in ("offset", "runas"):
            argv = [f"--{flag.long}=5", "-q"]
        elif flag.long == "output-directory":
            argv = [f"--{flag.long}=/"]
        elif flag.long == "ramdisk":
            argv = [f"--{flag.long}=x", "--kernel=y"]
        elif flag.long in ("output-format", "format"):
            argv = [f"--{flag.long}=raw" if flag.long == "format" else f"--{flag.long}=json"]
        cli.parse_args([*argv, "disk.img"])


def test_page_has_environment_and_exit_status():
    text = rendered_page()
    for name, _ in cli.ENVIRONMENT:
        assert name in section(text, "ENVIRONMENT")
    assert cli.EXIT_STATUS in " ".join(section(text, "EXIT STATUS").split())
    assert text.startswith("PYGRUB(1)")


def test_wheel_installs_page_schema_and_scripts(tmp_path):
    """What `pip install .` does, offline: build the wheel, install it into a new venv."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md", "man"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        pytest.fail(f"building the wheel failed (setuptools>=70.1 is a test extra): {build.stderr}")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The wheel's version is the package's own (pyproject reads pygrub.__version__).
    (wheel,) = wheels.glob(f"pygrub-{pygrub.__version__}-*.whl")
    # A plain install brings the decoders every guest may need (zstd from the standard
    # library on Python 3.14+).
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"pygrub-{pygrub.__version__}.dist-info/METADATA").decode()
    requires = {
        line.split(": ", 1)[1]
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ")
    }
    assert {"lz4>=4", 'zstandard>=0.20; python_version < "3.14"'} <= requires
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    installed = venv / "share" / "man" / "man1" / "pygrub.1"
    assert installed.read_text() == PAGE.read_text()
    assert "OPTIONS" in rendered_page(installed)
    out = subprocess.run(
        [str(venv / "bin" / "pygrub"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert out == help_output()
    out = subprocess.run(
        [str(venv / "bin" / "pygrub"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out == f"pygrub {pygrub.__version__}\n"
    subprocess.run([str(venv / "bin" / "pygrub-dropin"), "--help"], check=True, capture_output=True)
    code = "import pygrub; print(pygrub.json_schema()['$defs']['boot']['properties']['version'])"
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "{'const': 1}"


def environment_reads() -> set[str]:
    """The environment variables the code reads: every PYGRUB_* name in src, and what
    ``environ.get`` or ``getenv`` is asked for by a literal name."""
    names: set[str] = set()
    for path in (ROOT / "src" / "pygrub").rglob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r"\bPYGRUB_[A-Z_]+\b", text))
        names |= set(
            re.findall(r"(?:environ\.get|environ\[|getenv)\(?\s*[\"']([A-Z_]+)[\"']", text)
        )
    return names


def test_every_environment_variable_is_documented():
    # --help, the man page and the README list exactly what the code reads.
    documented = {name for name, _text in cli.ENVIRONMENT}
    assert environment_reads() == documented
    readme = (ROOT / "README.md").read_text()
    assert [name for name in sorted(documented) if f"| `{name}` |" not in readme] == []
    page = rendered_page()
    assert [name for name in sorted(documented) if name not in section(page, "ENVIRONMENT")] == []
