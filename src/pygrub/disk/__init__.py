"""Byte sources: the bottom layer. Everything above reads the image through these."""

from __future__ import annotations

from .source import ByteSource, FileSource, MemorySource, SliceSource, open_image

__all__ = ["ByteSource", "FileSource", "MemorySource", "SliceSource", "open_image"]
