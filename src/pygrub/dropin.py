"""Put this pygrub where Xen's toolstack runs ``pygrub``, and take it away again.

libxl runs ``bootloader = "pygrub"`` from its own libexec directory
(``/usr/lib/xen-<version>/bin`` on Debian, ``/usr/lib/xen/bin`` or
``/usr/libexec/xen/bin`` elsewhere). ``--install`` keeps Xen's script there as
``pygrub.xen`` and puts a two-line shell wrapper in its place that execs this
interpreter on this package; ``--uninstall`` puts Xen's back. The files are swapped by
rename, so the toolstack never finds the name missing or half written.

    python3 -m pygrub.dropin --install [--xen-dir DIR] [--root DIR]
    python3 -m pygrub.dropin --uninstall [--xen-dir DIR] [--root DIR]
    python3 -m pygrub.dropin --status [--xen-dir DIR] [--root DIR]

The Debian package runs ``--install --dpkg-divert`` from its maintainer scripts: the
same wrapper and the same swaps, and ``dpkg-divert`` records that Xen's file now lives
at ``pygrub.xen``, so Xen's package upgrades write there and leave the wrapper alone.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
from collections.abc import Sequence

from .record import record

NAME = "pygrub"
BACKUP = "pygrub.xen"
#: The wrapper's first two lines; a file that starts so is ours.
MARK = b"#!/bin/sh\n# pygrub-dropin:"
#: A wrapper is a few hundred bytes; a longer file is never taken for one.
MAX_WRAPPER = 4096
#: Where Xen's packages put libxl's helper programs, under --root.
XEN_BIN_PATTERNS = ("usr/lib/xen-*/bin", "usr/lib/xen/bin", "usr/libexec/xen/bin")
#: Debian's: one directory per Xen version installed (xen-utils-4.17, ...).
DEBIAN_XEN_BIN = "usr/lib/xen-*/bin"
#: The Debian package that holds the diversions (dpkg-divert --package).
DPKG_PACKAGE = "pygrub"


class DropinError(Exception):
    """Something the administrator must sort out; the message says what."""


@record(frozen=True)
class State:
    directory: str
    #: "ours", "xen" (a pygrub that is not our wrapper) or "none".
    installed: str
    backup: bool

    def __str__(self) -> str:
        what = {
            "ours": "this pygrub (the drop-in wrapper)",
            "xen": "another pygrub (Xen's)",
            "none": "no pygrub",
        }[self.installed]
        kept = f"; Xen's kept as {BACKUP}" if self.backup else ""
        return f"{self.directory}: {what}{kept}"


def is_wrapper(path: str) -> bool:
    """Whether ``path`` is a wrapper this module wrote (a symlink never is)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = os.read(fd, MAX_WRAPPER + 1)
    finally:
        os.close(fd)
    return head.startswith(MARK) and len(head) <= MAX_WRAPPER


def state(directory: str) -> State:
    target = os.path.join(directory, NAME)
    if is_wrapper(target):
        installed = "ours"
    elif os.path.lexists(target):
        installed = "xen"
    else:
        installed = "none"
    return State(directory, installed, os.path.lexists(os.path.join(directory, BACKUP)))


def wrapper_text(python: str, directory: str, paths: Sequence[str], undo: str | None = None) -> str:
    """The shell script that runs this pygrub with every argument unchanged.

    -I: libxl's environment and working directory must not decide which code runs. -S:
    the directories ``site`` would add (``paths``, from :func:`site_paths` at install
    time) are put on the path by the script itself; running site and the .pth files' code costs
    5-7 ms of every domain start.
    """
    code = f"import sys; sys.path += {json.dumps(list(paths))}; from pygrub.cli import command; command()"
    if undo is None:
        undo = f"{_sh_quote(python)} -m pygrub.dropin --uninstall --xen-dir {_sh_quote(directory)}"
    return (
        MARK.decode()
        + f" this is the pure-Python pygrub; Xen's is kept as {BACKUP}.\n"
        + f"# Undo: {undo}\n"
        + f'exec {_sh_quote(python)} -I -S -c {_sh_quote(code)} "$@"\n'
    )


def wrapper_python(path: str) -> str | None:
    """The interpreter a wrapper execs (its exec line's first word), or None."""
    import shlex

    with open(path, "rb") as f:
        lines = f.read(MAX_WRAPPER).decode(errors="replace").splitlines()
    for line in lines:
        if line.startswith("exec "):
            words = shlex.split(line)
            return words[1] if len(words) > 1 else None
    return None


