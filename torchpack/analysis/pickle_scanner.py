"""Static analysis of a pickle: the globals it names and how it uses them, without running it.

The opcode stream is decoded byte by byte and the unpickler's stack and memo are simulated just
enough to know which string literals feed each ``STACK_GLOBAL``, what every global is used for
(called, instantiated with ``NEWOBJ``, the owner of a ``getattr``, or a plain value), and how
deeply the objects the pickle builds nest. Nothing in the pickle is executed.

Safe loading (``strict=True``) relies on it to refuse, before anything runs, what Python's
pickler never writes and the unpickler would act on: ``BUILD`` on a class, function or
persistent object (it would set attributes on it process-wide), nesting deeper than the limit
counted through every container (hashing a tuple nested a million levels deep overflows the C
stack), memo indices and declared lengths that do not fit the data (the C unpickler allocates
for them up front), extension codes and out-of-band buffers.
"""

from __future__ import annotations

import codecs
import copyreg
import struct
from dataclasses import dataclass, field

__all__ = ["GlobalRef", "PickleScan", "PickleScanError", "find_globals", "scan_pickle"]

# How a global is used; a GlobalRef's ``uses`` is the union of what the pickle does with it.
VALUE = 1  # stored, passed as an argument, returned: anything but the uses below
CALL = 2  # called by REDUCE, INST or OBJ
NEW = 4  # instantiated by NEWOBJ / NEWOBJ_EX (``cls.__new__(cls, *args)``)
OWNER = 8  # the object of a folded ``getattr(owner, "literal")``
BUILT = 16  # what calling or instantiating it returned is then changed by BUILD
GETATTR = 32  # ``builtins.getattr`` called only in the foldable form above

_GETATTR = (("builtins", "getattr"), ("__builtin__", "getattr"))


