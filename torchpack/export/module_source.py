"""Finding a module's source code, from the running Python or from a loaded package.

For the running Python the module is located as :func:`importlib.util.find_spec` would, and
its file read from disk: a module that is only referenced (externed, mocked, or checked for
existence) is not imported. Neither are its parents when their code cannot change where
their submodules are found (it mentions neither ``__path__`` nor ``sys.modules``): a
package's submodules are looked up in its folders directly, and a plain module has none.
Other parents are imported, as ``find_spec`` does.
"""

from __future__ import annotations

import enum
import functools
import importlib.machinery
import importlib.util
import sys
import types
from dataclasses import dataclass

from ..importer import Importer, sys_importer


class SourceProblem(enum.Enum):
    EXTENSION_MODULE = (
        "Module is a C extension module; only Python source can be interned. Extern it "
        "(PackageExporter.extern) or mock it."
    )
    NO_SOURCE_FILE = (
        "Module has no source file (__file__ is not set: built-in, frozen or created at run "
        "time). Extern it or mock it."
    )
    SOURCE_FILE_NOT_FOUND = (
        "Module has a __file__, but its source could not be read. Reinstall it from source or "
        "extern it."
    )
    DEFINED_IN_MAIN = (
        "Object is defined in __main__, which cannot be packaged. Move its definition into a "
        "module of its own and import it from there."
    )


@dataclass(frozen=True)
class ModuleSource:
    """What packaging a module needs: its source bytes and whether it is a package.

    ``source`` is None for a namespace package (a folder without ``__init__.py``); ``problem``
    says why a module cannot be interned.
    """

    name: str
    is_package: bool
    source: bytes | None = None
    origin: str | None = None
    problem: SourceProblem | None = None


def _spec_of(name: str) -> importlib.machinery.ModuleSpec | None:
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__spec__", None)
    parent = name.rpartition(".")[0]
    if parent and parent not in sys.modules:
        parent_spec = _spec_of(parent)
        if parent_spec is None:
            return None
        if _submodules_stay_in_folders(parent_spec):
            folders = parent_spec.submodule_search_locations
            # A plain module has no submodules unless its code installs some (os.path).
            return None if folders is None else _find_in(name, folders)
    try:
        return importlib.util.find_spec(name)
    except Exception:
        # find_spec runs the parent packages' __init__; whatever they raise, the module
        # cannot be found this way.
        return None


# Words in a module's code that may put submodules where its folders do not say.
_PATH_CHANGERS = (b"__path__", b"sys.modules", b"extend_path", b"declare_namespace")


@functools.cache
def _may_move_submodules(source_file: str) -> bool:
    try:
        with open(source_file, "rb") as f:
            source = f.read()
    except OSError:
        return True
    return any(word in source for word in _PATH_CHANGERS)


def _submodules_stay_in_folders(spec: importlib.machinery.ModuleSpec) -> bool:
    """Whether ``spec``'s submodules are only those in its folders (none for a plain module),
    so that they can be found without running its code."""
    return isinstance(spec.loader, importlib.machinery.SourceFileLoader) and not (
        _may_move_submodules(spec.loader.path)
    )


def _find_in(name: str, folders: list[str]) -> importlib.machinery.ModuleSpec | None:
    """What importing ``name`` would find, its parent being a package over ``folders``."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        spec = find_spec(name, folders, None) if find_spec is not None else None
        if spec is not None:
            return spec
    return None


class ModuleLocator:
    """Answers "does this module exist?" and "what is its source?" for one importer."""

    def __init__(self, importer: Importer) -> None:
        self.importer = importer
        self._uses_sys_path = importer is sys_importer

    def exists(self, name: str) -> bool:
        if name == "__main__":
            return True
        if self._uses_sys_path:
            if _spec_of(name) is not None:
                return True
            # Modules that packages install as attributes (os.path) have no findable spec.
            parent, _, child = name.rpartition(".")
            parent_module = sys.modules.get(parent) if parent else None
            return isinstance(getattr(parent_module, child, None), types.ModuleType)
        try:
            self.importer.import_module(name)
        except Exception:
            return False
        return True

    def locate(self, name: str) -> ModuleSource:
        """Find ``name``'s source; raises ``ImportError`` if the module does not exist."""
        if name == "__main__":
            return ModuleSource(name, False, problem=SourceProblem.DEFINED_IN_MAIN)
        spec = _spec_of(name) if self._uses_sys_path else None
        if spec is None:
            module = self.importer.import_module(name)
            return self._from_module(name, module)
        return self._from_spec(name, spec)

    def _from_spec(self, name: str, spec: importlib.machinery.ModuleSpec) -> ModuleSource:
        is_package = spec.submodule_search_locations is not None
        loader = spec.loader
        if loader is None or spec.origin in (None, "namespace"):
            if is_package:
                return ModuleSource(name, True)
            return ModuleSource(name, False, problem=SourceProblem.NO_SOURCE_FILE)
        if isinstance(loader, importlib.machinery.ExtensionFileLoader):
            return ModuleSource(
                name, is_package, origin=spec.origin, problem=SourceProblem.EXTENSION_MODULE
            )
        if isinstance(loader, importlib.machinery.SourceFileLoader):
            return _read_source_file(name, is_package, loader.path)
        return self._from_loader(name, loader, is_package, spec.origin)

    def _from_module(self, name: str, module: types.ModuleType) -> ModuleSource:
        is_package = hasattr(module, "__path__")
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is not None:
            return self._from_spec(name, spec)
        filename = getattr(module, "__file__", None)
        if filename is None:
            if is_package:
                return ModuleSource(name, True)
            return ModuleSource(name, False, problem=SourceProblem.NO_SOURCE_FILE)
        if filename.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            return ModuleSource(
                name, is_package, origin=filename, problem=SourceProblem.EXTENSION_MODULE
            )
        return _read_source_file(name, is_package, filename)

    @staticmethod
    def _from_loader(
        name: str, loader: object, is_package: bool, origin: str | None
    ) -> ModuleSource:
        get_source = getattr(loader, "get_source", None)
        try:
            text = get_source(name) if get_source is not None else None
        except Exception:  # loaders of other libraries fail in their own ways; no source
            text = None
        if text is not None:
            return ModuleSource(name, is_package, text.encode("utf-8"), origin=origin)
        if is_package:
            # A package without source of its own, like a namespace package.
            return ModuleSource(name, True, origin=origin)
        return ModuleSource(name, False, origin=origin, problem=SourceProblem.NO_SOURCE_FILE)


def _read_source_file(name: str, is_package: bool, filename: str) -> ModuleSource:
    # Raw bytes, not decoded text: a coding cookie must keep matching the bytes it describes.
    try:
        with open(filename, "rb") as f:
            return ModuleSource(name, is_package, f.read(), origin=filename)
    except OSError:
        return ModuleSource(
            name, is_package, origin=filename, problem=SourceProblem.SOURCE_FILE_NOT_FOUND
        )