def wrapper_problem(path: str) -> str | None:
    """Why the wrapper at ``path`` cannot run pygrub (its interpreter is gone, as when
    the venv it was installed from was deleted; or it fails), or None when it runs."""
    python = wrapper_python(path)
    if python is None:
        return "it names no interpreter"
    if not os.access(python, os.X_OK):
        return f"its interpreter {python} is gone (a deleted venv?)"
    proc = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0 or not proc.stdout.startswith("pygrub "):
        said = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"it does not run: {said}"
    return None


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def check_python(python: str) -> None:
    """The interpreter the wrapper will exec must import this pygrub in isolated mode."""
    if not os.path.isabs(python):
        raise DropinError(f"the interpreter must be an absolute path, not {python!r}")
    proc = subprocess.run(
        [python, "-I", "-c", "import pygrub.cli"], capture_output=True, timeout=60
    )
    if proc.returncode != 0:
        raise DropinError(
            f"{python} -I cannot import pygrub (install the package for that interpreter)"
        )


def site_paths(python: str) -> list[str]:
    """The directories ``site`` adds to ``python``'s path in isolated mode (site-packages
    and what .pth files name): the wrapper adds them itself and runs Python with -S."""
    with_site, bare = _path_of(python, "-I"), _path_of(python, "-I", "-S")
    return [p for p in with_site if p not in bare]


def _path_of(python: str, *flags: str) -> list[str]:
    show = "import json, sys; print(json.dumps(sys.path))"
    proc = subprocess.run([python, *flags, "-c", show], capture_output=True, timeout=60, check=True)
    return json.loads(proc.stdout)


def install(directory: str, python: str, paths: Sequence[str], undo: str | None = None) -> State:
    """Make ``directory/pygrub`` our wrapper, Xen's kept as ``pygrub.xen``."""
    if "\n" in python or "\n" in directory:
        raise DropinError("a path with a newline cannot go into the wrapper script")
    before = state(directory)
    target = os.path.join(directory, NAME)
    backup = os.path.join(directory, BACKUP)
    if before.installed == "xen":
        # A pygrub that is not ours is the newest Xen one (an upgrade may have put it
        # back over the wrapper): it becomes the backup, hard-linked so the name
        # "pygrub" stays in place until the wrapper replaces it.
        _replace_by_link(target, backup)
    _write_atomically(target, wrapper_text(python, directory, paths, undo))
    return state(directory)


def uninstall(directory: str) -> State:
    """Put Xen's pygrub back (or remove the wrapper when there was none)."""
    before = state(directory)
    target = os.path.join(directory, NAME)
    if before.installed != "ours":
        return before
    if before.backup:
        os.rename(os.path.join(directory, BACKUP), target)
    else:
        os.unlink(target)
    return state(directory)


def _replace_by_link(source: str, destination: str) -> None:
    temporary = destination + ".dropin-tmp"
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.link(source, temporary, follow_symlinks=False)
    os.rename(temporary, destination)


def _write_atomically(path: str, text: str) -> None:
    temporary = path + ".dropin-tmp"
    if os.path.lexists(temporary):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o755)
    try:
        os.write(fd, text.encode())
        os.fchmod(fd, 0o755)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temporary, path)


# -- the Debian package: dpkg-divert records the swap --------------------------------------

#: What the wrapper says to undo it when the Debian package installed it.
DPKG_UNDO = f"apt-get purge {DPKG_PACKAGE} (dpkg-divert keeps Xen's pygrub as {BACKUP})"


