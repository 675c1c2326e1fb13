"""Module environments that the exporter resolves objects and modules against.

An :class:`Importer` answers two questions for the pickler: "which module is this object
from?" and "import that module". :data:`sys_importer` is the running Python process; a
:class:`~torchpack.PackageImporter` is one loaded package; an :class:`OrderedImporter` asks a
list of them in turn, which is how objects loaded from one package are saved into another.
"""

from __future__ import annotations

import importlib
import pickle
import types
from abc import ABC, abstractmethod
from typing import Any

from ._mangling import demangle, get_mangle_prefix, is_mangled


class ObjNotFoundError(Exception):
    """The object cannot be found under the module and name that would pickle it."""


class ObjMismatchError(Exception):
    """The module and name that would pickle an object lead to a different object."""


def _lookup_qualname(module: types.ModuleType, qualname: str) -> Any:
    obj: Any = module
    for part in qualname.split("."):
        if part == "<locals>":
            raise AttributeError(f"{qualname} is local to a function and cannot be found by name")
        obj = getattr(obj, part)
    return obj


def _describe_origin(module_name: str) -> tuple[str, str]:
    if is_mangled(module_name):
        prefix = get_mangle_prefix(module_name)
        return prefix, f"the importer for {prefix}"
    return "the current Python environment", "'sys_importer'"


class Importer(ABC):
    """A module environment: imports modules and names the module an object belongs to."""

    modules: dict[str, types.ModuleType]

    @abstractmethod
    def import_module(self, module_name: str) -> types.ModuleType:
        """Import ``module_name`` (possibly mangled) from this environment."""

    def get_name(self, obj: Any, name: str | None = None) -> tuple[str, str]:
        """Return ``(module, qualname)`` under which this environment finds ``obj``.

        Raises :class:`ObjNotFoundError` if nothing is found under that name, and
        :class:`ObjMismatchError` if a different object is.
        """
        if name is None:
            name = _reduce_name(obj)
        if name is None:
            name = getattr(obj, "__qualname__", None) or obj.__name__
        owner = self.whichmodule(obj, name)
        module_name = demangle(owner)
        try:
            found = _lookup_qualname(self.import_module(module_name), name)
        except (ImportError, AttributeError) as err:
            raise ObjNotFoundError(f"{obj} was not found as {module_name}.{name}: {err}") from None
        if found is obj:
            return module_name, name

        expected_location, expected_importer = _describe_origin(owner)
        found_location, found_importer = _describe_origin(self.whichmodule(found, name))
        raise ObjMismatchError(
            f"The object provided is from '{owner}', which is coming from {expected_location}. "
            f"However, when we import '{module_name}', it's coming from {found_location}. "
            f"To fix this, make sure this PackageExporter's importer lists {expected_importer} "
            f"before {found_importer}."
        )

    def whichmodule(self, obj: Any, name: str) -> str:
        """The module ``obj`` claims to live in, else the loaded module that holds it."""
        module_name = getattr(obj, "__module__", None)
        if module_name is not None:
            return module_name
        for module_name, module in list(getattr(self, "modules", {}).items()):
            if module_name in ("__main__", "__mp_main__") or module is None:
                continue
            try:
                if _lookup_qualname(module, name) is obj:
                    return module_name
            except AttributeError:
                pass
        return "__main__"


def _reduce_name(obj: Any) -> str | None:
    # Singletons pickle by name: their __reduce__ returns the global name as a string.
    if obj is None or type(obj) in pickle._Pickler.dispatch:  # type: ignore[attr-defined]
        return None
    reduce = getattr(obj, "__reduce__", None)
    if reduce is None:
        return None
    try:
        reduced = reduce()
    except Exception:
        return None
    return reduced if isinstance(reduced, str) else None


class _SysImporter(Importer):
    """The running Python process's own import system."""

    def import_module(self, module_name: str) -> types.ModuleType:
        return importlib.import_module(module_name)

    def whichmodule(self, obj: Any, name: str) -> str:
        module_name = getattr(obj, "__module__", None)
        if module_name is not None:
            return module_name
        return pickle.whichmodule(obj, name)

    def __repr__(self) -> str:
        return "sys_importer"


sys_importer: Importer = _SysImporter()


class _ForeignImporter(Importer):
    """Another library's importer (torch.package's ``PackageImporter`` or ``sys_importer``).

    Only its ``import_module`` and ``modules`` are used; names are found and checked the
    same way as for torchpack's own importers, so error messages do not depend on its origin.
    """

    def __init__(self, importer: Any) -> None:
        self._importer = importer

    @property
    def modules(self) -> dict[str, types.ModuleType]:  # type: ignore[override]
        return getattr(self._importer, "modules", None) or {}

    def import_module(self, module_name: str) -> types.ModuleType:
        return self._importer.import_module(module_name)

    def whichmodule(self, obj: Any, name: str) -> str:
        module_name = getattr(obj, "__module__", None)
        if module_name is None and not self.modules:
            return pickle.whichmodule(obj, name)
        return super().whichmodule(obj, name)

    def __repr__(self) -> str:
        return repr(self._importer)


def as_importer(importer: Any) -> Importer:
    """``importer`` as a torchpack :class:`Importer`; anything with ``import_module`` works."""
    if isinstance(importer, Importer):
        return importer
    if callable(getattr(importer, "import_module", None)):
        return _ForeignImporter(importer)
    raise TypeError(
        f"{importer!r} is not an importer: pass sys_importer, a PackageImporter (torchpack's "
        "or torch.package's), or an object with an import_module(name) method"
    )


class OrderedImporter(Importer):
    """Tries several importers in order; the first one that succeeds wins."""

    def __init__(self, *importers: Any) -> None:
        self._importers = [as_importer(importer) for importer in importers]

    @staticmethod
    def _is_placeholder_package(module: types.ModuleType) -> bool:
        # A package has a source-less placeholder for `a` when only `a.b` was interned; a
        # later importer may hold the real `a`.
        return (
            getattr(module, "__torch_package__", False)
            and hasattr(module, "__path__")
            and getattr(module, "__file__", None) is None
        )

    def import_module(self, module_name: str) -> types.ModuleType:
        last_error: ModuleNotFoundError | None = None
        for importer in self._importers:
            try:
                module = importer.import_module(module_name)
            except ModuleNotFoundError as err:
                last_error = err
                continue
            if not self._is_placeholder_package(module):
                return module
        raise last_error or ModuleNotFoundError(
            f"No module named '{module_name}'", name=module_name
        )

    def get_name(self, obj: Any, name: str | None = None) -> tuple[str, str]:
        failures = []
        for importer in self._importers:
            try:
                return importer.get_name(obj, name)
            except (ObjNotFoundError, ObjMismatchError) as err:
                failures.append(f"{importer!r}: {err}")
        raise ObjNotFoundError(
            f"Could not find {obj!r} (name {name!r}) in any of the importers:\n  "
            + "\n  ".join(failures)
        )

    def whichmodule(self, obj: Any, name: str) -> str:
        for importer in self._importers:
            module_name = importer.whichmodule(obj, name)
            if module_name != "__main__":
                return module_name
        return "__main__"

    def __repr__(self) -> str:
        return f"OrderedImporter({', '.join(map(repr, self._importers))})"
