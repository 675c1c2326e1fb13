"""Names and layout of the records in a package archive (the format torch.package writes).

A package is a ZIP written by PyTorch's serializer: every record is stored uncompressed and
64-byte aligned, under one top-level folder named after the archive file. Inside it::

    .data/version            format version ("6")
    .data/extern_modules     one externed module per line
    .data/python_version     version of the Python that wrote the package
    .data/<key>.storage      raw bytes of one tensor storage
    .data/manifest.sha256    torchpack only: sha256 of every other record (``sha256sum`` format)
    <package>/<resource>     user files; interned modules as <a>/<b>.py or <a>/<b>/__init__.py
    <name>-<version>.dist-info/METADATA
                             torchpack only: the metadata of each interned library's distribution
"""

from __future__ import annotations

import posixpath

FORMAT_VERSION = 6
VERSION_RECORD = ".data/version"
EXTERN_MODULES_RECORD = ".data/extern_modules"
PYTHON_VERSION_RECORD = ".data/python_version"
MANIFEST_RECORD = ".data/manifest.sha256"
# PyTorch's writer adds these when it closes the archive, after the manifest is written; they
# are checked by their content rules instead of a digest.
BYTEORDER_RECORD = "byteorder"
SERIALIZATION_ID_RECORD = ".data/serialization_id"
WRITER_TRAILER_RECORDS = (VERSION_RECORD, BYTEORDER_RECORD, SERIALIZATION_ID_RECORD)
# The range of .data/version that PyTorch 2.x reads (caffe2/serialize/versions.h).
MIN_READABLE_VERSION = 1
MAX_READABLE_VERSION = 10
# Modules a package provides at load time rather than as interned source: the importer
# itself, and the support module that every mocked module's stub imports.
IMPORTER_MODULE = "torch_package_importer"
MOCK_SUPPORT_MODULE = "_mock"
MOCK_SUPPORT_RECORD = f"{MOCK_SUPPORT_MODULE}.py"
DIST_INFO_SUFFIX = ".dist-info"


def storage_record(key: str) -> str:
    return f".data/{key}.storage"


def resource_record(package: str, resource: str) -> str:
    """Where ``resource`` of ``package`` lives: ``("my.pkg", "a.txt")`` -> ``my/pkg/a.txt``."""
    if not resource or "/" in resource or "\\" in resource or resource in (".", ".."):
        raise ValueError(
            f"resource {resource!r} must be a plain file name; put it in a sub-package "
            f"instead, e.g. package={package + '.folder'!r}"
        )
    folder = package.replace(".", "/")
    return f"{folder}/{resource}" if folder else resource


def source_record(module_name: str, is_package: bool) -> str:
    path = module_name.replace(".", "/")
    return f"{path}/__init__.py" if is_package else f"{path}.py"


def metadata_record(normalized_name: str, version: str) -> str:
    """Where a distribution's ``METADATA`` goes, as site-packages names it."""
    return f"{normalized_name}-{version}{DIST_INFO_SUFFIX}/METADATA"


def module_for_record(record: str) -> tuple[str, bool] | None:
    """``a/b.py`` -> ``("a.b", False)``, ``a/__init__.py`` -> ``("a", True)``, else None."""
    if not record.endswith(".py") or record.startswith(".data/"):
        return None
    folder, file_name = posixpath.split(record[:-3])
    if file_name == "__init__":
        return (folder.replace("/", "."), True) if folder else None
    return (posixpath.join(folder, file_name).replace("/", "."), False)
