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

from torchpack.analysis.pickle_scanner import (
    BUILT,
    CALL,
    GETATTR,
    NEW,
    OWNER,
    VALUE,
    PickleScanError,
    find_globals,
    scan_pickle,
)

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


# -- what a pickle does with its globals, and what strict (safe-loading) scans refuse ---------


class _CallOrderUnpickler(pickle.Unpickler):
    """Oracle: every find_class call, in order (duplicates included)."""

    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self.calls = []

    def find_class(self, module, name):
        self.calls.append((module, name))
        return super().find_class(module, name)


@settings(max_examples=100, deadline=None)
@given(
    value=st.recursive(
        st.sampled_from(_LEAVES),
        lambda children: st.lists(children, max_size=4) | st.tuples(children, children),
        max_leaves=12,
    ),
    protocol=st.integers(0, pickle.HIGHEST_PROTOCOL),
)
def test_references_are_in_the_order_the_unpickler_resolves_them(value, protocol):
    data = pickle.dumps(value, protocol=protocol)
    unpickler = _CallOrderUnpickler(data)
    unpickler.load()
    scan = scan_pickle(data, strict=True)
    assert [(ref.module, ref.name) for ref in scan.references] == unpickler.calls


def _uses(scan, full_name):
    return [
        ref.use_flags() for ref in scan.references + scan.getattrs if ref.full_name == full_name
    ]


def test_uses_of_globals():
    data = pickle.dumps([Point(1, 2), helper, fractions.Fraction(1, 3)], protocol=4)
    scan = scan_pickle(data)
    # Point is instantiated (NEWOBJ) and its instance gets its state (BUILD); helper is a value;
    # Fraction is called (REDUCE) with its arguments.
    assert _uses(scan, f"{HERE}.Point") == [NEW | BUILT]
    assert _uses(scan, f"{HERE}.helper") == [VALUE]
    assert _uses(scan, "fractions.Fraction") == [CALL]


def test_protocol_3_getattr_is_folded_into_the_nested_name():
    data = pickle.dumps([Outer.Inner(1), Outer.Inner], protocol=3)
    scan = scan_pickle(data, strict=True)
    assert _uses(scan, "builtins.getattr") == [GETATTR]
    assert _uses(scan, f"{HERE}.Outer") == [OWNER]
    # One getattr call, memoized: its result is instantiated and kept as a value.
    assert [ref.full_name for ref in scan.getattrs] == [f"{HERE}.Outer.Inner"]
    assert scan.getattrs[0].use_flags() == NEW | BUILT | VALUE


def test_getattr_on_anything_but_a_global_is_a_call():
    data = b"\x80\x02cbuiltins\ngetattr\nK\x01X\x04\x00\x00\x00real\x86R."
    scan = scan_pickle(data, strict=True)
    assert _uses(scan, "builtins.getattr") == [CALL]
    assert scan.getattrs == []


def test_a_getattr_argument_tuple_used_as_a_value_makes_its_global_a_value():
    owner_and_name = b"cmod\nCls\nX\x01\x00\x00\x00a\x86q\x00"
    data = b"\x80\x02" + owner_and_name + b"cbuiltins\ngetattr\nh\x00R\x86."
    scan = scan_pickle(data, strict=True)
    assert _uses(scan, "mod.Cls") == [OWNER | VALUE]


DEPTH = 5000
NESTINGS = {
    "TUPLE1": lambda n: b"N" + b"\x85" * n,
    "TUPLE2": lambda n: b"N" + b"N\x86" * n,
    "TUPLE3": lambda n: b"N" + b"NN\x87" * n,
    "TUPLE with MARK": lambda n: b"(" * n + b"t" * n,
    "LIST with MARK": lambda n: b"(" * n + b"l" * n,
    "APPEND": lambda n: b"]" * n + b"a" * (n - 1),
    "SETITEM": lambda n: b"}K\x00" * n + b"}" + b"s" * n,
    "FROZENSET": lambda n: b"(" * n + b"\x91" * n,
    "REDUCE arguments": lambda n: b"cbuiltins\nlist\nq\x00" + b"h\x00" * n + b")" + b"\x85R" * n,
    "BUILD state": lambda n: b"cmod\nC\nq\x00" + b"h\x00)\x81" * n + b"b" * (n - 1),
}


@pytest.mark.parametrize("kind", sorted(NESTINGS))
def test_every_way_of_nesting_counts(kind):
    build = NESTINGS[kind]
    assert scan_pickle(b"\x80\x04" + build(100) + b".", max_depth=1000, strict=True)
    with pytest.raises(PickleScanError, match="nests deeper than 1000 levels"):
        scan_pickle(b"\x80\x04" + build(DEPTH) + b".", max_depth=1000, strict=True)


def test_a_million_tuple1_levels_are_refused_quickly():
    # The tuple would then be hashed as a dict key: a C recursion a million levels deep.
    data = b"\x80\x02}N" + b"\x85" * 1_000_000 + b"K\x01s."
    with pytest.raises(PickleScanError, match=r"nests deeper than 1000 levels at byte 1004\b"):
        scan_pickle(data, "rec", max_depth=1000, strict=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x02cos\nsystem\n}b.", "sets attributes on os.system"),
        (b"\x80\x02ctorch\nUntypedStorage\nq\x000h\x00}b.", "on torch.UntypedStorage"),
        (b"\x80\x02K\x01}b.", "sets attributes on a value it did not create"),
        (b"\x80\x02(K\x00tQ}b.", "sets the state of an object persistent_load returned"),
        (b"\x80\x02\x82\x01.", "copyreg extension code 1"),
        (b"\x80\x05\x97.", "out-of-band buffers"),
    ],
)
def test_strict_scans_refuse_what_the_pickler_never_writes(data, message):
    with pytest.raises(PickleScanError, match=message):
        scan_pickle(data, "rec", strict=True)


def test_build_on_a_class_is_only_reported_when_not_strict():
    assert find_globals(b"\x80\x02cos\nsystem\n}b.") == [("os", "system")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x02Nr\xff\xff\xff\x7f.", "memo key 2147483647"),
        (b"\x80\x04\x8e\x00\x00\x00\xc0\x00\x00\x00\x00.", "declares 3221225472 bytes"),
        (b"\x80\x04\x95\x00\x00\x00\xc0\x00\x00\x00\x00N.", "frame declares 3221225472 bytes"),
        (b"\x80\x02X\x00\x00\x00\xc0abc.", "declares 3221225472 bytes"),
    ],
)
def test_sizes_that_do_not_fit_the_data_are_refused(data, message):
    # The C unpickler would allocate for them before noticing the data is short.
    with pytest.raises(PickleScanError, match=message):
        find_globals(data, "rec")
