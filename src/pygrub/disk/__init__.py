"""Byte sources: the bottom layer. Everything above reads the image through these."""

from __future__ import annotations

from .source import ByteSource, FileSource, SliceSource, open_image

__all__ = ["ByteSource", "FileSource", "SliceSource", "open_image"]
