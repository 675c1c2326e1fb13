"""Names and layout of the records in a package archive (the format torch.package writes).

A package is a ZIP written by PyTorch's serializer: every record is stored uncompressed and
64-byte aligned, under one top-level folder named after the archive file. Inside it::

    .data/version            format version ("6")
    .data/extern_modules     one externed module per line
    .data/python_version     version of the Python that wrote the package
    .data/<key>.storage      raw bytes of one tensor storage
    .data/manifest.blake3    torchpack only: BLAKE3 of every other record (``b3sum`` format;
                             ``.data/manifest.sha256``, ``sha256sum`` format, before 0.2)
    <package>/<resource>     user files; interned modules as <a>/<b>.py or <a>/<b>/__init__.py
    <name>-<version>.dist-info/METADATA
                             torchpack only: the metadata of each interned library's distribution
"""

from __future__ import annotations

import posixpath
import re

FORMAT_VERSION = 6
VERSION_RECORD = ".data/version"
EXTERN_MODULES_RECORD = ".data/extern_modules"
PYTHON_VERSION_RECORD = ".data/python_version"
MANIFEST_RECORD = ".data/manifest.blake3"
# The manifest of packages written before BLAKE3: still read, never written.
SHA256_MANIFEST_RECORD = ".data/manifest.sha256"
MANIFEST_RECORDS = (MANIFEST_RECORD, SHA256_MANIFEST_RECORD)
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


# Records at the top of the archive that PyTorch's writer or torchpack itself writes.
RESERVED_TOP_RECORDS = frozenset({".data", BYTEORDER_RECORD, "version", MOCK_SUPPORT_RECORD})
RESERVED_MODULES = frozenset({IMPORTER_MODULE, MOCK_SUPPORT_MODULE})
# Deeper than this is no package layout: it only makes every tool that lists records slow.
MAX_RECORD_DEPTH = 256
# Characters no record name may hold: control characters (NUL, newline, \x1c, \x85: what
# str.splitlines splits the manifest on), line and paragraph separators, lone surrogates.
_FORBIDDEN_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\\\\]")


def record_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a record of a package (or a file in it), or None if it can.

    Every reader must find the record under exactly this name: no absolute path, no ``\\``,
    no empty, ``.`` or ``..`` component, no control characters, no absurd nesting.
    """
    if name.startswith("/") or name[1:2] == ":":
        return "is an absolute path"
    forbidden = _FORBIDDEN_CHARACTER.search(name)
    if forbidden is not None:
        return f"contains the character {forbidden.group()!r}"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' component"
    if len(parts) > MAX_RECORD_DEPTH:
        return f"is nested {len(parts)} folders deep (at most {MAX_RECORD_DEPTH})"
    return None


def storage_record(key: str) -> str:
    return f".data/{key}.storage"


def resource_record(package: str, resource: str) -> str:
    """Where ``resource`` of ``package`` lives: ``("my.pkg", "a.txt")`` -> ``my/pkg/a.txt``.

    Raises ``ValueError`` for names the importer would refuse or misread.
    """
    if not isinstance(resource, str) or not resource or "/" in resource:
        raise ValueError(
            f"resource {resource!r} must be a plain file name; put it in a sub-package "
            f"instead, e.g. package={str(package) + '.folder'!r}"
        )
    folder = _package_folder(package, "package")
    record = f"{folder}/{resource}" if folder else resource
    problem = record_name_problem(record)
    if problem is not None:
        raise ValueError(f"resource {resource!r} of package {package!r}: the name {problem}")
    if record in RESERVED_TOP_RECORDS:
        raise ValueError(
            f"resource {resource!r} at the top of the package would replace the record "
            f"{record!r} that PyTorch or torchpack writes; choose another name"
        )
    return record


def source_record(module_name: str, is_package: bool) -> str:
    """The record of a module's source; raises ``ValueError`` for a name no import can reach."""
    if module_name in RESERVED_MODULES:
        raise ValueError(
            f"module name {module_name!r} is the importer's own; a package cannot provide it"
        )
    path = _package_folder(module_name, "module")
    return f"{path}/__init__.py" if is_package else f"{path}.py"


def metadata_record(normalized_name: str, version: str) -> str:
    """Where a distribution's ``METADATA`` goes, as site-packages names it."""
    return f"{normalized_name}-{version}{DIST_INFO_SUFFIX}/METADATA"


def _package_folder(dotted: str, kind: str) -> str:
    """``a.b`` -> ``a/b``, each component a valid record name component (``""`` for the top)."""
    if not isinstance(dotted, str):
        raise ValueError(f"{kind} name {dotted!r} is not a string")
    if not dotted and kind == "package":
        return ""
    folder = dotted.replace(".", "/")
    if any(not part for part in dotted.split(".")):
        problem: str | None = "has an empty component (a leading, trailing or doubled '.')"
    elif "/" in dotted:
        problem = "contains '/'"
    else:
        problem = record_name_problem(folder)
    if problem is not None:
        raise ValueError(f"{kind} name {dotted!r} cannot be stored in a package: it {problem}")
    return folder


def module_for_record(record: str) -> tuple[str, bool] | None:
    """``a/b.py`` -> ``("a.b", False)``, ``a/__init__.py`` -> ``("a", True)``, else None."""
    if not record.endswith(".py") or record.startswith(".data/"):
        return None
    folder, file_name = posixpath.split(record[:-3])
    if file_name == "__init__":
        return (folder.replace("/", "."), True) if folder else None
    return (posixpath.join(folder, file_name).replace("/", "."), False)
