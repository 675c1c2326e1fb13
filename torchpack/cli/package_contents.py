"""What a package holds, found without executing or importing anything in it (and without torch).

The ZIP is read with the standard library (:class:`~torchpack.archive.zip_index.ZipIndex`),
pickles are decoded opcode by opcode (:func:`~torchpack.analysis.pickle_scanner.scan_pickle`,
as strictly as safe loading does) and interned sources are parsed, never run. Which source
runs for which module is decided as the importer decides it
(:class:`~torchpack.loading.module_tree.ModuleTree`: an extern module shadows a shipped
``os.py``, ``pkg/__init__.py`` beats ``pkg.py``). ``torchpack inspect``, ``audit``, ``why``
and ``diff`` build on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import _mock
from ..analysis.pickle_scanner import GETATTR, OWNER, PickleScanError, scan_pickle
from ..archive.checksums import BLAKE3
from ..archive.format import (
    BYTEORDER_RECORD,
    DIST_INFO_SUFFIX,
    EXTERN_MODULES_RECORD,
    IMPORTER_MODULE,
    MANIFEST_RECORDS,
    MOCK_SUPPORT_MODULE,
    PYTHON_VERSION_RECORD,
    module_for_record,
)
from ..archive.zip_index import ZipIndex
from ..loading.module_tree import ModuleTree

_MOCKED_SOURCE = _mock.MOCKED_MODULE_SOURCE.encode("utf-8")
_MOCK_SUPPORT = Path(_mock.__file__).read_bytes()
_PICKLE_DEPTH = 1000  # as safe loading
_PROTO = 0x80
# What is read of a record to tell whether it may be a pickle at all: resources can be GiBs.
_PEEK = 1 << 20


@dataclass
class PickleContents:
    """One pickle record: the globals it names and what it does with them, or why it cannot
    be scanned (with the globals an unpickler would resolve before failing)."""

    record: str
    globals: list[tuple[str, str]] = field(default_factory=list)  # (module, qualified name)
    uses: dict[str, int] = field(default_factory=dict)  # module.name -> scan use flags
    error: str | None = None

    @property
    def global_names(self) -> list[str]:
        return [f"{module}.{name}" for module, name in self.globals]


@dataclass
class PackageContents:
    """Everything ``torchpack inspect`` reports about a package."""

    archive: str
    format_version: int
    python_version: str | None
    records: list[str]
    sizes: dict[str, int]
    interned_modules: dict[str, str]  # module -> the source record the importer runs
    mocked_modules: list[str]
    extern_modules: list[str]
    pickles: list[PickleContents]
    storages: dict[str, int]  # record -> bytes
    has_manifest: bool

    @property
    def resources(self) -> list[str]:
        """Records that are neither modules nor package metadata."""
        return [
            r
            for r in self.records
            if not r.startswith(".data/") and r != BYTEORDER_RECORD and module_for_record(r) is None
        ]

    @property
    def distributions(self) -> dict[str, str]:
        """Name -> version of each distribution whose metadata the package carries
        (``<name>-<version>.dist-info/METADATA``, as the importer finds them)."""
        found = {}
        for record in self.records:
            folder, _, file_name = record.partition("/")
            if file_name == "METADATA" and folder.endswith(DIST_INFO_SUFFIX):
                name, _, version = folder[: -len(DIST_INFO_SUFFIX)].rpartition("-")
                found[name] = version
        return found


def inspect_package(index: ZipIndex) -> PackageContents:
    """Read a validated archive's table of contents, modules, pickles and storages."""
    records = index.records()
    externs = (
        index.read(EXTERN_MODULES_RECORD).decode("utf-8", "replace").split()
        if index.has_record(EXTERN_MODULES_RECORD)
        else []
    )
    tree = ModuleTree(records, externs)
    interned, mocked = _modules(index, tree)
    python_version = (
        index.read(PYTHON_VERSION_RECORD).decode("utf-8", "replace").strip()
        if index.has_record(PYTHON_VERSION_RECORD)
        else None
    )
    pickles = []
    for record in records:
        if not record.startswith(".data/") and record != BYTEORDER_RECORD:
            found = _scan_pickle(index, record, tree)
            if found is not None:
                pickles.append(found)
    return PackageContents(
        archive=index.name,
        format_version=index.version,
        python_version=python_version,
        records=records,
        sizes={r: index.record(r).size for r in records},
        interned_modules=interned,
        mocked_modules=mocked,
        extern_modules=sorted(externs),
        pickles=pickles,
        storages={r: index.record(r).size for r in records if r.endswith(".storage")},
        has_manifest=any(index.has_record(record) for record in MANIFEST_RECORDS),
    )