def _dpkg_divert(root: str, *args: str) -> str:
    """dpkg-divert's output; with ``root`` other than /, on the dpkg database under it."""
    rooted = ["--root", root] if os.path.realpath(root) != "/" else []
    proc = subprocess.run(
        ["dpkg-divert", *rooted, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LC_ALL": "C"},
    )
    if proc.returncode != 0:
        raise DropinError(f"dpkg-divert {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def _inside(root: str, path: str) -> str:
    """``path`` as dpkg under ``root`` names it."""
    return "/" + os.path.relpath(path, root)


def diverted_by(root: str, directory: str) -> str | None:
    """The package that diverts ``directory/pygrub``, or None."""
    path = _inside(root, os.path.join(directory, NAME))
    return _dpkg_divert(root, "--listpackage", path).strip() or None


def our_diversions(root: str) -> list[str]:
    """The directories whose pygrub the package diverts, as dpkg-divert lists them:
    "diversion of /usr/lib/xen-4.17/bin/pygrub to /usr/lib/xen-4.17/bin/pygrub.xen by pygrub"."""
    found = []
    pattern = f"/{DEBIAN_XEN_BIN}/{NAME}"  # not the package's own /usr/bin/pygrub
    for line in _dpkg_divert(root, "--list", pattern).splitlines():
        words = line.split(" ")
        if len(words) == 7 and words[6] == DPKG_PACKAGE and words[2].endswith("/" + NAME):
            found.append(os.path.join(root, os.path.dirname(words[2]).lstrip("/")))
    return sorted(found)


def _divert(root: str, directory: str, action: str) -> None:
    """Add or remove the diversion of pygrub to pygrub.xen. The files are already where
    dpkg will then expect them (swapped by rename above), so dpkg-divert moves nothing."""
    target = _inside(root, os.path.join(directory, NAME))
    backup = _inside(root, os.path.join(directory, BACKUP))
    _dpkg_divert(root, "--package", DPKG_PACKAGE, "--no-rename", "--divert", backup, action, target)


def install_diverted(root: str, directory: str, python: str, paths: Sequence[str]) -> State:
    """The package's install: the wrapper in place of Xen's pygrub, and dpkg told. A
    directory whose Xen package went away (the wrapper left without a backup) is cleared."""
    owner = diverted_by(root, directory)
    if owner not in (None, DPKG_PACKAGE):
        raise DropinError(f"{directory}/{NAME} is already diverted by {owner}")
    before = state(directory)
    if before.installed == "ours" and not before.backup:
        return uninstall_diverted(root, directory)
    after = install(directory, python, paths, DPKG_UNDO)
    if owner is None:
        _divert(root, directory, "--add")
    return after


def uninstall_diverted(root: str, directory: str) -> State:
    """Xen's pygrub back in place, then the diversion removed."""
    if diverted_by(root, directory) != DPKG_PACKAGE:
        return state(directory)
    after = uninstall(directory)
    _divert(root, directory, "--remove")
    return after


def xen_directories(root: str, patterns: Sequence[str] = XEN_BIN_PATTERNS) -> list[str]:
    """libxl's helper directories under ``root`` that hold a pygrub (or our backup)."""
    found = []
    for pattern in patterns:
        for directory in sorted(glob.glob(os.path.join(root, pattern))):
            if os.path.isdir(directory) and (
                os.path.lexists(os.path.join(directory, NAME))
                or os.path.lexists(os.path.join(directory, BACKUP))
            ):
                found.append(directory)
    return found


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m pygrub.dropin",
        description="Install this pygrub in place of Xen's, or put Xen's back.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--install", action="store_true", help="put this pygrub in place")
    action.add_argument("--uninstall", action="store_true", help="put Xen's pygrub back")
    action.add_argument("--status", action="store_true", help="say what is installed")
    parser.add_argument(
        "--xen-dir",
        action="append",
        metavar="DIR",
        help="libxl's helper directory, e.g. /usr/lib/xen-4.17/bin (default: every one found)",
    )
    parser.add_argument(
        "--root", default="/", metavar="DIR", help="look for Xen under DIR instead of /"
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        metavar="PATH",
        help="the interpreter the wrapper runs (default: this one)",
    )
    parser.add_argument(
        "--path",
        action="append",
        metavar="DIR",
        help="a directory the wrapper puts on sys.path (default: those site adds)",
    )
    parser.add_argument(
        "--dpkg-divert",
        action="store_true",
        help=f"record the swap with dpkg-divert (the {DPKG_PACKAGE} Debian package does); "
        "only Debian's /usr/lib/xen-*/bin",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    patterns = (DEBIAN_XEN_BIN,) if args.dpkg_divert else XEN_BIN_PATTERNS
    try:
        if args.dpkg_divert and args.uninstall:
            # Exactly the diversions the package made, even where Xen has gone since.
            directories = args.xen_dir or our_diversions(args.root)
        else:
            directories = args.xen_dir or xen_directories(args.root, patterns)
        if not directories and args.dpkg_divert:
            print(f"no Xen pygrub under {args.root}{DEBIAN_XEN_BIN}: nothing to do")
            return 0
        if not directories:
            raise DropinError(
                f"no Xen pygrub found under {args.root} ({', '.join(XEN_BIN_PATTERNS)}); "
                "name the directory with --xen-dir"
            )
        for directory in directories:
            if not os.path.isdir(directory) and not (args.dpkg_divert and args.uninstall):
                raise DropinError(f"{directory} is not a directory")
        if args.install:
            check_python(args.python)
        paths = (args.path or site_paths(args.python)) if args.install else []
        status = 0
        for directory in directories:
            if args.install and args.dpkg_divert:
                print(install_diverted(args.root, directory, args.python, paths))
            elif args.install:
                print(install(directory, args.python, paths))
            elif args.uninstall and args.dpkg_divert:
                print(uninstall_diverted(args.root, directory))
            elif args.uninstall:
                before = state(directory)
                after = uninstall(directory)
                if before.installed != "ours":
                    print(f"{after} (not installed here: nothing done)")
                else:
                    print(after)
            else:
                now = state(directory)
                problem = now.installed == "ours" and wrapper_problem(os.path.join(directory, NAME))
                if problem:
                    print(f"{now}, but broken: {problem}; run --install again, or --uninstall")
                    status = 1
                else:
                    print(now)
    except (DropinError, OSError, subprocess.SubprocessError) as e:
        print(f"pygrub-dropin: error: {e}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
