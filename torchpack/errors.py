"""Exceptions raised while building a package."""

from __future__ import annotations

import enum

from .analysis.digraph import DiGraph


class PackagingErrorReason(enum.Enum):
    """Why a module cannot be packaged; the texts are torch.package's, word for word."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self.name}>"

    IS_EXTENSION_MODULE = (
        "Module is a C extension module. torch.package supports Python modules only."
    )
    NO_DUNDER_FILE = "Module had no __file__ defined."
    SOURCE_FILE_NOT_FOUND = "Module had a __file__, but we could not find it in your filesystem."
    DEPENDENCY_RESOLUTION_FAILED = "Dependency resolution failed."
    NO_ACTION = "Module did not match against any action pattern. Extern, mock, or intern it."
    DENIED = "Module was denied by a pattern."
    MOCKED_BUT_STILL_USED = (
        "Module was mocked out, but is still being used in the package. Please intern or "
        "extern the mocked modules if objects are supposed to be in the package."
    )
    # torchpack's own: torch.package raises these at the call instead of collecting them.
    NOT_FOUND = "Module could not be imported or found."
    DEFINED_IN_MAIN = (
        "Object is defined in __main__, whose source is not in a file (python -c, a notebook, "
        "the interactive prompt), so it cannot be packaged. Move its definition into a module "
        "of its own (or a script file) and import it from there."
    )
    STDLIB_MOCKED = (
        "Module is part of the standard library and was matched by a mock pattern; code that "
        "imports it needs the real module, which a stub cannot stand in for."
    )


# Part of the standard library, but they reach far into the host process.
DISALLOWED_MODULES = ("sys", "io")

_DEBUG_FOOTER = (
    "Set debug=True when invoking PackageExporter for a visualization of where broken "
    "modules are coming from!"
)


class PackagingError(Exception):
    """Dependency resolution left modules that cannot be packaged.

    Raised once, when the exporter closes, listing every broken module grouped by reason, in
    torch.package's words. ``dependency_graph`` is the export's graph: each broken module's node
    has ``error`` (a :class:`PackagingErrorReason`) and may have ``error_context``. With
    ``debug=True`` the message also shows the chain of imports that pulled each one in.
    """

    def __init__(self, dependency_graph: DiGraph, debug: bool = False) -> None:
        self.dependency_graph = dependency_graph
        super().__init__(_describe(dependency_graph, debug))

    @property
    def broken_modules(self) -> dict[str, str]:
        """Module name -> reason, so tools can act on the failure without parsing text."""
        return {
            name: attrs["error"].value
            for name, attrs in self.dependency_graph.nodes.items()
            if attrs.get("error") is not None
        }


def _describe(graph: DiGraph, debug: bool) -> str:
    by_reason: dict[PackagingErrorReason, list[str]] = {}
    for name, attrs in graph.nodes.items():
        if attrs.get("error") is not None:
            by_reason.setdefault(attrs["error"], []).append(name)
    lines = [""]
    for reason, names in by_reason.items():
        lines.append(f"* {reason.value}")
        for name in names:
            lines.append(f"    {name}")
            context = graph.nodes[name].get("error_context")
            if context is not None:
                lines.append(f"      Context: {context}")
            if name in DISALLOWED_MODULES:
                lines.append(
                    "      Note: While we usually use modules in the python standard library "
                    f"from the local environment, `{name}` has a lot of system level access and "
                    "therefore can pose a security risk. We heavily recommend removing "
                    f"`{name}` from your packaged code. However, if that is not possible, add it "
                    f'to the extern list by calling PackageExporter.extern("`{name}`")'
                )
            if debug:
                lines.append(f"      Pulled in by: {' -> '.join(graph.first_path(name))}")
    if not debug:
        lines += ["", _DEBUG_FOOTER]
    return "\n".join(lines) + "\n"


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
    """A record's bytes differ from the digest in the package's manifest, or the manifest is
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
