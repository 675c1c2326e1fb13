"""Finding a module's source code, from the running Python or from a loaded package.

For the running Python the module is located as :func:`importlib.util.find_spec` would, and
its file read from disk: a module that is only referenced (externed, mocked, or checked for
existence) is not imported. Neither are its parents when their code cannot change where
their submodules are found (it mentions neither ``__path__`` nor ``sys.modules``): a
package's submodules are looked up in its folders directly, and a plain module has none.
Other parents are imported, as ``find_spec`` does.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import os
import sys
import types
from dataclasses import dataclass

from ..errors import PackagingErrorReason
from ..importer import Importer, sys_importer


@dataclass(frozen=True, slots=True)
class ModuleSource:
    """What packaging a module needs: its source bytes and whether it is a package.

    ``source`` is None for a namespace package (a folder without ``__init__.py``); ``problem``
    says why a module cannot be interned.
    """

    name: str
    is_package: bool
    source: bytes | None = None
    origin: str | None = None
    problem: PackagingErrorReason | None = None


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
            # A package may install a submodule as an attribute without a findable spec; an
            # attribute that merely holds some other module (`from logging import ...` kept
            # as `pkg.logging`) is not a submodule.
            parent, _, child = name.rpartition(".")
            attribute = getattr(sys.modules.get(parent), child, None) if parent else None
            return isinstance(attribute, types.ModuleType) and attribute.__name__ == name
        try:
            self.importer.import_module(name)
        except Exception:
            return False
        return True

    def locate(self, name: str) -> ModuleSource:
        """Find ``name``'s source; raises ``ImportError`` if the module does not exist."""
        if name == "__main__" and self._uses_sys_path:
            return _main_source(sys.modules["__main__"])
        spec = _spec_of(name) if self._uses_sys_path else None
        if spec is not None:
            return _source_of(name, spec, spec.origin if spec.has_location else None)
        module = self.importer.import_module(name)
        spec = getattr(module, "__spec__", None)
        if spec is None:
            spec = importlib.machinery.ModuleSpec(
                name, None, is_package=hasattr(module, "__path__")
            )
        return _source_of(name, spec, getattr(module, "__file__", None))


def _main_source(main: types.ModuleType) -> ModuleSource:
    """The running script, saved as the module ``__main__``: pickles of what it defines name
    ``__main__``, and the package provides it. Code run by ``python -c``, a notebook or the
    interactive prompt has no file to save."""
    file_name = getattr(main, "__file__", None)
    if not isinstance(file_name, str) or not file_name.endswith(".py"):
        return ModuleSource("__main__", False, problem=PackagingErrorReason.DEFINED_IN_MAIN)
    return _read_source_file("__main__", False, file_name)


def _source_of(
    name: str, spec: importlib.machinery.ModuleSpec, filename: str | None
) -> ModuleSource:
    """The source of module ``name``, read through its loader where it can say where the
    file is (a loader may remap files), else from ``filename``, the file the module came
    from (pytest's assertion-rewriting loader has neither ``get_filename`` nor
    ``get_source``)."""
    is_package = spec.submodule_search_locations is not None
    loader = spec.loader
    get_filename = getattr(loader, "get_filename", None)
    if get_filename is not None:
        try:
            filename = get_filename(name)
        except ImportError:
            pass
    if isinstance(loader, importlib.machinery.ExtensionFileLoader) or (
        filename is not None and filename.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    ):
        return ModuleSource(
            name, is_package, origin=filename, problem=PackagingErrorReason.IS_EXTENSION_MODULE
        )
    # Raw bytes, not decoded text: a coding cookie must keep matching the bytes it describes.
    get_data = getattr(loader, "get_data", None)
    if filename is not None and get_data is not None:
        try:
            return ModuleSource(name, is_package, get_data(filename), origin=filename)
        except OSError:
            pass
    get_source = getattr(loader, "get_source", None)
    try:
        text = get_source(name) if get_source is not None else None
    except Exception:  # loaders of other libraries fail in their own ways; no source
        text = None
    if text is not None:
        return ModuleSource(name, is_package, text.encode("utf-8"), origin=filename)
    if filename is not None and filename.endswith(tuple(importlib.machinery.SOURCE_SUFFIXES)):
        return _read_source_file(name, is_package, filename)
    if is_package:
        # A package without source of its own, like a namespace package.
        return ModuleSource(name, True, origin=filename)
    if filename is None or spec.origin in ("built-in", "frozen"):
        return ModuleSource(name, False, problem=PackagingErrorReason.NO_DUNDER_FILE)
    return ModuleSource(
        name, False, origin=filename, problem=PackagingErrorReason.SOURCE_FILE_NOT_FOUND
    )


# Compiled libraries that code may load by path (ctypes, torch.ops.load_library, a loader of
# its own), beside Python's own extension suffixes.
_LIBRARY_SUFFIXES = (*importlib.machinery.EXTENSION_SUFFIXES, ".so", ".dylib", ".dll")


@functools.cache
def _libraries_in(folder: str) -> tuple[str, ...]:
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return ()
    return tuple(name for name in names if name.endswith(_LIBRARY_SUFFIXES) or ".so." in name)


def libraries_beside(source: ModuleSource) -> tuple[str, ...]:
    """The compiled libraries in the folder of ``source``'s file, if its code looks for files
    beside itself (mentions ``__file__``): a package holds none of them, so such code (as
    torchvision's extension module, which loads its operators from _C.so) finds them missing.
    """
    if source.origin is None or source.source is None or b"__file__" not in source.source:
        return ()
    return _libraries_in(os.path.dirname(source.origin))


def _read_source_file(name: str, is_package: bool, filename: str) -> ModuleSource:
    try:
        with open(filename, "rb") as f:
            return ModuleSource(name, is_package, f.read(), origin=filename)
    except OSError:
        return ModuleSource(
            name, is_package, origin=filename, problem=PackagingErrorReason.SOURCE_FILE_NOT_FOUND
        )
