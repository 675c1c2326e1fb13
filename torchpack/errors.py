"""Exceptions raised while building a package."""

from __future__ import annotations

from .analysis.digraph import DiGraph


class PackagingError(Exception):
    """Dependency resolution left modules that cannot be packaged.

    Raised once, when the exporter closes, listing every broken module, why it is broken,
    and the chain of imports that pulled it in.
    """

    def __init__(
        self,
        message: str,
        broken_modules: dict[str, str] | None = None,
        dependency_graph: DiGraph | None = None,
    ) -> None:
        super().__init__(message)
        # module name -> reason, so tools can act on the failure without parsing text.
        self.broken_modules = dict(broken_modules or {})
        # What pulled each module in: see torchpack.analyze.find_first_use_of_broken_modules.
        self.dependency_graph = dependency_graph if dependency_graph is not None else DiGraph()


class EmptyMatchError(Exception):
    """A pattern declared with ``allow_empty=False`` matched no module."""


class ArchiveError(Exception):
    """A package archive cannot be read: missing, malformed, or missing a record."""

    def __init__(self, archive: str, problem: str, record: str | None = None) -> None:
        where = f"package {archive}" + (f", record {record!r}" if record else "")
        super().__init__(f"{where}: {problem}")
        self.archive = archive
        self.record = record
