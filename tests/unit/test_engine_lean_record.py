"""pallet.oci.record: records behave as the dataclasses they replace, for what pallet uses."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from pallet.oci.record import field, field_names, record, replace


def _pair() -> tuple[Any, Any]:
    """The same class body as a dataclass and as a record."""
    def body(deco: Any, fld: Any) -> Any:
        @deco(frozen=True)
        class Spec:
            """doc"""

            image: str
            path: str = "/"
            args: tuple[str, ...] = ()
            labels: dict[str, str] = fld(default_factory=dict)
            note: str = fld(default="", compare=False)

            @property
            def first(self) -> str:
                return self.args[0] if self.args else ""

        return Spec

    return body(dataclass, dataclasses.field), body(record, field)


def test_construction_defaults_and_factories() -> None:
    dc, rec = _pair()
    for cls in (dc, rec):
        a = cls("img")
        assert (a.image, a.path, a.args, a.labels, a.note) == ("img", "/", (), {}, "")
        b = cls("img", "/bin/sh", ("-c",), {"k": "v"}, note="n")
        assert (b.path, b.args, b.labels, b.note, b.first) == ("/bin/sh", ("-c",), {"k": "v"}, "n", "-c")
        assert cls("x").labels is not cls("x").labels  # one dict each
        assert cls.path == "/"  # class attributes keep the defaults
        assert not hasattr(cls, "labels")  # a default_factory leaves none
        with pytest.raises(TypeError):
            cls()
        with pytest.raises(TypeError):
            cls("img", bogus=1)
        with pytest.raises(TypeError):
            cls("img", image="again")
        with pytest.raises(TypeError):
            cls("a", "b", (), {}, "", "too many")


def test_equality_hash_repr_as_dataclass() -> None:
    dc, rec = _pair()
    for cls in (dc, rec):
        a, b = cls("img", args=("x",)), cls("img", args=("x",), note="ignored")
        assert a == b
        assert not a != b  # noqa: SIM202 - __ne__ derived from __eq__
        assert a != cls("img", args=("y",))
        assert a != ("img", "/", ("x",), {}, "")
        assert (a == 1) is False
    assert repr(rec("i", args=("a",))) == repr(dc("i", args=("a",))).replace(dc.__qualname__, rec.__qualname__)
    assert rec("i") != dc("i")  # different classes are never equal, as between two dataclasses

    @record(frozen=True)
    class Ref:
        domain: str
        path: str
        tag: str = ""

    @dataclass(frozen=True)
    class DRef:
        domain: str
        path: str
        tag: str = ""

    assert hash(Ref("d", "p", "t")) == hash(DRef("d", "p", "t")) == hash(Ref("d", "p", "t"))
    assert len({Ref("d", "p"), Ref("d", "p"), Ref("d", "q")}) == 2
    assert Ref.__match_args__ == DRef.__match_args__ == ("domain", "path", "tag")


def test_frozen_and_mutable() -> None:
    _, rec = _pair()
    a = rec("img")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.image = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.not_a_field = 1  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del a.image  # type: ignore[misc]

    @record
    class Entry:
        name: str
        size: int = 0

    e = Entry("n")
    e.size = 3
    assert e == Entry("n", 3)
    with pytest.raises(TypeError):
        hash(e)  # eq without frozen: unhashable, as a dataclass


def test_dataclasses_functions_work_on_records() -> None:
    dc, rec = _pair()
    r: Any = rec("img", args=("a",), labels={"k": "v"})
    assert dataclasses.is_dataclass(rec("i")) and dataclasses.is_dataclass(rec)
    assert [f.name for f in dataclasses.fields(r)] == [f.name for f in dataclasses.fields(dc)]
    assert dataclasses.asdict(r) == dataclasses.asdict(dc("img", args=("a",), labels={"k": "v"}))
    r2: Any = dataclasses.replace(r, path="/x")
    assert r2.path == "/x" and r2.args == ("a",) and r.path == "/"
    assert type(r2) is rec
    r3 = replace(r, args=())
    assert r3 == rec("img", labels={"k": "v"}) and r3.labels == {"k": "v"}
    assert replace(dc("i"), path="/y") == dc("i", path="/y")  # plain dataclasses too
    assert field_names(rec) == field_names(dc) == ("image", "path", "args", "labels", "note")
    assert copy.deepcopy(r) == r and copy.copy(r) == r


def test_inheritance_and_post_init() -> None:
    seen: list[str] = []

    @record(frozen=True)
    class Base:
        a: int
        b: int = 2

    @record(frozen=True)
    class Child(Base):
        c: int = 3

        def __post_init__(self) -> None:
            seen.append(f"{self.a}{self.b}{self.c}")

    assert field_names(Child) == ("a", "b", "c")
    assert Child(1) == Child(1, 2, 3) and Child(1) != Base(1)
    assert seen == ["123", "123", "123"]
    with pytest.raises(TypeError, match="non-default argument"):
        @record
        class Bad:
            a: int = 1
            b: int  # type: ignore[misc]


def test_defining_records_does_not_import_dataclasses() -> None:
    code = (
        "import sys\n"
        "import pallet.engine.state, pallet.engine.containers, pallet.config, pallet.store.images\n"
        "import pallet.engine.spec_builder, pallet.engine.users\n"
        "s = pallet.engine.state.ContainerState()\n"
        "s2 = pallet.oci.record.replace(s, pid=3)\n"
        "assert s2.pid == 3 and s2 != s\n"
        "print('dataclasses' in sys.modules, 'inspect' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
