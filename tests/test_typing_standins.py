"""pygrub._typing's run-time stand-ins against typing itself, their oracle."""

from __future__ import annotations

import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pygrub import _typing


def both_named_tuples():
    def make(base):
        class Entry(base):
            """One entry."""

            name: bytes  # a spec field name
            inode: int
            kind: int = 0

            def is_dir(self) -> bool:
                return self.kind == 2

        return Entry

    return make(typing.NamedTuple), make(_typing.NamedTuple)


@given(st.binary(max_size=4), st.integers(), st.integers(0, 3))
def test_named_tuple_is_typings(name, inode, kind):
    real, ours = both_named_tuples()
    assert ours._fields == real._fields and ours._field_defaults == real._field_defaults
    a, b = real(name, inode, kind), ours(name, inode, kind)
    assert tuple(a) == tuple(b) and a == b and hash(a) == hash(b)
    assert repr(a) == repr(b) and a.is_dir() == b.is_dir()
    assert ours._make((name, inode, kind)) == real._make((name, inode, kind))
    assert b._replace(kind=2).is_dir() and ours.__doc__ == real.__doc__
    assert ours.__qualname__.endswith("Entry") and ours.__module__ == __name__


def test_generic_and_protocol_subscript_to_themselves():
    T = _typing.TypeVar("T")

    class Box(_typing.Generic[T]):
        pass

    class IntBox(Box[int]):
        pass

    assert Box[int] is Box and IntBox.__mro__[1] is Box
    assert _typing.Protocol is _typing.Generic
    assert not _typing.TYPE_CHECKING


def test_a_named_tuple_with_a_field_without_default_after_one_with_is_refused():
    with pytest.raises(TypeError):

        class Bad(_typing.NamedTuple):
            a: int = 0
            b: int
