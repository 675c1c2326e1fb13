"""torchpack: hermetic, reproducible packages of PyTorch models, compatible with torch.package.

Importing ``torchpack`` does not import torch: the names that need it (``PackageExporter``,
``PackageImporter``) load it when first used, so tools that only look inside archives start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from .importer import Importer, ObjMismatchError, ObjNotFoundError, OrderedImporter, sys_importer

if TYPE_CHECKING:
    from .package_exporter import PackageExporter
    from .package_importer import PackageImporter

__version__ = "0.1.0"

_LAZY = {
    "PackageExporter": "torchpack.package_exporter",
    "PackageImporter": "torchpack.package_importer",
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
