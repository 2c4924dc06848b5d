"""Typed record classes written as ``@dataclass`` writes them, for a fraction of its start-up.

The toolstack starts pygrub once per domain start, so its start-up is part of every boot.
On Python 3.11 (Debian 12, Xen 4.17's home) importing :mod:`dataclasses` (it imports
inspect, ast, dis, ...) and building the 45 classes an ext4 + GRUB 2 boot meets took 40 ms
of a 110 ms run. ``record`` builds the same classes from the same syntax at about a tenth
of that: one small compiled ``__init__`` per class, made when the first instance is
(tokens, words and inodes are made in hot loops, so it must be as fast as a hand-written
one; many classes have no instance in a given run), and shared ``__repr__``,
``__eq__``, ``__hash__`` and frozen ``__setattr__`` that read the class's field list.

What is supported is what the project uses: defaults, ``field(default_factory=...,
init=False, repr=False, compare=False)``, ``__post_init__``, ``frozen``, ``eq=False``,
``slots``, single inheritance of fields, and :func:`replace`, :func:`fields`, :func:`asdict`.
Type checkers see a dataclass (``dataclass_transform``).
"""

from __future__ import annotations

from collections.abc import Callable

from ._typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from typing import Any, dataclass_transform
else:

    def dataclass_transform(**_kwargs: object) -> Callable[[Any], Any]:
        return lambda f: f


T = TypeVar("T")

_MISSING: Any = object()


class FrozenInstanceError(AttributeError):
    """An attribute of a frozen record was assigned or deleted."""


class Field:
    """How one field is initialised, shown and compared (``dataclasses.Field``'s subset)."""

    __slots__ = ("name", "default", "default_factory", "init", "repr", "compare")

    def __init__(
        self,
        default: Any = _MISSING,
        default_factory: Any = _MISSING,
        init: bool = True,
        repr: bool = True,  # noqa: A002 - dataclasses' own keyword
        compare: bool = True,
    ) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.compare = compare


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] = _MISSING,
    init: bool = True,
    repr: bool = True,  # noqa: A002 - dataclasses' own keyword
    compare: bool = True,
) -> Any:
    """A field's options, as :func:`dataclasses.field` takes them."""
    return Field(default, default_factory, init, repr, compare)


def fields(obj: object) -> tuple[Field, ...]:
    """The fields of a record class or instance, in order."""
    return obj.__record_fields__  # type: ignore[attr-defined]


def replace(obj: T, **changes: Any) -> T:
    """A copy of the record ``obj`` with ``changes`` (init fields only, as dataclasses)."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj) if f.init}
    values.update(changes)
    return type(obj)(**values)


def asdict(obj: object) -> dict[str, Any]:
    """The record's fields as a dict (values are not converted: records here are flat)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _repr(self: Any) -> str:
    shown = ", ".join(
        f"{f.name}={getattr(self, f.name)!r}" for f in self.__record_fields__ if f.repr
    )
    return f"{type(self).__qualname__}({shown})"


def _compared(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name in self.__record_compared__)


def _eq(self: Any, other: object) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _compared(self) == _compared(other)


def _hash(self: Any) -> int:
    return hash(_compared(self))


