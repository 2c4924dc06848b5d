"""``python -m pygrub``."""

from .cli import command

command()
