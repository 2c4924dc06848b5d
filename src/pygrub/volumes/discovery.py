"""Placeholder discovery (whole disk only); partition tables replace this."""

from __future__ import annotations

from ..disk import ByteSource
from . import Volume, whole_disk


def discover_volumes(disk: ByteSource) -> list[Volume]:
    return [whole_disk(disk)]
