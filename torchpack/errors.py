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


class MalformedArchiveError(ArchiveError):
    """The archive's structure or a record's content is broken or hostile.

    Raised before anything in the archive runs: a file that is not a ZIP, a truncated or
    ambiguous archive (readers could disagree on its records), record names with ``..``,
    absolute paths, control characters or duplicates (also by case), compressed records,
    declared sizes that do not fit the file, bad CRCs, unreadable or hostile pickles (too deep,
    doing what Python's pickler never writes, bad persistent ids, rebuild arguments out of
    range, more memory than ``max_rebuild_bytes``), missing or unreadable ``.data/version``,
    interned sources that do not compile, and unzipped packages with special files or links
    that lead outside.
    """


class IntegrityError(ArchiveError):
    """A record's bytes differ from the sha256 in the package's manifest, or the manifest is
    missing, or records were added or removed since it was written."""


class IntegrityWarning(UserWarning):
    """A package without an integrity manifest shows signs of having been changed since it was
    written (issued once per package, naming it). ``verify=True`` refuses packages without a
    manifest; ``verify=False`` skips the checks and this warning."""


class UnsafeGlobalError(ArchiveError):
    """``safe=True`` refused a global a pickle names, or what the pickle does with it: it is
    neither defined in a module interned in the package nor a known-harmless reconstruction
    helper used as such (torch's tensor rebuilds, plain containers, dtypes, ``torch.nn``
    classes instantiated without their constructor, torch functions held as values).
    ``allow_globals=["module.name"]`` admits it as it is."""

    def __init__(
        self, archive: str, record: str, global_name: str, reason: str | None = None
    ) -> None:
        reason = reason or (
            "it is not defined in the package's own modules nor a known-harmless "
            "reconstruction function"
        )
        super().__init__(
            archive,
            f"safe loading refuses the global {global_name!r}: {reason}; if you trust it, "
            f"pass allow_globals=[{global_name!r}]",
            record,
        )
        self.global_name = global_name


class MissingModuleError(ArchiveError, ModuleNotFoundError):
    """A pickle names a module that is neither in the package nor one of its extern modules."""

    def __init__(self, archive: str, record: str, module_name: str) -> None:
        super().__init__(
            archive,
            f"the pickle needs module {module_name!r}, which is neither in the package nor "
            "one of its extern modules; the package was made without it",
            record,
        )
        self.name = module_name


def first_line(err: BaseException) -> str:
    """The first line of an error's message, for one-line reports of others' exceptions."""
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
