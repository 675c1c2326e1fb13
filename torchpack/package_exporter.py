"""``PackageExporter``: writes code, pickled objects and resources into a package archive."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import torch

from . import _mock
from ._mangling import demangle, is_mangled
from .analysis.glob_group import GlobGroup, GlobPattern
from .analysis.module_analysis import AnalysisCache, ModuleAnalyzer
from .archive.format import (
    EXTERN_MODULES_RECORD,
    MOCK_SUPPORT_RECORD,
    PYTHON_VERSION_RECORD,
    resource_record,
    source_record,
)
from .archive.writer import ArchiveWriter
from .errors import EmptyMatchError, PackagingError, PackagingErrorReason
from .export.dependency_resolver import DependencyResolver
from .export.distribution_metadata import metadata_records, site_folder
from .export.hooks import ActionHook, ActionHooks, HookHandle
from .export.module_actions import ModuleAction
from .export.module_source import ModuleSource
from .export.pickler import dumps
from .export.script_records import ScriptRecords
from .export.storages import STORAGE_TYPES, StorageSaver
from .importer import Importer, OrderedImporter, as_importer, sys_importer

__all__ = ["EmptyMatchError", "PackageExporter", "PackagingError", "PackagingErrorReason"]

# torch.package refuses ScriptModules unless this is False (a beta gate there). TorchScript is
# supported here, so the gate is open by default; code that sets it keeps working.
_gate_torchscript_serialization = False


class PackageExporter:
    """Writes a self-contained package: pickled objects, the code they need, and resources.

    Use it as a context manager; the archive is written when the block ends without error::

        with PackageExporter("model.pt") as exporter:
            exporter.intern("my_models.**")
            exporter.extern("numpy.**")
            exporter.save_pickle("model", "model.pkl", model)

    Modules found while saving are interned, externed, mocked or denied by the first pattern
    that matches them, in the order the patterns were declared. The standard library and
    ``torch`` are always extern.
    """

    def __init__(
        self,
        f: str | os.PathLike[str] | IO[bytes],
        importer: Importer | Sequence[Importer] = sys_importer,
        debug: bool = False,
        analysis_cache: ModuleAnalyzer | str | os.PathLike[str] | None = None,
        *,
        integrity_manifest: bool = True,
        progress: bool | None = None,
    ) -> None:
        """Start a package at ``f``: a path (written atomically at the end) or a binary file.

        ``importer`` is where modules and objects are looked up (a sequence becomes an
        :class:`OrderedImporter`). ``debug=True`` adds to a :class:`PackagingError` the chain
        of imports behind each broken module.
        ``analysis_cache`` (an :class:`AnalysisCache`, its folder, or precomputed analyses)
        lets repeated exports reuse each module's import analysis instead of parsing it again.
        ``integrity_manifest=False`` skips ``.data/manifest.blake3`` (one BLAKE3 pass over the
        tensors, in the same second thread as their CRC-32s); loading then checks CRCs.
        ``progress``: records and bytes written, shown on standard error when it is a terminal
        and the export takes more than a few seconds (None); always (True); never (False).
        """
        if isinstance(importer, Sequence):
            self.importer: Importer = OrderedImporter(*importer)
        else:
            self.importer = as_importer(importer)
        self.debug = debug
        self._archive = ArchiveWriter(f, manifest=integrity_manifest, progress=progress)
        self.zip_file = self._archive.zip_file
        self._script_records = ScriptRecords()
        # Used by torch.jit's ScriptModule.__reduce_package__.
        self.script_module_serializer = self._script_records.serializer
        self.storage_context = self._script_records.storage_context
        self._storages = StorageSaver(self._archive.write_storage, self.storage_context)
        if isinstance(analysis_cache, str | os.PathLike):
            analysis_cache = AnalysisCache(analysis_cache)
        self._analysis_cache = analysis_cache
        self._resolver = DependencyResolver(self.importer, analysis_cache)
        self.dependency_graph = self._resolver.graph
        self._hooks = ActionHooks()
        self._reduced: dict[int, tuple[Any, tuple]] = {}
        self._next_unique_id = 0
        self._next_reduce_id = 0
        self._closed = False

    # -- patterns -------------------------------------------------------------------------

    def _add_rule(
        self, action: ModuleAction, include: GlobPattern, exclude: GlobPattern, allow_empty: bool
    ) -> None:
        self._resolver.actions.add(GlobGroup(include, exclude=exclude), action, allow_empty)

    def intern(
        self, include: GlobPattern, *, exclude: GlobPattern = (), allow_empty: bool = True
    ) -> None:
        """Put the source of matching modules in the package (and scan their imports)."""
        self._add_rule(ModuleAction.INTERN, include, exclude, allow_empty)

    def extern(
        self, include: GlobPattern, *, exclude: GlobPattern = (), allow_empty: bool = True
    ) -> None:
        """Leave matching modules to the environment that loads the package."""
        self._add_rule(ModuleAction.EXTERN, include, exclude, allow_empty)

    def mock(
        self, include: GlobPattern, *, exclude: GlobPattern = (), allow_empty: bool = True
    ) -> None:
        """Replace matching modules with stubs whose names raise when used."""
        self._add_rule(ModuleAction.MOCK, include, exclude, allow_empty)

    def deny(self, include: GlobPattern, *, exclude: GlobPattern = ()) -> None:
        """Make the export fail if a matching module is needed."""
        self._add_rule(ModuleAction.DENY, include, exclude, allow_empty=True)

    # -- hooks ----------------------------------------------------------------------------

    def register_intern_hook(self, hook: ActionHook) -> HookHandle:
        """Call ``hook(exporter, module_name)`` for every interned module when closing."""
        return self._hooks.register(ModuleAction.INTERN, hook)

    def register_extern_hook(self, hook: ActionHook) -> HookHandle:
        """Call ``hook(exporter, module_name)`` for every extern module when closing."""
        return self._hooks.register(ModuleAction.EXTERN, hook)

    def register_mock_hook(self, hook: ActionHook) -> HookHandle:
        """Call ``hook(exporter, module_name)`` for every mocked module when closing."""
        return self._hooks.register(ModuleAction.MOCK, hook)

    # -- saving ---------------------------------------------------------------------------

    def save_pickle(
        self,
        package: str,
        resource: str,
        obj: Any,
        dependencies: bool = True,
        pickle_protocol: int = 3,
    ) -> None:
        """Pickle ``obj`` as ``package/resource``; tensors' storages go to ``.data/``."""
        if pickle_protocol not in (3, 4):
            raise ValueError(
                f"pickle_protocol must be 3 or 4 (as torch.package), not {pickle_protocol}"
            )
        record = resource_record(package, resource)
        data, references = dumps(
            obj, self.importer, protocol=pickle_protocol, persistent_id=self._persistent_id
        )
        if dependencies:
            self._resolver.require_from_pickle(package, resource, references)
        self._archive.write(record, data)

    def save_text(self, package: str, resource: str, text: str) -> None:
        self._archive.write(resource_record(package, resource), text.encode("utf-8"))

    def save_binary(self, package: str, resource: str, binary: bytes) -> None:
        self._archive.write(resource_record(package, resource), bytes(binary))

    def save_module(self, module_name: str, dependencies: bool = True) -> None:
        """Intern ``module_name`` (found through the importer) whatever the patterns say."""
        if not isinstance(module_name, str):
            raise TypeError(
                "save_module() takes a module name; did you mean to pass module.__name__?"
            )
        # A module loaded from a package is saved under its real name.
        module_name = demangle(module_name)
        _module_record(module_name, is_package=False)
        self._resolver.intern_module(module_name, dependencies)

    def save_source_string(
        self, module_name: str, src: str, is_package: bool = False, dependencies: bool = True
    ) -> None:
        """Add ``src`` to the package as the source of ``module_name``."""
        _module_record(module_name, is_package)
        source = ModuleSource(
            module_name, is_package, src.encode("utf-8"), origin=f"<{module_name}>"
        )
        self._resolver.intern_source(source, dependencies)

    def save_source_file(
        self, module_name: str, file_or_directory: str | os.PathLike[str], dependencies: bool = True
    ) -> None:
        """Add a file as ``module_name``, or a folder as the package ``module_name``."""
        path = Path(file_or_directory)
        if not path.is_dir():
            _module_record(module_name, is_package=False)
            self._resolver.intern_source(
                ModuleSource(module_name, False, path.read_bytes(), origin=str(path)), dependencies
            )
            return
        for file in sorted(path.rglob("*.py")):
            parts = list(file.relative_to(path).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            name = ".".join([module_name, *parts])
            _module_record(name, is_package)
            self._resolver.intern_source(
                ModuleSource(name, is_package, file.read_bytes(), origin=str(file)), dependencies
            )

    def add_dependency(self, module_name: str, dependencies: bool = True) -> None:
        """Require ``module_name`` as if something in the package imported it.

        The patterns decide what happens to it; ``dependencies=False`` does not follow the
        imports of the module itself if it is interned.
        """
        self._resolver.require(module_name, scan_dependencies=dependencies)

    def get_unique_id(self) -> str:
        """An id handed out once per exporter (for ``__reduce_package__`` implementations)."""
        unique_id = str(self._next_unique_id)
        self._next_unique_id += 1
        return unique_id

    def _persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, STORAGE_TYPES):
            return self._storages.persistent_id(obj)
        if isinstance(obj, type) or not hasattr(obj, "__reduce_package__"):
            return None
        if isinstance(obj, torch.jit.ScriptModule):
            if _gate_torchscript_serialization:
                raise Exception(
                    "Serializing ScriptModules directly into a package is gated by "
                    "torchpack.package_exporter._gate_torchscript_serialization; set it to "
                    "False (the default) to allow it."
                )
            # Written straight into the package now; TorchScript then skips them.
            for tensor in obj.state_dict(keep_vars=True).values():
                self._storages.persistent_id(tensor.untyped_storage())
        reduced = self._reduced.get(id(obj))
        if reduced is None:
            # The id in the archive is a counter, not id(obj): archives must not depend on
            # memory addresses. Taken before __reduce_package__ runs, which may save objects
            # of its own; obj is kept alive so that its id() cannot be reused meanwhile.
            reduce_id = self._next_reduce_id
            self._next_reduce_id += 1
            persistent = ("reduce_package", reduce_id, *obj.__reduce_package__(self))
            reduced = self._reduced[id(obj)] = (obj, persistent)
        return reduced[1]

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Resolve every dependency, write the modules, and finish the archive."""
        if self._closed:
            return
        try:
            self._resolver.check(self.debug)
            self._hooks.call(self, self._resolver.module_actions())
            self._write_modules()
            self._archive.write(PYTHON_VERSION_RECORD, platform.python_version())
            self._script_records.copy_into(self._archive.write, self._archive.write_storage)
            self._store_analyses()  # an analysis cache that cannot be written fails the export
            self._archive.commit()
        except BaseException:
            self._abort()
            raise
        finally:
            self._closed = True

    def _write_modules(self) -> None:
        resolver = self._resolver
        libraries: set[tuple[str, str]] = set()
        for name in resolver.modules_with(ModuleAction.INTERN):
            source = resolver.decisions[name].source
            if source is None or source.source is None:
                continue
            self._archive.write(_module_record(name, source.is_package), source.source)
            if source.origin is not None:
                folder = site_folder(name, source.is_package, source.origin)
                if folder is not None:
                    libraries.add((name.partition(".")[0], folder))
        for record, metadata in metadata_records(libraries).items():
            self._archive.write(record, metadata)
        mocked = resolver.modules_with(ModuleAction.MOCK)
        if mocked or resolver.uses_mock_support:
            self._archive.write(MOCK_SUPPORT_RECORD, Path(_mock.__file__).read_bytes())
        for name in mocked:
            source = resolver.decisions[name].source
            is_package = source is not None and source.is_package
            self._archive.write(source_record(name, is_package), _mock.MOCKED_MODULE_SOURCE)
        externs = resolver.modules_with(ModuleAction.EXTERN)
        self._archive.write(EXTERN_MODULES_RECORD, "".join(f"{name}\n" for name in externs))

    def __enter__(self) -> PackageExporter:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        if exc_type is not None:
            self._abort()
            self._closed = True
            return
        self.close()

    def _store_analyses(self) -> None:
        flush = getattr(self._analysis_cache, "flush", None)
        if flush is not None:
            flush()

    def _abort(self) -> None:
        self._archive.abort()
        # The analyses made so far still hold for the next attempt; the export's own error is
        # the one to report.
        with contextlib.suppress(OSError):
            self._store_analyses()

    # -- introspection --------------------------------------------------------------------

    def externed_modules(self) -> list[str]:
        return self._resolver.modules_with(ModuleAction.EXTERN)

    def interned_modules(self) -> list[str]:
        return self._resolver.modules_with(ModuleAction.INTERN)

    def mocked_modules(self) -> list[str]:
        return self._resolver.modules_with(ModuleAction.MOCK)

    def dependency_graph_string(self) -> str:
        """The dependency graph in DOT format (modules and ``<package.resource>`` pickles)."""
        return self.dependency_graph.to_dot()

    def get_rdeps(self, module_name: str) -> list[str]:
        """The modules and pickles that depend on ``module_name`` directly."""
        return self.dependency_graph.predecessors(module_name)

    def all_paths(self, src: str, dst: str) -> str:
        """DOT text of every dependency path from ``src`` to ``dst``."""
        return self.dependency_graph.all_paths(src, dst)

    def denied_modules(self) -> list[str]:
        return sorted(
            n for n, d in self._resolver.decisions.items() if d.action is ModuleAction.DENY
        )


def _module_record(name: str, is_package: bool) -> str:
    """The record of module ``name``'s source; refuses a name the importer could not load."""
    if is_mangled(name):
        raise ValueError(f"refusing to save the mangled module name {name!r}")
    return source_record(name, is_package)  # raises ValueError naming the problem
