"""Tools that explain what a package needs: ``torch.package.analyze``'s counterparts."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterable
from typing import Any

from .errors import PackagingError
from .mangling import demangle, is_from_package, is_mangled

__all__ = ["find_first_use_of_broken_modules", "is_from_package", "trace_dependencies"]


def find_first_use_of_broken_modules(exc: PackagingError) -> dict[str, list[str]]:
    """For each module that broke an export, the first chain of imports that leads to it.

    Each chain starts at the pickle or module that was saved (``<package.resource>``) and
    ends at the broken module.
    """
    if not isinstance(exc, PackagingError):
        raise TypeError(f"expected a PackagingError, not {type(exc).__name__}")
    graph = exc.dependency_graph
    return {name: graph.first_path(name) for name in exc.broken_modules if name in graph}


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

