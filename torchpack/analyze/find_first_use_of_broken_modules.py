"""Where an export's broken modules came from: the first chain of imports to each."""

from __future__ import annotations

from ..errors import PackagingError


def find_first_use_of_broken_modules(exc: PackagingError) -> dict[str, list[str]]:
    """For each module that broke an export, the first chain of imports that leads to it.

    Each chain starts at the pickle or module that was saved (``<package.resource>``) and
    ends at the broken module.
    """
    if not isinstance(exc, PackagingError):
        raise TypeError(f"expected a PackagingError, not {type(exc).__name__}")
    graph = exc.dependency_graph
    return {name: graph.first_path(name) for name in exc.broken_modules if name in graph}
