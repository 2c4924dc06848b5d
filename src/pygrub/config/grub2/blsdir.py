"""Reading a directory of Boot Loader Specification entries (or unified kernel images),
as GRUB's blscfg and uki commands do: files that cannot be read are passed over."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..._typing import TYPE_CHECKING
from ...errors import PygrubError
from ...fs import Filesystem
from ...limits import MAX_CONFIG_BYTES, MAX_DIR_ENTRIES
from ...log import get_logger
from .. import decode_config
from . import bls
from .interp import ScriptLimitError

if TYPE_CHECKING:
    from .interp import Interpreter

log = get_logger(__name__)


def directory_files(
    fs: Filesystem, directory: str, wanted: Callable[[str], bool], command: str
) -> Iterator[tuple[str, str]]:
    """(name, path) of each regular file in ``directory`` whose name is ``wanted``, in the
    directory's order; what cannot be listed or looked at is logged for ``command`` and
    passed over, as GRUB's blscfg and uki skip it."""
    try:
        if not directory.startswith("/") or not fs.is_dir(directory):
            return
        names = fs.listdir(directory)
    except PygrubError as e:
        log.info("%s: %s: %s", command, directory, e)
        return
    for file_name in names:
        if not wanted(file_name):
            continue
        path = directory.rstrip("/") + "/" + file_name
        try:
            if fs.is_file(path):
                yield file_name, path
        except PygrubError as e:
            log.info("%s: %s: %s", command, path, e)


def read_bls_dir(
    it: Interpreter, fs: Filesystem, directory: str, upstream: bool = False
) -> list[bls.BlsEntry]:
    """The entries of a directory, in its order; upstream's blscfg reads hidden files too."""

    def wanted(name: str) -> bool:
        return name.endswith(".conf") if upstream else bls.is_entry_file(name)

    entries = []
    for file_name, path in directory_files(fs, directory, wanted, "blscfg"):
        try:
            if fs.stat(path).size > MAX_CONFIG_BYTES:
                continue
            text = decode_config(fs.read_file(path, MAX_CONFIG_BYTES))
        except PygrubError as e:
            log.info("blscfg: %s: %s", path, e)
            continue
        it.session.charge_read(len(text), path)
        entries.append(bls.parse_entry(file_name, text, upstream))
        if len(entries) > min(MAX_DIR_ENTRIES, it.limits.max_entries):
            raise ScriptLimitError(f"blscfg: over {it.limits.max_entries} entries in {directory}")
    return entries
