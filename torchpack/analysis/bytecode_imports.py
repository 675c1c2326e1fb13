"""Import statements read from compiled code, the cheap way to scan a module's imports.

Building a Python syntax tree (``ast.parse``) is most of the cost of scanning a large
library. Compiled code holds every executed import statement as an ``IMPORT_NAME``
instruction preceded by two constants (level and from-list), and Python usually has the
module compiled already: its ``__pycache__`` file, used only when it is valid for the exact
source (the checks the import system itself makes). Otherwise ``compile``, which skips the
syntax tree objects, is still faster than ``ast.parse``.

Calls (``__import__``, ``importlib.import_module``) are not recognised here; the import
scanner walks the syntax tree for modules that may make them. Compilation drops dead code
(``if False:`` blocks, statements after ``return``), so imports there are not reported.
"""

from __future__ import annotations

import dis
import importlib.util
import marshal
import os
import types
from dataclasses import dataclass

__all__ = [
    "ImportStatement",
    "UnrecognizedCode",
    "calls_may_import",
    "import_statements",
    "module_code",
]

_IMPORT_NAME = dis.opmap["IMPORT_NAME"]
_LOAD_CONST = dis.opmap["LOAD_CONST"]
_LOAD_SMALL_INT = dis.opmap.get("LOAD_SMALL_INT")  # Python 3.14 loads small ints inline
_EXTENDED_ARG = dis.EXTENDED_ARG
_CACHE = dis.opmap.get("CACHE", 0)
# Names that mean a module may import by calling; such modules need the syntax tree.
_IMPORT_CALL_NAMES = frozenset({"__import__", "import_module"})
_PYC_HEADER_SIZE = 16
_HASH_BASED_FLAG = 0b01


class UnrecognizedCode(Exception):
    """The compiled code does not have the shape this reader knows; use the syntax tree."""


@dataclass(frozen=True, slots=True)
class ImportStatement:
    """``from <level dots><name> import <fromlist>``, or ``import <name>`` (no fromlist)."""

    lineno: int
    col_offset: int
    name: str
    level: int
    fromlist: tuple[str, ...] | None


def module_code(source: bytes, filename: str) -> types.CodeType:
    """The compiled module: Python's cached bytecode if valid for ``source``, else compiled.

    Raises ``SyntaxError`` / ``ValueError`` as ``compile`` does for source it cannot compile.
    """
    cached = _cached_code(source, filename)
    if cached is not None:
        return cached
    return compile(source, filename, "exec", dont_inherit=True, optimize=0)


def _cached_code(source: bytes, filename: str) -> types.CodeType | None:
    try:
        # Unoptimised bytecode only: -O would drop `if __debug__:` blocks and their imports.
        pyc = importlib.util.cache_from_source(filename, optimization="")
        with open(pyc, "rb") as f:
            data = f.read()
    except (OSError, ValueError, NotImplementedError):
        return None
    if len(data) < _PYC_HEADER_SIZE or data[:4] != importlib.util.MAGIC_NUMBER:
        return None
    flags = int.from_bytes(data[4:8], "little")
    if flags & _HASH_BASED_FLAG:
        if data[8:16] != importlib.util.source_hash(source):
            return None
    else:
        try:
            info = os.stat(filename)
        except OSError:
            return None
        # The import system's check: the file's mtime and size as recorded when compiling.
        # The size must also be that of the bytes we were given.
        mtime = int.from_bytes(data[8:12], "little")
        size = int.from_bytes(data[12:16], "little")
        if (
            mtime != int(info.st_mtime) & 0xFFFFFFFF
            or size != info.st_size & 0xFFFFFFFF
            or info.st_size != len(source)
        ):
            return None
    try:
        code = marshal.loads(memoryview(data)[_PYC_HEADER_SIZE:])
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) else None


def calls_may_import(code: types.CodeType) -> bool:
    """Whether any code in the module names ``__import__`` or ``import_module``."""
    return any(not _IMPORT_CALL_NAMES.isdisjoint(c.co_names) for c in _all_code(code))


def import_statements(code: types.CodeType) -> list[ImportStatement]:
    """Every import statement compiled into ``code`` and the functions and classes in it."""
    statements = []
    for c in _all_code(code):
        raw = c.co_code
        if _IMPORT_NAME not in raw[::2]:
            continue
        offsets = []
        start = raw.find(_IMPORT_NAME)
        while start != -1:
            if start % 2 == 0:  # an opcode, not an argument byte
                offsets.append(start)
            start = raw.find(_IMPORT_NAME, start + 1)
        # The source positions of just these instructions, without keeping a tuple for every
        # instruction alive: in a process holding torch, a burst of live allocations sets off
        # full garbage collections over torch's heap, which cost more than the scan itself.
        wanted = {offset // 2: offset for offset in offsets}
        for index, position in enumerate(c.co_positions()):
            offset = wanted.get(index)
            if offset is not None:
                statements.append(_statement_at(c, raw, offset, position))
    return statements


def _all_code(code: types.CodeType) -> list[types.CodeType]:
    found = [code]
    pending = [code]
    while pending:
        for const in pending.pop().co_consts:
            if type(const) is types.CodeType:
                found.append(const)
                pending.append(const)
    return found


def _statement_at(
    code: types.CodeType, raw: bytes, offset: int, position: tuple
) -> ImportStatement:
    name_index, first = _argument(raw, offset)
    fromlist_op, fromlist_arg, first = _argument_before(raw, first)
    level_op, level_arg, _ = _argument_before(raw, first)
    if fromlist_op != _LOAD_CONST:
        raise UnrecognizedCode
    fromlist = code.co_consts[fromlist_arg]
    if level_op == _LOAD_CONST:
        level = code.co_consts[level_arg]
    elif level_op == _LOAD_SMALL_INT:
        level = level_arg
    else:
        raise UnrecognizedCode
    if type(level) is not int or not (
        fromlist is None or (type(fromlist) is tuple and all(type(x) is str for x in fromlist))
    ):
        raise UnrecognizedCode
    lineno, _, col_offset, _ = position
    if lineno is None:
        raise UnrecognizedCode
    return ImportStatement(lineno, col_offset or 0, code.co_names[name_index], level, fromlist)


def _argument(raw: bytes, offset: int) -> tuple[int, int]:
    """The full argument of the instruction at ``offset``, and where its prefixes start."""
    arg = raw[offset + 1]
    shift = 8
    while offset >= 2 and raw[offset - 2] == _EXTENDED_ARG:
        offset -= 2
        arg |= raw[offset + 1] << shift
        shift += 8
    return arg, offset


def _argument_before(raw: bytes, offset: int) -> tuple[int, int, int]:
    """Opcode and argument of the instruction before ``offset``, and where it starts."""
    offset -= 2
    while offset >= 0 and raw[offset] == _CACHE:
        offset -= 2
    if offset < 0:
        raise UnrecognizedCode
    arg, start = _argument(raw, offset)
    return raw[offset], arg, start