def _frozen_setattr(self: Any, name: str, _value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


def _own_fields(cls: type) -> list[Field]:
    """The fields this class declares: its annotations, with their defaults or field()."""
    found = []
    for name in cls.__dict__.get("__annotations__", {}):
        spec = cls.__dict__.get(name, _MISSING)
        f = spec if isinstance(spec, Field) else Field(default=spec)
        f.name = name
        found.append(f)
    return found


def _init_source(fields_: list[Field], frozen: bool, post_init: bool) -> tuple[str, dict]:
    """The text of ``__init__`` and the names it refers to (defaults and factories)."""
    params, body = ["self"], []
    names: dict[str, Any] = {"_MISSING": _MISSING, "_setattr": object.__setattr__}
    for f in fields_:
        name, default, factory = f.name, f"_default_{f.name}", f"_factory_{f.name}"
        names[default], names[factory] = f.default, f.default_factory
        has_default, has_factory = f.default is not _MISSING, f.default_factory is not _MISSING
        if f.init:
            value = name
            if has_default:
                params.append(f"{name}={default}")
            elif has_factory:
                params.append(f"{name}=_MISSING")
                value = f"{factory}() if {name} is _MISSING else {name}"
            else:
                params.append(name)
        elif has_factory:
            value = f"{factory}()"
        elif has_default:
            value = default
        else:
            continue  # set by __post_init__
        body.append(f"_setattr(self, {name!r}, {value})" if frozen else f"self.{name} = {value}")
    if post_init:
        body.append("self.__post_init__()")
    lines = "\n    ".join(body or ["pass"])
    return f"def __init__({', '.join(params)}):\n    {lines}\n", names


def _first_init(cls: type, fields_: list[Field], frozen: bool) -> Callable[..., None]:
    """An ``__init__`` that compiles the class's own at its first call, then hands over:
    a run defines many more classes than it makes instances of."""

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        source, names = _init_source(fields_, frozen, hasattr(cls, "__post_init__"))
        exec(source, names)  # noqa: S102 - our own text, built from the class's field names
        init = names["__init__"]
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = init  # type: ignore[misc]
        init(self, *args, **kwargs)

    return __init__


def _check_order(cls: type, fields_: list[Field]) -> None:
    seen_default = False
    for f in fields_:
        if not f.init:
            continue
        has_default = f.default is not _MISSING or f.default_factory is not _MISSING
        if seen_default and not has_default:
            raise TypeError(f"{cls.__name__}: field {f.name!r} without a default follows one with")
        seen_default = seen_default or has_default


def _build(cls: type, frozen: bool, eq: bool, slots: bool) -> type:
    inherited: list[Field] = list(getattr(cls, "__record_fields__", ()))
    own = _own_fields(cls)
    by_name = {f.name: f for f in inherited}
    by_name.update((f.name, f) for f in own)
    all_fields = list(by_name.values())
    _check_order(cls, all_fields)
    if slots:
        namespace = {
            k: v
            for k, v in cls.__dict__.items()
            if k not in by_name and k not in ("__dict__", "__weakref__")
        }
        namespace["__slots__"] = tuple(f.name for f in own)
        cls = type(cls)(cls.__name__, cls.__bases__, namespace)
    else:
        # Class attributes that are field() specs would shadow nothing useful; defaults
        # stay as class attributes, as dataclasses leaves them.
        for f in own:
            if isinstance(cls.__dict__.get(f.name), Field):
                if f.default is _MISSING:
                    delattr(cls, f.name)
                else:
                    setattr(cls, f.name, f.default)
    cls.__init__ = _first_init(cls, all_fields, frozen)  # type: ignore[misc]
    cls.__record_fields__ = tuple(all_fields)  # type: ignore[attr-defined]
    cls.__record_compared__ = tuple(f.name for f in all_fields if f.compare)  # type: ignore[attr-defined]
    cls.__match_args__ = tuple(f.name for f in all_fields if f.init)  # type: ignore[attr-defined,misc]
    if "__repr__" not in cls.__dict__:
        cls.__repr__ = _repr  # type: ignore[method-assign,assignment]
    if eq and "__eq__" not in cls.__dict__:
        cls.__eq__ = _eq  # type: ignore[method-assign,assignment]
        cls.__hash__ = _hash if frozen else None  # type: ignore[assignment,method-assign]
    if frozen:
        cls.__setattr__ = _frozen_setattr  # type: ignore[method-assign,assignment]
        cls.__delattr__ = _frozen_delattr  # type: ignore[method-assign,assignment]
    return cls


@dataclass_transform(field_specifiers=(field, Field))
def record(
    cls: type[T] | None = None, /, *, frozen: bool = False, eq: bool = True, slots: bool = False
) -> Any:
    """``@record``, ``@record(frozen=True)``, ...: the class with its methods, as @dataclass."""

    def wrap(c: type[T]) -> type[T]:
        return _build(c, frozen, eq, slots)

    return wrap if cls is None else wrap(cls)
