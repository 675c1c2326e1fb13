"""A module's source as Python reads its names, for substring searches that spare parsing.

Parsing thousands of modules takes seconds; searching their text for a name takes
milliseconds. A search finds every place the name is spelled (and more: strings, comments) if
it searches what Python reads: source decoded as it declares (``# coding: latin-1``), with
identifiers NFKC-normalised (``ｂ`` is ``b``). Calls that import (``__import__``,
``importlib.import_module``) can spell a name in pieces (``"sub" "process"``), so modules
that make them must be parsed whatever a search says.
"""

from __future__ import annotations

import unicodedata

from .import_scanner import ImportAnalysisError, _decode

__all__ = ["may_import_by_calling", "names_text"]

_IMPORT_CALLS = (b"__import__", b"import_module")


def names_text(source: bytes, module_name: str, filename: str) -> bytes | None:
    """``source`` as UTF-8 in which every name is spelled as Python reads it (plain ASCII source
    as it is), or None if it cannot be decoded, and so cannot be parsed either."""
    if source.isascii() and not _may_declare_encoding(source):
        return source
    try:
        text = _decode(source, module_name, filename)
    except ImportAnalysisError:
        return None
    return unicodedata.normalize("NFKC", text).encode("utf-8", "surrogatepass")


def may_import_by_calling(text: bytes) -> bool:
    """Whether the module may import by calling, spelling names in ways a search misses."""
    return any(call in text for call in _IMPORT_CALLS)


def _may_declare_encoding(source: bytes) -> bool:
    """Whether the first two lines (where Python looks for it) may declare an encoding."""
    second_end = source.find(b"\n", source.find(b"\n") + 1)
    return b"coding" in source[: second_end if second_end >= 0 else len(source)]
