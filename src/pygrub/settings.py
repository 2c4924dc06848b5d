"""The settings of one run: the command line's options and the environment's values, in
one record built once at the edge (``cli.main``) and passed down.

Below the command line nothing reads the environment: the readers take these values as
arguments. A bad value is a usage error (exit status 2), raised here, and only by the
runs that use it, as each was checked before it was gathered here.
"""

from __future__ import annotations

from ._typing import TYPE_CHECKING
from .errors import UsageError
from .record import record, replace

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_OUTPUT_DIRECTORY = "/var/run/xen/pygrub/"
#: Seconds an unattended run may take (PYGRUB_TIMEOUT); libxl waits longer.
DEFAULT_TIMEOUT = 60.0
#: Size limit of one extracted file in MiB, as Xen's PYGRUB_MAX_FILE_SIZE_MB; with --runas,
#: Xen's LIMIT_FSIZE.
DEFAULT_MAX_FILE_MB = 1024
RUNAS_FILE_MB = 128
#: The sandboxed reader's address space in MiB: Xen's LIMIT_AS under --runas.
DEFAULT_MAX_RAM_MB = 256
#: Seconds the menu waits for a person who never comes (PYGRUB_MENU_MAX_WAIT).
DEFAULT_MENU_MAX_WAIT = 30.0
#: The largest user or group id; (uid_t)-1 means "leave unchanged" to setresuid.
MAX_USER_ID = 0xFFFFFFFE


@record
class Settings:
    """Everything one run was told: by argv (the first group) and by the environment."""

    image: str
    interactive: bool = True
    list_entries: bool = False
    not_really: bool = False
    output: str | None = None
    output_format: str = "sxp"
    output_directory: str = DEFAULT_OUTPUT_DIRECTORY
    kernel: str | None = None
    ramdisk: str | None = None
    args: str = ""
    entry: str | None = None
    offset: int | None = None
    isconfig: bool = False
    runas: int | None = None
    #: --no-sandbox turns this off: see ``sandboxed``.
    sandbox: bool = True
    debug: bool = False
    image_format: str = "auto"
    explain: bool = False
    #: XCP-ng's --extra_args and --default_args (None: no /xenkernel rule).
    extra_args: str = ""
    default_args: str | None = None

    #: PYGRUB_TIMEOUT, in seconds.
    timeout: float = DEFAULT_TIMEOUT
    #: PYGRUB_MAX_FILE_SIZE_MB and PYGRUB_MAX_RAM_USAGE_MB, in bytes.
    max_file_size: int = DEFAULT_MAX_FILE_MB << 20
    max_ram_usage: int = DEFAULT_MAX_RAM_MB << 20
    #: PYGRUB_MENU_MAX_WAIT, in seconds.
    menu_max_wait: float = DEFAULT_MENU_MAX_WAIT
    #: PYGRUB_ALLOW_BACKING=1: a qcow2 image may read a backing file beside it.
    allow_backing: bool = False

    @property
    def sandboxed(self) -> bool:
        """Whether the disk is read in the sandbox: with --runas, and by default but with
        --no-sandbox or --isconfig (a host file the administrator names, with what it
        includes beside it, which the sandbox's one-file root cannot hold)."""
        return self.runas is not None or (self.sandbox and not self.isconfig)

    @property
    def extracts(self) -> bool:
        """Whether the run writes a kernel (and ramdisk) into the output directory."""
        return not (self.not_really or self.list_entries or self.isconfig)


def with_environment(s: Settings, environ: Mapping[str, str]) -> Settings:
    """``s`` with the values ``environ`` gives for what this run does."""
    changes: dict[str, object] = {
        "timeout": timeout_seconds(environ),
        "allow_backing": backing_allowed(environ),
    }
    if s.sandboxed or s.extracts:
        changes["max_file_size"] = file_size_limit(environ, runas=s.runas is not None)
    if s.sandboxed:
        changes["max_ram_usage"] = megabytes(environ, "PYGRUB_MAX_RAM_USAGE_MB", DEFAULT_MAX_RAM_MB)
    if s.interactive:
        changes["menu_max_wait"] = menu_max_wait(environ)
    return replace(s, **changes)


def timeout_seconds(environ: Mapping[str, str]) -> float:
    """PYGRUB_TIMEOUT: seconds an unattended run may take (a positive number)."""
    raw = environ.get("PYGRUB_TIMEOUT", "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise UsageError(f"PYGRUB_TIMEOUT must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise UsageError(f"PYGRUB_TIMEOUT must be positive, not {raw!r}")
    return value


def file_size_limit(environ: Mapping[str, str], runas: bool = False) -> int:
    """PYGRUB_MAX_FILE_SIZE_MB in bytes: the per-file extraction limit."""
    default = RUNAS_FILE_MB if runas else DEFAULT_MAX_FILE_MB
    return megabytes(environ, "PYGRUB_MAX_FILE_SIZE_MB", default)


def megabytes(environ: Mapping[str, str], name: str, default_mb: int) -> int:
    """Bytes from the environment variable ``name``: a whole, positive number of MiB."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default_mb << 20
    try:
        value = int(raw, 10)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {raw!r}") from None
    if value <= 0:
        raise UsageError(f"{name} must be positive, not {value}")
    return value << 20


def menu_max_wait(environ: Mapping[str, str]) -> float:
    """PYGRUB_MENU_MAX_WAIT in seconds (0 boots at once)."""
    raw = environ.get("PYGRUB_MENU_MAX_WAIT", "")
    if not raw:
        return DEFAULT_MENU_MAX_WAIT
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"PYGRUB_MENU_MAX_WAIT must be a number of seconds, not {raw!r}") from None
    if not 0 <= value < float("inf"):  # NaN is neither
        raise UsageError(f"PYGRUB_MENU_MAX_WAIT must be zero or more seconds, not {raw!r}")
    return value


def backing_allowed(environ: Mapping[str, str]) -> bool:
    """PYGRUB_ALLOW_BACKING=1: read a qcow2 backing file in the image's own directory."""
    return environ.get("PYGRUB_ALLOW_BACKING") == "1"
