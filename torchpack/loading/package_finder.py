"""One process-wide ``sys.meta_path`` finder that hands a package's imports to its importer.

Packaged code imports with the ``import`` statement through the importer's own
``__import__``, and with ``importlib.import_module`` through the package's ``importlib``
(:mod:`torchpack.loading.package_importlib`). Two kinds of import still reach Python's import
system, and this finder answers them:

- **Mangled names** (``<torch_package_0>.transformers.models``) asked for by that package's
  own code through Python's import machinery: the importer that owns the prefix loads the
  module, exactly as an ``import`` statement in the package would. Code outside the package
  (another package, or torch.package's exporter probing a name) is not served: a package's
  modules reach the rest of the process only as objects it hands out.
- **A package's file run under its real name.** transformers runs its own ``__init__.py`` by
  path (``direct_transformers_import``: ``spec_from_file_location("transformers", ...)``), so
  that code has Python's ``__import__`` and real names. Its imports of modules the package
  holds come from the package; Python registers them under their real names, which the
  importer gives back once the package's code has run.

It also answers ``importlib.metadata`` for packaged code: the distributions a package carries
(:mod:`torchpack.loading.distributions`) are found first by that code, and only by it.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
import threading
import types
import weakref
from collections.abc import Iterable, Sequence
from importlib.metadata import Distribution, DistributionFinder
from typing import Any, Protocol

from .._mangling import demangle, get_mangle_prefix, is_mangled

_IMPORT_SYSTEM = frozenset(
    {"importlib", "importlib._bootstrap", "importlib._bootstrap_external", __name__}
)


class PackageOwner(Protocol):
    """What the finder needs of a :class:`~torchpack.PackageImporter`."""

    def import_module(self, name: str, package: str | None = None) -> types.ModuleType: ...

    def provides(self, name: str) -> bool: ...

    def files_folder(self) -> str | None: ...

    def find_distributions(self, name: str | None) -> Iterable[Distribution]: ...


_owners: weakref.WeakValueDictionary[str, PackageOwner] = weakref.WeakValueDictionary()
_install_lock = threading.Lock()


def register(prefix: str, owner: PackageOwner) -> None:
    """Route ``<prefix>.*`` imports to ``owner`` for as long as it lives."""
    _owners[prefix] = owner
    with _install_lock:
        if not any(isinstance(finder, PackageFinder) for finder in sys.meta_path):
            # First: a path finder further down would find the files of an extracted package
            # through its real __path__ and load them under the mangled name, bypassing the
            # package's own import rules.
            sys.meta_path.insert(0, PackageFinder())


class _PackagedModuleLoader:
    """Lets the owning importer load the module, which then keeps its own ``__spec__``."""

    def __init__(self, owner: PackageOwner, name: str) -> None:
        self._owner = owner
        self._name = name
        self._spec: Any = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = self._owner.import_module(self._name)
        self._spec = getattr(module, "__spec__", None)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        # The importer ran the module's code already; importlib replaced its spec with ours.
        if self._spec is not None:
            module.__spec__ = self._spec


class _PrefixLoader:
    """An empty package standing for an importer's prefix, the parent of its top-level modules."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        pass


class PackageFinder:
    """The ``sys.meta_path`` entry for every :class:`~torchpack.PackageImporter` of the process."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not _owners:
            return None
        if is_mangled(fullname):
            prefix = get_mangle_prefix(fullname)
            owner = _owners.get(prefix)
            if owner is None or not _runs_code_of(_importing_code(), prefix, owner):
                return None
            name = demangle(fullname)
            if not name:
                # `<torch_package_0>` itself: Python imports it before the package's modules.
                return importlib.machinery.ModuleSpec(fullname, _PrefixLoader(), is_package=True)
            return importlib.machinery.ModuleSpec(fullname, _PackagedModuleLoader(owner, name))
        owner = _owner_of_folders(path) if path else _owner_of_file(_importing_code())
        if owner is None or not owner.provides(fullname):
            return None
        return importlib.machinery.ModuleSpec(fullname, _PackagedModuleLoader(owner, fullname))

    def find_distributions(
        self,
        context: DistributionFinder.Context = DistributionFinder.Context(),  # noqa: B008
    ) -> Iterable[Distribution]:
        owner = _calling_package()
        if owner is None:
            return ()
        return owner.find_distributions(context.name)

    def invalidate_caches(self) -> None:
        """Nothing cached: ``importlib.invalidate_caches`` calls this on every finder."""


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)


def _owner_of_folders(folders: Sequence[str]) -> PackageOwner | None:
    """The package whose extracted files hold one of ``folders`` (a parent's ``__path__``)."""
    for owner in list(_owners.values()):
        root = owner.files_folder()
        if root is not None and any(_is_within(str(folder), root) for folder in folders):
            return owner
    return None


def _importing_code() -> dict[str, Any]:
    """The globals of the code that asked for the import: the innermost frame outside the
    import machinery."""
    frame = sys._getframe(2)
    while frame.f_back is not None and frame.f_globals.get("__name__") in _IMPORT_SYSTEM:
        frame = frame.f_back
    return frame.f_globals


def _runs_code_of(caller: dict[str, Any], prefix: str, owner: PackageOwner) -> bool:
    """Whether ``caller`` is a module of the package ``prefix`` names, or one of its files."""
    name = caller.get("__name__")
    if isinstance(name, str) and get_mangle_prefix(name) == prefix:
        return True
    return _owner_of_file(caller) is owner


def _owner_of_file(caller: dict[str, Any]) -> PackageOwner | None:
    """The package whose file, run under its real name, is ``caller`` (if that is the case)."""
    file_name = caller.get("__file__")
    if not isinstance(file_name, str) or is_mangled(caller.get("__name__") or ""):
        return None
    for owner in list(_owners.values()):
        root = owner.files_folder()
        if root is not None and _is_within(file_name, root):
            return owner
    return None


def _calling_package() -> PackageOwner | None:
    """The importer whose code is asking: the innermost frame that runs a packaged module."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if isinstance(name, str) and is_mangled(name):
            return _owners.get(get_mangle_prefix(name))
        frame = frame.f_back
    return None
