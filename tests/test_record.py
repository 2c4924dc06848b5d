"""pygrub.record against its oracle, the standard library's dataclasses: the same class
written both ways behaves the same (construction, defaults, factories, __post_init__,
frozen, equality, hashing, repr, replace, slots, inheritance)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pygrub import record as rec


def both(frozen: bool = False, eq: bool = True, slots: bool = False):
    """The same class body made by dataclasses and by record."""

    def make(decorator, field):
        class Point:
            x: int
            y: int = 0
            tags: list[str] = field(default_factory=list)
            hidden: str = field(default="h", repr=False, compare=False)

            def norm(self) -> int:
                return abs(self.x) + abs(self.y)

        return decorator(Point)

    dc = make(dataclasses.dataclass(frozen=frozen, eq=eq, slots=slots), dataclasses.field)
    rc = make(rec.record(frozen=frozen, eq=eq, slots=slots), rec.field)
    return dc, rc


OPTIONS = [
    {},
    {"frozen": True},
    {"eq": False},
    {"slots": True},
    {"frozen": True, "slots": True},
]
values = st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.lists(st.sampled_from("ab")))


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@given(a=values, b=values)
def test_same_behaviour_as_dataclasses(options, a, b):
    dc, rc = both(**options)
    for x, y, tags in (a, b):
        d, r = dc(x, y, tags), rc(x, y, tags)
        assert repr(r).replace(rc.__qualname__, dc.__qualname__) == repr(d)
        assert (r.x, r.y, r.tags, r.hidden, r.norm()) == (d.x, d.y, d.tags, d.hidden, d.norm())
    assert (rc(*a) == rc(*b)) == (dc(*a) == dc(*b))
    assert (rc(*a) == rc(*a)) == (dc(*a) == dc(*a))
    if options.get("frozen"):
        assert hash(rc(a[0], a[1], ())) == hash(dc(a[0], a[1], ()))
        with pytest.raises(dataclasses.FrozenInstanceError.__base__):
            rc(1).x = 2  # type: ignore[misc]
    elif options.get("eq", True):
        assert rc.__hash__ is None and dc.__hash__ is None
    if options.get("slots"):
        assert not hasattr(rc(1), "__dict__") and not hasattr(dc(1), "__dict__")


def test_defaults_factories_and_keywords():
    _, rc = both()
    first, second = rc(1), rc(x=1)
    assert first.tags == [] and first.tags is not second.tags
    assert rc(1, tags=["a"]).tags == ["a"]
    with pytest.raises(TypeError):
        rc()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        rc(1, 2, [], "h", "extra")  # type: ignore[call-arg]


def test_replace_fields_asdict():
    _, rc = both(frozen=True)
    p = rc(1, 2, ["a"])
    q = rec.replace(p, y=5)
    assert (q.x, q.y, q.tags) == (1, 5, ["a"]) and (p.y == 2)
    assert [f.name for f in rec.fields(rc)] == ["x", "y", "tags", "hidden"]
    assert rec.asdict(p) == {"x": 1, "y": 2, "tags": ["a"], "hidden": "h"}


def test_post_init_and_init_false():
    @rec.record
    class Buffer:
        size: int
        data: bytearray = rec.field(init=False)
        used: int = rec.field(default=0, init=False)

        def __post_init__(self) -> None:
            self.data = bytearray(self.size)

    b = Buffer(4)
    assert b.data == bytearray(4) and b.used == 0
    with pytest.raises(TypeError):
        Buffer(4, bytearray())  # type: ignore[call-arg]


def test_inherited_fields_come_first():
    @rec.record
    class Base:
        a: int
        b: int = 1

    @rec.record
    class Child(Base):
        c: int = 2

    assert Child(0) == Child(0, 1, 2) and repr(Child(0)).endswith("Child(a=0, b=1, c=2)")
    assert Child(0) != Base(0)


def test_a_field_without_default_after_one_with_is_refused():
    with pytest.raises(TypeError, match="without a default"):

        @rec.record
        class Bad:
            a: int = 0
            b: int
