"""pygrub: a pure-Python, drop-in replacement for Xen's pygrub bootloader.

The library API lives in ``pygrub.api``; its names are re-exported here, imported on
first use so that the command's start-up does not pay for them.
"""

from __future__ import annotations

from ._typing import TYPE_CHECKING

__version__ = "0.1.0"

_API_NAMES = (
    "IMAGE_FORMATS",
    "Choice",
    "CorruptError",
    "Extracted",
    "FilesystemInfo",
    "Image",
    "LimitError",
    "Menu",
    "MenuEntry",
    "MenuItem",
    "MenuSubmenu",
    "NotFoundError",
    "NothingBootable",
    "PygrubError",
    "UnsupportedError",
    "VolumeInfo",
    "as_json",
    "json_schema",
    "open_image",
)

__all__ = ["__version__", *_API_NAMES]

if TYPE_CHECKING:
    from .api import (  # noqa: F401
        IMAGE_FORMATS,
        Choice,
        CorruptError,
        Extracted,
        FilesystemInfo,
        Image,
        LimitError,
        Menu,
        MenuEntry,
        MenuItem,
        MenuSubmenu,
        NotFoundError,
        NothingBootable,
        PygrubError,
        UnsupportedError,
        VolumeInfo,
        as_json,
        json_schema,
        open_image,
    )


def __getattr__(name: str) -> object:
    if name in _API_NAMES:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'pygrub' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API_NAMES])
