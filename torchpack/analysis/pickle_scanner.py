"""Static discovery of the globals (classes, functions) a pickle references.

The opcode stream is decoded with :func:`pickletools.genops` and the
unpickler's stack and memo are simulated just enough to know which string
literals feed each ``STACK_GLOBAL``; nothing in the pickle is executed.
"""

from __future__ import annotations

import copyreg
import io
import pickletools

__all__ = ["PickleScanError", "find_globals"]


class PickleScanError(ValueError):
    """Pickle data that cannot be scanned (truncated, corrupt or opaque)."""


class _Mark:
    """The MARK the unpickler keeps on its meta-stack."""


class _Opaque:
    """A stack value that is not a string literal."""


_MARK = _Mark()
_OPAQUE = _Opaque()

# Opcodes that push a str the unpickler can use as STACK_GLOBAL operand.
# The legacy (byte) STRING opcodes count too: the default encoding="ASCII"
# unpickles them as str.
_STRING_OPS = frozenset(
    {
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "UNICODE",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
    }
)
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_EXT_OPS = frozenset({"EXT1", "EXT2", "EXT4"})


class _Corrupt(Exception):
    pass


def _pop_mark(stack: list[object], at_least: int) -> None:
    """Pop everything down to and including the topmost MARK."""
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            if len(stack) - 1 - i < at_least:
                raise _Corrupt("too few items after MARK")
            del stack[i:]
            return
    raise _Corrupt("MARK expected on the stack")


def _pop(stack: list[object]) -> object:
    if not stack or stack[-1] is _MARK:
        raise _Corrupt("stack underflow")
    return stack.pop()


def find_globals(
    data: bytes, record: str = "<pickle>", max_depth: int | None = None
) -> list[tuple[str, str]]:
    """Return the ``(module, qualname)`` pairs referenced by the pickle ``data``.

    Pairs are deduplicated, in order of first appearance.  ``record`` names the
    pickle in error messages.  Raises :class:`PickleScanError` if the data is
    truncated or corrupt, or if a global's name is computed rather than
    literal, or if MARKs nest deeper than ``max_depth`` (Python's pickler, bound by the
    recursion limit, never writes such nesting).  Protocol < 3 pickles are
    reported as written, i.e. with the Python 2 names that ``fix_imports``
    substitutes (``__builtin__``).
    """
    stream = io.BytesIO(data)
    stack: list[object] = []
    memo: dict[int, object] = {}
    found: dict[tuple[str, str], None] = {}
    depth = 0  # MARKs on the stack: how deeply containers nest
    # Start of the opcode being decoded; genops reads an opcode's argument
    # before yielding it, so after each yield tell() is where the next starts.
    pos = 0
    ops = pickletools.genops(stream)
    while True:
        try:
            item = next(ops, None)
        except Exception as e:
            # genops signals bad input with a mix of ValueError, EOFError,
            # struct.error and UnicodeDecodeError; all mean the same here.
            raise PickleScanError(
                f"pickle {record!r} is truncated or corrupt at byte {pos}: {e}"
            ) from e
        if item is None:
            break
        opcode, arg, op_pos = item
        pos = stream.tell()
        name = opcode.name
        try:
            if name in _STRING_OPS:
                stack.append(arg)
            elif name == "GLOBAL" or name == "INST":
                module, _, qualname = arg.partition(" ")
                found.setdefault((module, qualname), None)
                if name == "INST":
                    _pop_mark(stack, 0)
                    depth -= 1
                stack.append(_OPAQUE)
            elif name == "STACK_GLOBAL":
                qualname = _pop(stack)
                module = _pop(stack)
                if type(module) is not str or type(qualname) is not str:
                    raise PickleScanError(
                        f"pickle {record!r} uses a computed global name at byte {op_pos}; "
                        "its target cannot be resolved statically"
                    )
                found.setdefault((module, qualname), None)
                stack.append(_OPAQUE)
            elif name in _GET_OPS:
                if arg not in memo:
                    raise _Corrupt(f"memo key {arg} was never stored")
                stack.append(memo[arg])
            elif name in _PUT_OPS:
                if not stack or stack[-1] is _MARK:
                    raise _Corrupt("nothing to memoize")
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                if not stack or stack[-1] is _MARK:
                    raise _Corrupt("nothing to memoize")
                # The unpickler uses len(memo), not a running count.
                memo[len(memo)] = stack[-1]
            elif name == "DUP":
                if not stack or stack[-1] is _MARK:
                    raise _Corrupt("stack underflow")
                stack.append(stack[-1])
            elif name == "POP":
                # The unpickler's POP discards a MARK when the stack above it is empty.
                if not stack:
                    raise _Corrupt("stack underflow")
                if stack.pop() is _MARK:
                    depth -= 1
            elif name in _EXT_OPS:
                key = copyreg._inverted_registry.get(arg)
                if key is None:
                    raise PickleScanError(
                        f"pickle {record!r} uses unregistered copyreg extension code {arg} "
                        f"at byte {op_pos}; its target cannot be resolved"
                    )
                found.setdefault(key, None)
                stack.append(_OPAQUE)
            else:
                # Everything else only matters for its stack effect, which
                # pickletools describes.  A signature such as
                # "list, mark, any, stackslice" consumes everything from the
                # topmost MARK up (at least the items named after the mark),
                # then the items below it one by one.
                before = opcode.stack_before
                below = before
                if pickletools.markobject in before:
                    at = before.index(pickletools.markobject)
                    below = before[:at]
                    _pop_mark(stack, sum(k is not pickletools.stackslice for k in before[at + 1 :]))
                    depth -= 1
                for _ in below:
                    _pop(stack)
                for kind in opcode.stack_after:
                    stack.append(_MARK if kind is pickletools.markobject else _OPAQUE)
                    if kind is pickletools.markobject:
                        depth += 1
                        if max_depth is not None and depth > max_depth:
                            raise PickleScanError(
                                f"pickle {record!r} nests deeper than {max_depth} levels at "
                                f"byte {op_pos}; refusing it"
                            )
        except _Corrupt as e:
            raise PickleScanError(
                f"pickle {record!r} is truncated or corrupt at byte {op_pos} ({name}): {e}"
            ) from None
    return list(found)
