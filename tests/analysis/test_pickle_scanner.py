import collections
import datetime
import decimal
import fractions
import functools
import io
import pathlib
import pickle
import pickletools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpack.analysis.pickle_scanner import PickleScanError, find_globals

HERE = __name__


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


class Outer:
    class Inner:
        def __init__(self, v):
            self.v = v


def helper(x):
    return x


def make_object():
    # Repeated references to the same classes and modules force memo lookups
    # (BINGET/LONG_BINGET) for both the module and the qualname strings.
    points = [Point(i, Outer.Inner(i)) for i in range(3)]
    return {
        "points": points,
        "fracs": [fractions.Fraction(1, 3), fractions.Fraction(2, 3)],
        "dec": decimal.Decimal("1.5"),
        "dates": [datetime.date(2020, 1, 1), datetime.datetime(2021, 2, 3, 4, 5)],
        "path": pathlib.PurePosixPath("/a/b"),
        "partial": functools.partial(helper, 1),
        "funcs": [helper, helper, Point, Outer.Inner],
        "od": collections.OrderedDict(a=1),
        "shared": points[0],
    }


class _RecordingUnpickler(pickle.Unpickler):
    """Oracle: the (module, name) pairs the real unpickler looks up, as written."""

    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self.seen = {}

    def find_class(self, module, name):
        self.seen.setdefault((module, name), None)
        return super().find_class(module, name)


def oracle(data):
    unpickler = _RecordingUnpickler(data)
    unpickler.load()
    return list(unpickler.seen)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_matches_unpickler(protocol):
    data = pickle.dumps(make_object(), protocol=protocol)
    assert find_globals(data) == oracle(data)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_optimized_pickles(protocol):
    # pickletools.optimize drops unused PUTs and renumbers the memo.
    data = pickletools.optimize(pickle.dumps(make_object(), protocol=protocol))
    assert find_globals(data) == oracle(data)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_expected_globals(protocol):
    found = find_globals(pickle.dumps(make_object(), protocol=protocol))
    assert len(found) == len(set(found))
    expected = {
        (HERE, "Point"),
        (HERE, "helper"),
        ("fractions", "Fraction"),
        ("decimal", "Decimal"),
        ("datetime", "date"),
        ("datetime", "datetime"),
        ("pathlib", "PurePosixPath"),
        ("functools", "partial"),
        ("collections", "OrderedDict"),
    }
    assert expected <= set(found)
    if protocol >= 4:
        assert (HERE, "Outer.Inner") in found  # STACK_GLOBAL carries the qualname
    else:
        # Before protocol 4 nested classes are pickled as getattr(Outer, "Inner").
        assert {(HERE, "Outer"), ("builtins", "getattr")} <= set(found)


def test_first_appearance_order():
    data = pickle.dumps([helper, Point, helper, fractions.Fraction, Point], protocol=4)
    assert find_globals(data) == [(HERE, "helper"), (HERE, "Point"), ("fractions", "Fraction")]


def test_protocol_2_uses_python2_names():
    data = pickle.dumps([set(), len], protocol=2)
    assert ("__builtin__", "set") in find_globals(data)


def test_plain_data_has_no_globals():
    assert find_globals(pickle.dumps({"a": [1, 2.0, "s", b"b", None, (True,)]}, protocol=4)) == []


def _binunicode(s):
    return b"\x8c" + bytes([len(s)]) + s.encode()


def test_memo_put_get_and_dup():
    # Module string stored with BINPUT and fetched with BINGET; qualname via DUP.
    data = (
        b"\x80\x04"
        + _binunicode("mod")
        + b"q\x07"  # BINPUT 7
        + b"0"  # POP
        + b"h\x07"  # BINGET 7
        + _binunicode("Cls")
        + b"\x93"  # STACK_GLOBAL
        + b"0"
        + b"h\x07"
        + b"2"
        + b"\x93"  # BINGET 7, DUP, STACK_GLOBAL -> mod.mod
        + b"."
    )
    assert find_globals(data) == [("mod", "Cls"), ("mod", "mod")]


