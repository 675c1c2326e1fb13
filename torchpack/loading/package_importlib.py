"""The ``importlib`` that packaged code sees: ``import_module`` imports as ``import`` does there.

Inside a package, ``import transformers.models.bert`` gives the package's module (the
importer's ``__import__`` serves it). Libraries also import by name at run time:
transformers' auto classes call ``importlib.import_module(".bert", "transformers.models")``,
its lazy modules ``importlib.import_module(".models", "<torch_package_0>.transformers")``.
Through the real ``importlib`` those would give the installed library, or nothing. So a
package's code gets this module instead of ``importlib``: its ``import_module`` resolves the
name, takes it from the package when the package holds or externs it, and otherwise asks the
real ``importlib`` (as the package's code did before: modules it never declared still come
from the environment). Everything else (``importlib.util``, ``importlib.metadata``, ...) is
the real ``importlib``'s.
"""

from __future__ import annotations

import importlib
import types
from typing import Any, Protocol

from .._importlib import _resolve_name


class _Importer(Protocol):
    def _gcd_import(self, name: str, package: str | None = None, level: int = 0) -> Any: ...

    def demangle(self, name: str) -> str: ...

    def declares(self, name: str) -> bool: ...


class PackageImportlib(types.ModuleType):
    """``importlib`` for one package's code."""

    def __init__(self, importer: _Importer) -> None:
        super().__init__("importlib", importlib.__doc__)
        self._importer = importer
        self.__path__ = importlib.__path__
        self.__spec__ = importlib.__spec__
        self.__file__ = importlib.__file__

    def import_module(self, name: str, package: str | None = None) -> Any:
        """Import ``name`` (relative to ``package`` if it starts with dots) as the package's
        own ``import`` statement would."""
        level = len(name) - len(name.lstrip("."))
        if level:
            if not package:
                raise TypeError(
                    f"the 'package' argument is required to perform a relative import for {name!r}"
                )
            absolute = _resolve_name(name[level:], self._importer.demangle(package), level)
        else:
            absolute = self._importer.demangle(name)
        if self._importer.declares(absolute):
            return self._importer._gcd_import(absolute)
        return importlib.import_module(name, package)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib, attribute)
