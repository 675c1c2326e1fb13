"""torchpack: hermetic, reproducible packages of PyTorch models, compatible with torch.package.

Importing ``torchpack`` imports nothing else: each name loads its module when first used, so
``import torchpack`` costs no time, tools that only look inside archives never import torch,
and ``python -m torchpack build`` restarts under a fixed hash seed before doing any work.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

    from .analysis.glob_group import GlobGroup
    from .analyze.is_from_package import is_from_package
    from .errors import (
        ArchiveError,
        EmptyMatchError,
        IntegrityError,
        IntegrityWarning,
        MalformedArchiveError,
        MissingModuleError,
        PackagingError,
        UnsafeGlobalError,
    )
    from .file_structure_representation import Directory
    from .importer import (
        Importer,
        ObjMismatchError,
        ObjNotFoundError,
        OrderedImporter,
        sys_importer,
    )
    from .package_exporter import PackageExporter
    from .package_importer import PackageImporter

__version__ = "0.1.0"

# public name -> the module defining it
_LAZY = {
    "ArchiveError": "torchpack.errors",
    "Directory": "torchpack.file_structure_representation",
    "EmptyMatchError": "torchpack.errors",
    "GlobGroup": "torchpack.analysis.glob_group",
    "Importer": "torchpack.importer",
    "IntegrityError": "torchpack.errors",
    "IntegrityWarning": "torchpack.errors",
    "MalformedArchiveError": "torchpack.errors",
    "MissingModuleError": "torchpack.errors",
    "ObjMismatchError": "torchpack.importer",
    "ObjNotFoundError": "torchpack.importer",
    "OrderedImporter": "torchpack.importer",
    "PackageExporter": "torchpack.package_exporter",
    "PackageImporter": "torchpack.package_importer",
    "PackagingError": "torchpack.errors",
    "UnsafeGlobalError": "torchpack.errors",
    "is_from_package": "torchpack.analyze.is_from_package",
    "sys_importer": "torchpack.importer",
}

__all__ = [
    "ArchiveError",
    "Directory",
    "EmptyMatchError",
    "GlobGroup",
    "Importer",
    "IntegrityError",
    "IntegrityWarning",
    "MalformedArchiveError",
    "MissingModuleError",
    "ObjMismatchError",
    "ObjNotFoundError",
    "OrderedImporter",
    "PackageExporter",
    "PackageImporter",
    "PackagingError",
    "UnsafeGlobalError",
    "is_from_package",
    "sys_importer",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'torchpack' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