def _modules(index: ZipIndex, tree: ModuleTree) -> tuple[dict[str, str], list[str]]:
    """Interned (module -> source record) and mocked modules.

    A mocked module is torchpack's stub, importing torchpack's own ``_mock``; with a ``_mock.py``
    of other content every module is code that runs, ``_mock`` included.
    """
    sources = tree.sources()
    support = sources.get(MOCK_SUPPORT_MODULE)
    genuine_support = support is None or _record_is(index, support, _MOCK_SUPPORT)
    interned: dict[str, str] = {}
    mocked: list[str] = []
    for module, record in sources.items():
        if module == IMPORTER_MODULE or (module == MOCK_SUPPORT_MODULE and genuine_support):
            continue  # the importer provides the first itself: a shipped source never runs
        if genuine_support and _record_is(index, record, _MOCKED_SOURCE):
            mocked.append(module)
        else:
            interned[module] = record
    return interned, mocked


def _record_is(index: ZipIndex, record: str, content: bytes) -> bool:
    return index.record(record).size == len(content) and index.read(record) == content


def _scan_pickle(index: ZipIndex, record: str, tree: ModuleTree) -> PickleContents | None:
    """The record as ``load_pickle`` would read it, or None if it is no pickle: not named
    ``.pkl``, not starting like one, not a complete pickle, and naming nothing importable
    before its first error. A record is read whole only once its start says it may be one."""
    head = next(index.chunks(record, _PEEK), b"")
    if not (record.endswith(".pkl") or head[:1] == bytes([_PROTO])):
        try:
            scan = scan_pickle(head, record, _PICKLE_DEPTH, strict=True)
            return PickleContents(record, *_judged(scan.references, scan.getattrs))
        except PickleScanError as err:
            longer = err.truncated and index.record(record).size > len(head)
            if not (longer or _importable(err.references, tree)):
                return None
    data = index.read(record)
    try:
        scan = scan_pickle(data, record, _PICKLE_DEPTH, strict=True)
    except PickleScanError as err:
        if not (record.endswith(".pkl") or data[:1] == bytes([_PROTO])):
            if not _importable(err.references, tree):
                return None
        return PickleContents(record, *_judged(err.references, []), error=str(err))
    return PickleContents(record, *_judged(scan.references, scan.getattrs))


def _importable(references: list, tree: ModuleTree) -> bool:
    """Whether an unpickler would find a module for any of these globals (and so run it)."""
    return any(tree.find(ref.module) is not None or ref.module == "builtins" for ref in references)


def _judged(references: list, getattrs: list) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """The globals to judge, with their uses: a getattr folded into the name it reaches
    replaces both the getattr and its owner."""
    uses: dict[str, int] = {}
    names: dict[tuple[str, str], None] = {}
    for ref in [*references, *getattrs]:
        flags = ref.use_flags()
        if flags in (GETATTR, OWNER):
            continue
        names.setdefault((ref.module, ref.name), None)
        uses[ref.full_name] = uses.get(ref.full_name, 0) | flags
    return list(names), uses


def record_digests(index: ZipIndex, records: list[str]) -> dict[str, str]:
    """BLAKE3 of each of ``records`` (what ``torchpack diff`` compares), read in pieces."""
    return {record: index.digest(record, BLAKE3) for record in records}


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