def test_memoize_index_is_memo_size():
    data = (
        b"\x80\x04"
        + _binunicode("a")
        + b"\x94"  # MEMOIZE -> 0
        + _binunicode("b")
        + b"\x94"  # MEMOIZE -> 1
        + b"\x93"  # a.b
        + b"\x94"  # MEMOIZE the global -> 2
        + b"h\x01"
        + b"h\x00"
        + b"\x93"  # b.a
        + b"\x86"
        + b"."  # TUPLE2, STOP
    )
    assert find_globals(data) == [("a", "b"), ("b", "a")]


def test_inst_and_obj():
    inst = b"(imod1\nCls1\n."  # MARK, INST
    assert find_globals(inst) == [("mod1", "Cls1")]
    obj = b"(cmod2\nCls2\nK\x01o."  # MARK, GLOBAL, BININT1, OBJ
    assert find_globals(obj) == [("mod2", "Cls2")]


def test_computed_global_name_is_rejected():
    # The module name comes from a REDUCE, so it is not a literal.
    data = b"\x80\x04cbuiltins\nstr\n)R" + _binunicode("x") + b"\x93."
    with pytest.raises(PickleScanError, match="cannot be resolved statically"):
        find_globals(data, record="data.pkl")


@pytest.mark.parametrize("cut", [1, 2, 5, 10, 0.5])
def test_truncated(cut):
    data = pickle.dumps(make_object(), protocol=4)
    end = int(len(data) * cut) if isinstance(cut, float) else len(data) - cut
    with pytest.raises(PickleScanError) as info:
        find_globals(data[:end], record="archive/data.pkl")
    message = str(info.value)
    assert "'archive/data.pkl'" in message and "truncated or corrupt" in message
    assert "byte " in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe\xfd",  # unknown opcode
        b"R.",  # REDUCE on an empty stack
        b"\x80\x04h\x05.",  # memo key never stored
        b"\x80\x04\x93.",  # STACK_GLOBAL with nothing on the stack
        b"\x80\x04(e.",  # APPENDS with no list below the mark
        b"\x80\x04\x8c\x03a\xff\xfe.",  # invalid UTF-8 in a string
    ],
)
def test_garbage(data):
    with pytest.raises(PickleScanError, match="'rec'.*truncated or corrupt"):
        find_globals(data, record="rec")


def test_error_position():
    data = b"\x80\x04K\x01K\x02\xff."
    with pytest.raises(PickleScanError, match="byte 6"):
        find_globals(data, record="rec")


def test_trailing_data_after_stop_is_ignored():
    data = pickle.dumps(Point, protocol=4)
    assert find_globals(data + b"garbage") == [(HERE, "Point")]


_LEAVES = [
    Point(1, 2),
    Outer.Inner(3),
    helper,
    Point,
    fractions.Fraction(1, 2),
    decimal.Decimal(2),
    datetime.date(2000, 1, 1),
    # Interned strings equal to module/qualnames: the pickler memoizes by
    # identity, so these share memo entries with the globals' operands.
    HERE,
    "fractions",
    "Fraction",
    "Point",
    1,
    None,
]


@settings(max_examples=150, deadline=None)
@given(
    value=st.recursive(
        st.sampled_from(_LEAVES),
        lambda children: (
            st.lists(children, max_size=4)
            | st.tuples(children, children)
            | st.dictionaries(st.sampled_from(["k", "fractions", HERE]), children, max_size=3)
        ),
        max_leaves=12,
    ),
    protocol=st.integers(0, pickle.HIGHEST_PROTOCOL),
)
def test_random_structures_match_unpickler(value, protocol):
    data = pickle.dumps(value, protocol=protocol)
    assert find_globals(data) == oracle(data)


def test_operands_shared_with_data_strings():
    # Both operands of STACK_GLOBAL are BINGETs of strings that were pickled as data.
    data = pickle.dumps(["fractions", "Fraction", fractions.Fraction(1, 2)], protocol=4)
    assert find_globals(data) == [("fractions", "Fraction")]
