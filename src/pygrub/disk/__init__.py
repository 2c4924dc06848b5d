"""Byte sources: the bottom layer. Everything above reads the image through these."""

from __future__ import annotations

from .base import ByteSource, FileSource, MemorySource, SliceSource
from .source import open_image

__all__ = ["ByteSource", "FileSource", "MemorySource", "SliceSource", "open_image"]
