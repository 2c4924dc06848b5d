"""Warnings and ``--debug`` messages, without importing logging in a run that logs nothing.

Importing :mod:`logging` (with threading, traceback, string, weakref, ...) costs 7-10 ms
of every domain start on Python 3.11, and most runs log nothing. ``get_logger`` hands out
a stand-in with the logging methods the project uses: while logging is not imported, a
message under the threshold the command line set is dropped at once; any other message
imports logging, applies the command's configuration and goes through it. Once anything
has imported logging (an application on the API, pytest), every message goes through it,
so its own configuration decides.
"""

from __future__ import annotations

import sys
from types import ModuleType

# logging's own level numbers.
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40

#: Below this level a message is dropped while logging is not imported (logging's default).
_threshold = WARNING
#: ``logging.basicConfig`` arguments the command line asked for, not applied yet.
_pending: dict[str, object] | None = None


def configure(level: int, fmt: str) -> None:
    """What the command line wants (``logging.basicConfig``), applied when first needed."""
    global _threshold, _pending
    _threshold, _pending = level, {"level": level, "format": fmt}
    if "logging" in sys.modules:
        loaded()


def debugging() -> bool:
    """Whether the command line asked for --debug's messages."""
    return _threshold <= DEBUG


def loaded() -> ModuleType:
    """The logging module, configured as the command line asked."""
    global _pending
    import logging

    if _pending is not None:
        config, _pending = _pending, None
        logging.basicConfig(**config)  # type: ignore[call-overload]
    return logging


class Logger:
    """The part of ``logging.Logger`` the project uses, resolved lazily."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _log(self, level: int, msg: str, args: tuple[object, ...], exc_info: bool) -> None:
        if "logging" not in sys.modules and level < _threshold:
            return
        logger = loaded().getLogger(self.name)
        logger.log(level, msg, *args, exc_info=exc_info, stacklevel=3)

    def debug(self, msg: str, *args: object, exc_info: bool = False) -> None:
        self._log(DEBUG, msg, args, exc_info)

    def info(self, msg: str, *args: object, exc_info: bool = False) -> None:
        self._log(INFO, msg, args, exc_info)

    def warning(self, msg: str, *args: object, exc_info: bool = False) -> None:
        self._log(WARNING, msg, args, exc_info)

    def exception(self, msg: str, *args: object) -> None:
        """An ERROR message with the exception being handled (its traceback)."""
        self._log(ERROR, msg, args, True)


def get_logger(name: str) -> Logger:
    return Logger(name)
