"""What a package holds, found without executing or importing anything in it (and without torch).

The ZIP is read with the standard library (:class:`~torchpack.archive.zip_index.ZipIndex`),
pickles are decoded opcode by opcode (:func:`~torchpack.analysis.pickle_scanner.find_globals`)
and interned sources are parsed, never run. ``torchpack inspect``, ``audit``, ``why`` and
``diff`` build on it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .. import _mock
from ..analysis.import_scanner import ImportAnalysisError, find_imports
from ..analysis.pickle_scanner import PickleScanError, find_globals
from ..archive.format import (
    BYTEORDER_RECORD,
    EXTERN_MODULES_RECORD,
    MANIFEST_RECORD,
    MOCK_SUPPORT_RECORD,
    PYTHON_VERSION_RECORD,
    module_for_record,
)
from ..archive.manifest import sha256_hex
from ..archive.zip_index import ZipIndex

_MOCKED_SOURCE = _mock.MOCKED_MODULE_SOURCE.encode("utf-8")


@dataclass
class PickleContents:
    """One pickle record: the globals it names, or why they cannot be known."""

    record: str
    globals: list[tuple[str, str]] = field(default_factory=list)  # (module, qualified name)
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
    interned_modules: dict[str, str]  # module -> source record
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


def is_pickle_record(record: str) -> bool:
    return record.endswith(".pkl")


def inspect_package(index: ZipIndex) -> PackageContents:
    """Read a validated archive's table of contents, modules, pickles and storages."""
    records = index.records()
    interned: dict[str, str] = {}
    mocked: list[str] = []
    for record in records:
        module = module_for_record(record)
        if module is None or record == MOCK_SUPPORT_RECORD:
            continue
        if index.read(record) == _MOCKED_SOURCE:
            mocked.append(module[0])
        else:
            interned[module[0]] = record
    externs = (
        index.read(EXTERN_MODULES_RECORD).decode("utf-8", "replace").split()
        if index.has_record(EXTERN_MODULES_RECORD)
        else []
    )
    python_version = (
        index.read(PYTHON_VERSION_RECORD).decode("utf-8", "replace").strip()
        if index.has_record(PYTHON_VERSION_RECORD)
        else None
    )
    return PackageContents(
        archive=index.name,
        format_version=index.version,
        python_version=python_version,
        records=records,
        sizes={r: index.record(r).size for r in records},
        interned_modules=dict(sorted(interned.items())),
        mocked_modules=sorted(mocked),
        extern_modules=sorted(externs),
        pickles=[_scan_pickle(index, r) for r in records if is_pickle_record(r)],
        storages={r: index.record(r).size for r in records if r.endswith(".storage")},
        has_manifest=index.has_record(MANIFEST_RECORD),
    )


def _scan_pickle(index: ZipIndex, record: str) -> PickleContents:
    try:
        names = find_globals(index.read(record), record)
    except PickleScanError as err:
        return PickleContents(record, error=str(err))
    return PickleContents(record, names)


def record_digests(index: ZipIndex) -> dict[str, str]:
    """sha256 of every record (what ``torchpack diff`` compares)."""
    return {record: sha256_hex(index.read(record)) for record in index.records()}


def import_graph(index: ZipIndex, contents: PackageContents) -> dict[str, list[str]]:
    """Who pulls in what: pickles -> modules of their globals, interned modules -> imports."""
    graph: dict[str, list[str]] = {}
    for pickle in contents.pickles:
        graph[pickle.record] = _dedupe(module for module, _ in pickle.globals)
    for module, record in contents.interned_modules.items():
        try:
            scan = find_imports(
                index.read(record), module, record.endswith("/__init__.py"), filename=record
            )
        except ImportAnalysisError:
            graph[module] = []
            continue
        graph[module] = _dedupe(ref.module for ref in scan.imports)
    return graph


def import_chain(graph: dict[str, list[str]], target: str) -> list[str] | None:
    """The shortest chain from a pickle to ``target`` (or to a module below it), if any."""
    starts = [node for node in graph if is_pickle_record(node)]
    previous: dict[str, str | None] = {start: None for start in starts}
    queue = deque(starts)
    while queue:
        node = queue.popleft()
        if node == target or node.startswith(target + "."):
            chain = [node]
            while (parent := previous[chain[-1]]) is not None:
                chain.append(parent)
            return chain[::-1]
        for successor in _with_parents(graph.get(node, [])):
            if successor not in previous:
                previous[successor] = node
                queue.append(successor)
    return None


def _with_parents(modules: list[str]) -> list[str]:
    """Importing ``a.b.c`` runs ``a`` and ``a.b`` first."""
    expanded: list[str] = []
    for module in modules:
        parts = module.split(".")
        expanded.extend(".".join(parts[: i + 1]) for i in range(len(parts)))
    return _dedupe(expanded)


def _dedupe(items: object) -> list[str]:
    return list(dict.fromkeys(items))  # type: ignore[call-overload]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
