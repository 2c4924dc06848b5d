"""The names of :mod:`typing` that pygrub's modules use at run time, without importing it.

Importing typing costs 6 ms of every domain start on Python 3.11 (Debian 12, Xen 4.17's
home), and pygrub needs it only for type checkers. They see the real names (for them
``TYPE_CHECKING`` is true); the interpreter gets stand-ins that do what the program
needs of them: a Generic or Protocol class subscripts to itself, TypeVar is its name.
"""

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Generic, Protocol, TypeVar
else:

    class Generic:
        """A base whose subclasses subscript to themselves: ``Filesystem[int]``."""

        __slots__ = ()

        def __class_getitem__(cls, _params: object) -> type:
            return cls

    Protocol = Generic

    def TypeVar(name: str, *_constraints: object, **_options: object) -> str:  # noqa: N802
        return name


__all__ = ["TYPE_CHECKING", "Generic", "Protocol", "TypeVar"]
