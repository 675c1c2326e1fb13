"""Which modules' code runs while a callable runs: a starting point for intern patterns."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterable
from typing import Any

from .._mangling import demangle, is_mangled


def trace_dependencies(
    callable: Callable[..., Any], inputs: Iterable[tuple[Any, ...]]
) -> list[str]:
    """The modules whose code runs while ``callable(*args)`` runs, for each ``args`` in inputs.

    A module counts when a Python function defined in it is called, or when a C function
    that names it as its ``__module__`` is. Modules loaded from a package are reported by
    their real (demangled) names, ready to be used in intern/extern patterns. Only the
    calling thread is traced.
    """
    used: set[str] = set()
    tracing = True

    def record(frame: types.FrameType, event: str, arg: Any) -> None:
        if not tracing:
            return
        if event == "call":
            name = frame.f_globals.get("__name__")
        elif event == "c_call":
            name = getattr(arg, "__module__", None)
        else:
            return
        if isinstance(name, str):
            used.add(name)

    previous = sys.getprofile()
    sys.setprofile(record)
    try:
        for args in inputs:
            callable(*args)
    finally:
        tracing = False  # not the sys.setprofile call below
        sys.setprofile(previous)
    return sorted({demangle(name) if is_mangled(name) else name for name in used})