class PickleScanError(ValueError):
    """Pickle data that cannot be scanned (truncated, corrupt, opaque) or that safe loading
    refuses before it runs. ``references`` are the globals found before the problem: an
    unpickler would resolve them before it fails."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.references: list[GlobalRef] = []
        # The data ended before the pickle did (rather than being wrong where it stops).
        self.truncated = False


class GlobalRef:
    """One global the unpickler resolves: a ``GLOBAL``/``STACK_GLOBAL``/``INST`` opcode, or a
    ``getattr(global, "name")`` call folded into the dotted global it reaches."""

    __slots__ = ("module", "name", "position", "pushes", "special", "uses")

    def __init__(self, module: str, name: str, position: int) -> None:
        self.module = module
        self.name = name
        self.position = position
        self.uses = 0
        # Times the reference is put on the stack, and consumed by a call, NEWOBJ or getattr:
        # any other consumption is a use as a value.
        self.pushes = 0
        self.special = 0

    @property
    def full_name(self) -> str:
        return f"{self.module}.{self.name}"

    def use_flags(self) -> int:
        """What the pickle does with the global: VALUE, CALL, NEW, OWNER, BUILT, GETATTR."""
        return self.uses | (VALUE if self.pushes > self.special else 0)

    def __repr__(self) -> str:
        return f"GlobalRef({self.full_name!r}, uses={self.use_flags()})"


@dataclass
class PickleScan:
    """What a pickle names and does with it.

    ``references`` are in the order the unpickler resolves them (one ``find_class`` call
    each); ``getattrs`` are the folded ``getattr`` calls in the order they run.
    """

    references: list[GlobalRef] = field(default_factory=list)
    getattrs: list[GlobalRef] = field(default_factory=list)
    protocol: int = 0

    @property
    def globals(self) -> list[tuple[str, str]]:
        """``(module, qualname)`` pairs, deduplicated, in order of first appearance."""
        return list(dict.fromkeys((ref.module, ref.name) for ref in self.references))


class _Pair:
    """A two-item tuple of a global and a string literal: a candidate ``getattr`` argument.

    Its global counts as used by the ``getattr`` calls that consume the tuple, and as a value
    if the tuple is used for anything else.
    """

    __slots__ = ("attribute", "owner", "pushes", "special")

    def __init__(self, owner: GlobalRef, attribute: bytes) -> None:
        self.owner = owner
        self.attribute = attribute
        self.pushes = 1
        self.special = 0
        owner.special += 1


class _Corrupt(Exception):
    pass


class _Truncated(_Corrupt):
    """The data ends before what an opcode needs: more data could have made it a pickle."""


# Opcodes grouped by what the scan does with them, so that the loop tests a group, not each
# opcode: the common ones cost one table lookup and a comparison or two.
_SCALAR, _GET, _MARK, _ADD_ITEMS, _TUPLE2, _TUPLE_N, _EMPTY, _BYTES, _OTHER = range(9)
_GROUP = [_OTHER] * 256
# Fixed-size argument, pushes a plain value: NONE, NEWTRUE, NEWFALSE, BININT1/2, BININT,
# BINFLOAT; the size of the argument (or of its length prefix) for every group that has one.
_ARGUMENT = [0] * 256
for _op, _group, _size in [
    (0x4E, _SCALAR, 0), (0x88, _SCALAR, 0), (0x89, _SCALAR, 0), (0x4B, _SCALAR, 1),
    (0x4D, _SCALAR, 2), (0x4A, _SCALAR, 4), (0x47, _SCALAR, 8),
    (0x68, _GET, 1), (0x6A, _GET, 4),  # BINGET, LONG_BINGET
    (0x28, _MARK, 0),
    # SETITEMS, APPENDS, ADDITEMS (the size here: items per entry)
    (0x75, _ADD_ITEMS, 2), (0x65, _ADD_ITEMS, 1), (0x90, _ADD_ITEMS, 1),
    (0x29, _TUPLE_N, 0), (0x85, _TUPLE_N, 1), (0x86, _TUPLE2, 2), (0x87, _TUPLE_N, 3),
    (0x7D, _EMPTY, 0), (0x5D, _EMPTY, 0), (0x8F, _EMPTY, 0),  # EMPTY_DICT, _LIST, _SET
    # Length-prefixed: SHORT_BINBYTES, BINBYTES, BINBYTES8, LONG1, LONG4, and the texts
    # SHORT_BINSTRING, BINSTRING (ASCII for the unpickler) and BINUNICODE8.
    (0x43, _BYTES, 1), (0x42, _BYTES, 4), (0x8E, _BYTES, 8), (0x8A, _BYTES, 1),
    (0x8B, _BYTES, 4), (0x55, _BYTES, 1), (0x54, _BYTES, 4), (0x8D, _BYTES, 8),
]:  # fmt: skip
    _GROUP[_op] = _group
    _ARGUMENT[_op] = _size
_TEXTS = (0x55, 0x54, 0x8D)
_SIZE = {
    1: struct.Struct("<B"),
    2: struct.Struct("<H"),
    4: struct.Struct("<I"),
    8: struct.Struct("<Q"),
}
# The reader of each opcode's multi-byte argument or length prefix.
_READ_LENGTH = [
    _SIZE[size].unpack_from if group in (_GET, _BYTES) and size > 1 else None
    for group, size in zip(_GROUP, _ARGUMENT, strict=True)
]
_PERSISTENT = "persistent"  # producer of what persistent_load returns
_UNSET = object()  # a memo key not stored yet
_SMALL_MEMO = 1 << 16  # memo keys this small cost little memory, whatever the pickle's size
_MAX_PROTOCOL = 5


def _depth(item: object) -> int:
    kind = type(item)
    if kind is int:
        return item  # type: ignore[return-value]
    if kind is list:
        return item[0]  # type: ignore[index]
    return 1 if kind is _Pair else 0


def _line(data: bytes, pos: int) -> tuple[bytes, int]:
    stop = data.find(b"\n", pos)
    if stop < 0:
        raise _Truncated("a text argument does not end with a newline")
    return data[pos:stop], stop + 1


def _text(literal: bytes) -> str:
    """A string literal as the unpickler decodes it (kept as bytes until it names something)."""
    return literal.decode("utf-8", "surrogatepass")


def _text_literal(op: int, literal: bytes) -> bytes | int:
    """A length-prefixed text, or 0 (not a string) for a protocol-0/1 byte string that the
    unpickler, decoding it as ASCII (its default), cannot make a string of."""
    if op == 0x8D:  # BINUNICODE8
        literal.decode("utf-8", "surrogatepass")
        return literal
    return literal if literal.isascii() else 0


def _quoted_string(text: bytes) -> bytes | int:
    """The argument of the protocol-0 STRING opcode, as :func:`_text_literal` gives it."""
    text = text.rstrip(b" ")
    if len(text) < 2 or text[0] != text[-1] or text[0] not in b"'\"":
        raise _Corrupt("the STRING opcode argument must be quoted")
    return _text_literal(0x53, codecs.escape_decode(text[1:-1])[0])  # type: ignore[arg-type]


def _too_deep(record: str, limit: int, start: int) -> str:
    return f"pickle {record!r} nests deeper than {limit} levels at byte {start}; refusing it"


def _deepest(items: list[object]) -> int:
    return max(map(_depth, items), default=0)


def _pop_mark(stack: list[object], metastack: list[list[object]]) -> tuple[list, list]:
    """The items above the topmost MARK, and the stack below it."""
    if not metastack:
        raise _Corrupt("MARK expected on the stack")
    return stack, metastack.pop()


def _memo_put(
    memo: list[object], holes: int, key: int, item: object, end: int, record: str, start: int
) -> int:
    """Store ``item`` at ``key`` (not the next free index); returns the new count of holes."""
    if key > max(end, _SMALL_MEMO):
        # The C unpickler sizes its memo array by the largest key: refuse what the pickle
        # could never fill (Python's pickler numbers entries from 0).
        raise PickleScanError(
            f"pickle {record!r} uses memo key {key} at byte {start}, more than it could ever "
            "fill; refusing it"
        )
    if key < len(memo):
        holes -= memo[key] is _UNSET
        memo[key] = item
        return holes
    holes += key - len(memo)
    memo.extend([_UNSET] * (key - len(memo)))
    memo.append(item)
    return holes


def _created(producer: object, depth: int, limit: int, record: str, start: int) -> list[object]:
    """A new mutable object (call result, instance, persistent object) on the stack."""
    if depth > limit:
        raise PickleScanError(_too_deep(record, limit, start))
    return [depth, producer]


def _reference(references: list[GlobalRef], module: str, name: str, start: int) -> GlobalRef:
    ref = GlobalRef(module, name, start)
    ref.pushes = 1
    references.append(ref)
    return ref


def _fold_getattr(function: GlobalRef, args: _Pair, scan: PickleScan, start: int) -> GlobalRef:
    """``getattr(module.A, "b")``, as protocols below 4 write nested names: the global
    ``module.A.b``, which the unpickler reaches in this call."""
    function.uses |= GETATTR
    function.special += 1
    args.special += 1
    owner = args.owner
    owner.uses |= OWNER
    reached = GlobalRef(owner.module, f"{owner.name}.{_text(args.attribute)}", start)
    reached.pushes = 1
    scan.getattrs.append(reached)
    return reached


def _build(target: object, depth: int, limit: int, strict: bool, record: str, start: int) -> None:
    """BUILD: ``target`` gets its state; only objects the pickle made may (in strict mode)."""
    kind = type(target)
    if kind is list:
        producer = target[1]  # type: ignore[index]
        if type(producer) is GlobalRef:
            producer.uses |= BUILT
        elif producer == _PERSISTENT and strict:
            raise PickleScanError(
                f"pickle {record!r} sets the state of an object persistent_load returned "
                f"(BUILD) at byte {start}; refusing it"
            )
        if depth > target[0]:  # type: ignore[index]
            if depth > limit:
                raise PickleScanError(_too_deep(record, limit, start))
            target[0] = depth  # type: ignore[index]
    elif strict:
        what = target.full_name if kind is GlobalRef else "a value it did not create"  # type: ignore[union-attr]
        raise PickleScanError(
            f"pickle {record!r} sets attributes on {what} (BUILD) at byte {start}; only objects "
            "the pickle creates may have their state set, so it is refused"
        )


def _extension(
    references: list[GlobalRef], code: int, strict: bool, record: str, start: int
) -> GlobalRef:
    if strict:
        # The unpickler may answer from copyreg's cache without asking find_class.
        raise PickleScanError(
            f"pickle {record!r} uses copyreg extension code {code} at byte {start}; refusing it"
        )
    key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
    if key is None:
        raise PickleScanError(
            f"pickle {record!r} uses unregistered copyreg extension code {code} at byte "
            f"{start}; its target cannot be resolved"
        )
    return _reference(references, key[0], key[1], start)


def find_globals(
    data: bytes, record: str = "<pickle>", max_depth: int | None = None
) -> list[tuple[str, str]]:
    """Return the ``(module, qualname)`` pairs referenced by the pickle ``data``.

    Pairs are deduplicated, in order of first appearance; ``record`` names the pickle in error
    messages. Raises :class:`PickleScanError` if the data is truncated or corrupt, if a
    global's name is computed rather than literal, or if objects nest deeper than
    ``max_depth``. Protocol < 3 pickles are reported as written, i.e. with the Python 2 names
    that ``fix_imports`` substitutes (``__builtin__``).
    """
    return scan_pickle(data, record, max_depth).globals


def scan_pickle(  # noqa: C901 - one dispatch loop: a call per opcode would double its cost
    data: bytes | bytearray | memoryview,
    record: str = "<pickle>",
    max_depth: int | None = None,
    *,
    strict: bool = False,
) -> PickleScan:
    """Decode ``data`` opcode by opcode; see the module docstring for what ``strict`` refuses.

    Every object the pickle builds carries its nesting depth (tuples exactly: they are built
    from finished items; containers grow as items are added), and more than ``max_depth``
    levels is refused.
    """
    data = bytes(data)
    end = len(data)
    limit = max_depth if max_depth is not None else end + 1
    scan = PickleScan()
    references = scan.references
    group_of = _GROUP
    argument_size = _ARGUMENT
    # Stack items: an int is the depth of an immutable value (0 for scalars), bytes a string
    # literal (UTF-8), a GlobalRef a global, a _Pair a (global, literal) tuple, and a two-item list
    # [depth, producer] a mutable object (container or instance) that may still grow.
    stack: list[object] = []
    metastack: list[list[object]] = []
    # The memo as the C unpickler keeps it: an array indexed by memo key, with holes.
    memo: list[object] = []
    holes = 0
    pairs: list[_Pair] = []
    # ``pos`` stays at the start of the opcode being decoded until it is done, so that errors
    # name it; the hot branches compute where the next opcode starts, then move there.
    pos = 0
    op = 0
    SCALAR, GET, MARK, ADD_ITEMS, TUPLE2, TUPLE_N, EMPTY, BYTES = (
        _SCALAR, _GET, _MARK, _ADD_ITEMS, _TUPLE2, _TUPLE_N, _EMPTY, _BYTES
    )  # fmt: skip
    read_length = _READ_LENGTH
    read_u32 = _SIZE[4].unpack_from
    try:
        while True:
            op = data[pos]  # IndexError past the end: truncated
            # Strings and memo stores are most of any pickle's opcodes: tested first.
            if op == 0x58 or op == 0x8C:  # BINUNICODE, SHORT_BINUNICODE
                if op == 0x58:
                    length = read_u32(data, pos + 1)[0]
                    first = pos + 5
                else:
                    length = data[pos + 1]
                    first = pos + 2
                literal = data[first : first + length]
                if len(literal) != length:
                    raise _Truncated(f"declares {length} bytes, but fewer remain")
                if not literal.isascii():
                    literal.decode("utf-8", "surrogatepass")  # the unpickler's check, now
                stack.append(literal)  # decoded only if it names something
                pos = first + length
                continue
            if op == 0x71 or op == 0x72 or op == 0x94:  # BINPUT, LONG_BINPUT, MEMOIZE
                if not stack:
                    raise _Corrupt("nothing to memoize")
                if op == 0x71:
                    key = data[pos + 1]
                    after = pos + 2
                elif op == 0x72:
                    key = read_u32(data, pos + 1)[0]
                    after = pos + 5
                else:
                    key = len(memo) - holes
                    after = pos + 1
                if key == len(memo):
                    memo.append(stack[-1])
                else:
                    holes = _memo_put(memo, holes, key, stack[-1], end, record, pos)
                pos = after
                continue
            group = group_of[op]
            if group == SCALAR:
                after = pos + 1 + argument_size[op]
                if after > end:
                    raise _Corrupt("the argument runs past the end of the data")
                stack.append(0)
                pos = after
            elif group == GET:
                if argument_size[op] == 1:
                    key = data[pos + 1]
                else:
                    key = read_length[op](data, pos + 1)[0]
                item = memo[key] if key < len(memo) else _UNSET
                if item is _UNSET:
                    raise _Corrupt(f"memo key {key} was never stored")
                if type(item) is GlobalRef or type(item) is _Pair:
                    item.pushes += 1  # type: ignore[union-attr]
                stack.append(item)
                pos += 1 + argument_size[op]
            elif group == MARK:
                metastack.append(stack)
                stack = []
                pos += 1
            elif group == TUPLE2:  # the most common tuple (dict items, pairs): no loop
                second = stack.pop()
                first = stack[-1]
                kind = type(first)
                if kind is GlobalRef and type(second) is bytes:
                    pairs.append(_Pair(first, second))  # type: ignore[arg-type]
                    stack[-1] = pairs[-1]
                else:
                    depth = first if kind is int else first[0] if kind is list else kind is _Pair  # type: ignore[index]
                    kind = type(second)
                    inner = second if kind is int else second[0] if kind is list else kind is _Pair  # type: ignore[index]
                    if inner > depth:  # type: ignore[operator]
                        depth = inner
                    if depth >= limit:  # type: ignore[operator]
                        raise PickleScanError(_too_deep(record, limit, pos))
                    stack[-1] = depth + 1  # type: ignore[operator]
                pos += 1
            elif group == TUPLE_N:  # EMPTY_TUPLE, TUPLE1, TUPLE3
                count = argument_size[op]
                if len(stack) < count:
                    raise _Corrupt("stack underflow")
                depth = 0
                for _ in range(count):
                    item = stack.pop()
                    kind = type(item)
                    inner = item if kind is int else item[0] if kind is list else kind is _Pair  # type: ignore[index]
                    if inner > depth:  # type: ignore[operator]
                        depth = inner  # type: ignore[assignment]
                if depth >= limit:
                    raise PickleScanError(_too_deep(record, limit, pos))
                stack.append(depth + 1)
                pos += 1
            elif group == ADD_ITEMS:  # SETITEMS, APPENDS, ADDITEMS
                if not metastack:
                    raise _Corrupt("MARK expected on the stack")
                if not metastack[-1]:
                    raise _Corrupt("no container below the MARK")
                if argument_size[op] == 2 and len(stack) % 2:
                    raise _Corrupt("odd number of items for SETITEMS")
                depth = 0
                for item in stack:
                    kind = type(item)
                    if kind is int:
                        if item > depth:  # type: ignore[operator]
                            depth = item  # type: ignore[assignment]
                    elif kind is list:
                        if item[0] > depth:  # type: ignore[index]
                            depth = item[0]  # type: ignore[index]
                    elif kind is _Pair and depth < 1:
                        depth = 1
                stack = metastack.pop()
                target = stack[-1]
                if type(target) is list and target[0] <= depth:  # type: ignore[index]
                    if depth >= limit:
                        raise PickleScanError(_too_deep(record, limit, pos))
                    target[0] = depth + 1  # type: ignore[index]
                pos += 1
            elif group == EMPTY:
                stack.append([1, None])
                pos += 1
            elif group == BYTES:
                size = argument_size[op]
                length = data[pos + 1] if size == 1 else read_length[op](data, pos + 1)[0]
                after = pos + 1 + size + length
                if after > end:
                    raise _Truncated(f"declares {length} bytes, but fewer remain")
                if op in _TEXTS:
                    stack.append(_text_literal(op, data[after - length : after]))
                else:
                    stack.append(0)
                pos = after
            else:
                # Rare opcodes: how a pickle names, calls and builds objects.
                at = pos + 1
                if op == 0x93:  # STACK_GLOBAL
                    if len(stack) < 2:
                        raise _Corrupt("stack underflow")
                    name = stack.pop()
                    module = stack.pop()
                    if type(module) is not bytes or type(name) is not bytes:
                        raise PickleScanError(
                            f"pickle {record!r} uses a computed global name at byte {pos}; "
                            "its target cannot be resolved statically"
                        )
                    ref = _reference(references, _text(module), _text(name), pos)  # type: ignore[arg-type]
                    stack.append(ref)
                elif op == 0x63 or op == 0x69:  # GLOBAL, INST
                    module_line, at = _line(data, at)
                    name_line, at = _line(data, at)
                    module, name = module_line.decode(), name_line.decode()
                    ref = _reference(references, module, name, pos)
                    if op == 0x63:
                        stack.append(ref)
                    else:
                        items, stack = _pop_mark(stack, metastack)
                        ref.pushes = 0
                        ref.uses |= CALL
                        stack.append(_created(ref, _deepest(items) + 1, limit, record, pos))
                elif op == 0x52:  # REDUCE
                    if len(stack) < 2:
                        raise _Corrupt("stack underflow")
                    args = stack.pop()
                    function = stack.pop()
                    kind = type(function)
                    if (
                        kind is GlobalRef
                        and type(args) is _Pair
                        and (function.module, function.name) in _GETATTR  # type: ignore[union-attr]
                    ):
                        stack.append(_fold_getattr(function, args, scan, pos))  # type: ignore[arg-type]
                        pos = at
                        continue
                    if kind is GlobalRef:
                        function.uses |= CALL  # type: ignore[union-attr]
                        function.special += 1  # type: ignore[union-attr]
                    producer = function if kind is GlobalRef else None
                    stack.append(_created(producer, _depth(args), limit, record, pos))
                elif op == 0x81 or op == 0x92:  # NEWOBJ, NEWOBJ_EX
                    count = 2 if op == 0x81 else 3
                    if len(stack) < count:
                        raise _Corrupt("stack underflow")
                    depth = max(_depth(stack.pop()) for _ in range(count - 1))
                    cls = stack.pop()
                    producer = None
                    if type(cls) is GlobalRef:
                        cls.uses |= NEW
                        cls.special += 1
                        producer = cls
                    stack.append(_created(producer, depth, limit, record, pos))
                elif op == 0x6F:  # OBJ
                    items, stack = _pop_mark(stack, metastack)
                    if not items:
                        raise _Corrupt("OBJ needs a class after the MARK")
                    cls = items[0]
                    producer = None
                    if type(cls) is GlobalRef:
                        cls.uses |= CALL
                        cls.special += 1
                        producer = cls
                    depth = _deepest(items[1:]) + 1
                    stack.append(_created(producer, depth, limit, record, pos))
                elif op == 0x62:  # BUILD
                    if len(stack) < 2:
                        raise _Corrupt("stack underflow")
                    state = stack.pop()
                    _build(stack[-1], _depth(state) + 1, limit, strict, record, pos)
                elif op == 0x51 or op == 0x50:  # BINPERSID, PERSID
                    if op == 0x51:
                        if not stack:
                            raise _Corrupt("stack underflow")
                        depth = _depth(stack.pop())
                    else:
                        pid, at = _line(data, at)
                        pid.decode("ascii")
                        depth = 0
                    stack.append(_created(_PERSISTENT, depth, limit, record, pos))
                elif op in (0x74, 0x6C, 0x64, 0x91):  # TUPLE, LIST, DICT, FROZENSET
                    items, stack = _pop_mark(stack, metastack)
                    if op == 0x64 and len(items) % 2:
                        raise _Corrupt("odd number of items for DICT")
                    if op == 0x74 and len(items) == 2:
                        first, second = items
                        if type(first) is GlobalRef and type(second) is bytes:
                            pairs.append(_Pair(first, second))
                            stack.append(pairs[-1])
                            pos = at
                            continue
                    depth = _deepest(items) + 1
                    if depth > limit:
                        raise PickleScanError(_too_deep(record, limit, pos))
                    stack.append(depth if op in (0x74, 0x91) else [depth, None])
                elif op == 0x61 or op == 0x73:  # APPEND, SETITEM
                    count = 2 if op == 0x61 else 3
                    if len(stack) < count:
                        raise _Corrupt("stack underflow")
                    depth = _depth(stack.pop()) + 1
                    if op == 0x73:
                        stack.pop()  # the key: hashable, so not a container that can grow
                    target = stack[-1]
                    if type(target) is list and depth > target[0]:  # type: ignore[index]
                        if depth > limit:
                            raise PickleScanError(_too_deep(record, limit, pos))
                        target[0] = depth  # type: ignore[index]
                elif op == 0x32:  # DUP
                    if not stack:
                        raise _Corrupt("stack underflow")
                    item = stack[-1]
                    if type(item) is GlobalRef or type(item) is _Pair:
                        item.pushes += 1  # type: ignore[union-attr]
                    stack.append(item)
                elif op == 0x30:  # POP
                    if stack:
                        stack.pop()
                    else:  # the unpickler's POP discards a MARK when nothing is above it
                        _, stack = _pop_mark(stack, metastack)
                elif op == 0x31:  # POP_MARK
                    _, stack = _pop_mark(stack, metastack)
                elif op == 0x2E:  # STOP
                    if not stack:
                        raise _Corrupt("stack underflow at STOP")
                    break
                elif op == 0x80:  # PROTO
                    scan.protocol = data[at]
                    at += 1
                    if scan.protocol > _MAX_PROTOCOL:
                        raise _Corrupt(f"unsupported pickle protocol {scan.protocol}")
                elif op == 0x95:  # FRAME
                    length = _SIZE[8].unpack_from(data, at)[0]
                    at += 8
                    if length > end - at:
                        raise _Truncated(f"frame declares {length} bytes, but {end - at} remain")
                elif op == 0x70 or op == 0x67:  # PUT, GET
                    key_line, at = _line(data, at)
                    key = int(key_line)
                    if op == 0x70:
                        if not stack:
                            raise _Corrupt("nothing to memoize")
                        if key < 0:
                            raise _Corrupt("negative PUT argument")
                        holes = _memo_put(memo, holes, key, stack[-1], end, record, pos)
                    else:
                        item = memo[key] if 0 <= key < len(memo) else _UNSET
                        if item is _UNSET:
                            raise _Corrupt(f"memo key {key} was never stored")
                        if type(item) is GlobalRef or type(item) is _Pair:
                            item.pushes += 1  # type: ignore[union-attr]
                        stack.append(item)
                elif op == 0x53 or op == 0x56:  # STRING, UNICODE
                    text, at = _line(data, at)
                    stack.append(
                        _quoted_string(text)
                        if op == 0x53
                        else text.decode("raw-unicode-escape").encode("utf-8", "surrogatepass")
                    )
                elif op in (0x49, 0x4C, 0x46):  # INT, LONG, FLOAT
                    text, at = _line(data, at)
                    if op == 0x46:
                        float(text)
                    elif text not in (b"00", b"01"):
                        int(text.rstrip(b"L"))
                    stack.append(0)
                elif op == 0x96:  # BYTEARRAY8: a mutable object
                    length = _SIZE[8].unpack_from(data, at)[0]
                    at += 8 + length
                    if at > end:
                        raise _Truncated(f"declares {length} bytes, but fewer remain")
                    stack.append([0, None])
                elif op in (0x82, 0x83, 0x84):  # EXT1, EXT2, EXT4
                    size = {0x82: 1, 0x83: 2, 0x84: 4}[op]
                    code = _SIZE[size].unpack_from(data, at)[0]
                    at += size
                    stack.append(_extension(references, code, strict, record, pos))
                elif op == 0x97 or op == 0x98:  # NEXT_BUFFER, READONLY_BUFFER
                    if strict:
                        raise PickleScanError(
                            f"pickle {record!r} refers to out-of-band buffers at byte {pos}, "
                            "which a package cannot provide; refusing it"
                        )
                    if op == 0x97:
                        stack.append([0, None])
                else:
                    raise _Corrupt(f"unknown opcode 0x{op:02x}")
                pos = at
    except PickleScanError as err:
        err.references = references
        raise
    except (_Corrupt, ValueError, IndexError, struct.error, UnicodeDecodeError) as err:
        error = PickleScanError(
            f"pickle {record!r} is truncated or corrupt at byte {pos} (opcode 0x{op:02x}): {err}"
        )
        error.references = references
        # An opcode (at most 9 bytes with its argument) that runs past the end.
        error.truncated = isinstance(err, _Truncated) or pos + 9 >= end
        raise error from None
    for pair in pairs:
        if pair.pushes > pair.special:
            pair.owner.uses |= VALUE
    return scan
