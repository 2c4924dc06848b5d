"""The names of :mod:`typing` that pygrub's modules use at run time, without importing it.

Importing typing costs 6 ms of every domain start on Python 3.11 (Debian 12, Xen 4.17's
home), and pygrub needs it only for type checkers. They see the real names (for them
``TYPE_CHECKING`` is true); the interpreter gets stand-ins that do what the program
needs of them: a Generic or Protocol class subscripts to itself, TypeVar is its name,
and a NamedTuple class is the ``collections.namedtuple`` of its annotated fields.
"""

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Generic, NamedTuple, Protocol, TypeVar
else:

    class _NamedTupleMeta(type):
        def __new__(cls, name: str, bases: tuple[type, ...], namespace: dict) -> type:
            import collections

            if not bases:  # NamedTuple itself
                return super().__new__(cls, name, bases, namespace)
            fields = list(namespace.get("__annotations__", {}))
            defaults = [namespace[f] for f in fields if f in namespace]
            if any(f in namespace for f in fields[: len(fields) - len(defaults)]):
                raise TypeError(f"{name}: a field without a default follows one with")
            made = collections.namedtuple(
                name, fields, defaults=defaults or None, module=namespace["__module__"]
            )
            for key, value in namespace.items():
                if key not in fields and key not in ("__annotations__", "__module__"):
                    setattr(made, key, value)
            return made

    class NamedTuple(metaclass=_NamedTupleMeta):
        """``class Point(NamedTuple): x: int`` makes ``namedtuple("Point", ["x"])``."""

    class Generic:
        """A base whose subclasses subscript to themselves: ``Filesystem[int]``."""

        __slots__ = ()

        def __class_getitem__(cls, _params: object) -> type:
            return cls

    Protocol = Generic

    def TypeVar(name: str, *_constraints: object, **_options: object) -> str:  # noqa: N802
        return name


__all__ = ["TYPE_CHECKING", "Generic", "NamedTuple", "Protocol", "TypeVar"]
