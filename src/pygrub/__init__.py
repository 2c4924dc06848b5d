"""pygrub: a pure-Python, drop-in replacement for Xen's pygrub bootloader."""

__version__ = "0.1.0"
