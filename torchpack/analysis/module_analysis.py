"""What one module's source imports, as a deterministic value that can be cached and shipped.

:func:`analyze_module` runs the import scanner once over a module's source; the resulting
:class:`ModuleAnalysis` depends only on the source bytes, the module name and whether it is a
package, so it round-trips through JSON and can be computed once and reused: by
:class:`AnalysisCache` (a content-addressed database in a folder, for repeated builds on one
machine) or as a build output shared by every package built from the same library (the Bazel
aspect).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .import_scanner import ImportAnalysisError, ImportRef, find_imports

__all__ = [
    "ANALYZER_VERSION",
    "AnalysisCache",
    "AnalysisIndex",
    "ModuleAnalysis",
    "ModuleAnalyzer",
    "analyze_module",
]

# Part of every cache key: bump it whenever the import scanner's results change, so that no
# cache serves analyses made by an older scanner.
ANALYZER_VERSION = "3"


@dataclass(frozen=True, slots=True)
class ModuleAnalysis:
    """The imports of one module's source, plus the dynamic imports it could not resolve."""

    module_name: str
    is_package: bool
    source_sha256: str
    imports: tuple[ImportRef, ...]
    warnings: tuple[str, ...]
    # A package whose __init__ only imports its own submodules (see package_init).
    loads_submodules_only: bool = False

    def to_json(self) -> str:
        """Canonical JSON: the same analysis always gives the same bytes."""
        return json.dumps(
            {
                "analyzer_version": ANALYZER_VERSION,
                "module_name": self.module_name,
                "is_package": self.is_package,
                "source_sha256": self.source_sha256,
                "imports": [[ref.module, ref.name] for ref in self.imports],
                "warnings": list(self.warnings),
                "loads_submodules_only": self.loads_submodules_only,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ModuleAnalysis:
        """Parse :meth:`to_json` output; raises ``ValueError`` for anything else."""
        try:
            data = json.loads(text)
            if data["analyzer_version"] != ANALYZER_VERSION:
                raise ValueError(
                    f"made by analyzer version {data['analyzer_version']!r}, "
                    f"this is {ANALYZER_VERSION!r}"
                )
            analysis = cls(
                module_name=data["module_name"],
                is_package=data["is_package"],
                source_sha256=data["source_sha256"],
                imports=tuple(ImportRef(module, name) for module, name in data["imports"]),
                warnings=tuple(data["warnings"]),
                loads_submodules_only=data["loads_submodules_only"],
            )
        except (TypeError, KeyError) as err:
            raise ValueError(f"not a module analysis: {type(err).__name__}: {err}") from err
        except json.JSONDecodeError as err:
            raise ValueError(f"not a module analysis: {err}") from err
        analysis._check_types()
        return analysis

    def _check_types(self) -> None:
        strings = (self.module_name, self.source_sha256, *self.warnings)
        names = (n for ref in self.imports for n in (ref.module, ref.name) if n is not None)
        if not (
            isinstance(self.is_package, bool)
            and isinstance(self.loads_submodules_only, bool)
            and all(isinstance(s, str) for s in (*strings, *names))
        ):
            raise ValueError(f"not a module analysis: wrong field types in {self!r}")


def source_path_of(module_name: str, is_package: bool) -> str:
    """The relative path a module's source has under its import root (``a/b/__init__.py``)."""
    path = module_name.replace(".", "/")
    return f"{path}/__init__.py" if is_package else f"{path}.py"


def analyze_module(
    source: bytes, module_name: str, is_package: bool, filename: str
) -> ModuleAnalysis:
    """Scan ``source`` for imports; raises ``ImportAnalysisError`` naming ``filename``.

    Warnings name the module's relative source path rather than ``filename``, so that the
    analysis does not depend on where the file happens to be.
    """
    try:
        scan = find_imports(
            source,
            module_name,
            is_package,
            filename=source_path_of(module_name, is_package),
            source_file=filename,
        )
    except ImportAnalysisError as err:
        raise ImportAnalysisError(err.reason, module_name, filename, err.lineno) from err
    return ModuleAnalysis(
        module_name=module_name,
        is_package=is_package,
        source_sha256=hashlib.sha256(source).hexdigest(),
        imports=scan.imports,
        warnings=scan.warnings,
        loads_submodules_only=scan.loads_submodules_only,
    )


class ModuleAnalyzer(Protocol):
    """Anything that can stand in for :func:`analyze_module` (a cache, precomputed results)."""

    def analyze(
        self, source: bytes, module_name: str, is_package: bool, filename: str
    ) -> ModuleAnalysis: ...


class AnalysisCache:
    """A folder of analyses addressed by (analyzer version, module name, is_package, source).

    The entries live in one SQLite database in the folder (``analyses.sqlite3``): creating a
    file per entry cost about a millisecond each here, more than analysing a small module, while
    one transaction stores a whole build's new entries at once. Builds that share the folder may
    run at the same time (SQLite locks it). An entry that is unreadable or does not describe the
    source it is filed under is recomputed and rewritten, never trusted. ``hits`` and ``misses``
    count lookups since creation.

    New entries are kept in memory until :meth:`flush` writes them in one transaction.
    """

    FILENAME = "analyses.sqlite3"

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0
        self._database: sqlite3.Connection | None = None
        self._new: dict[str, str] = {}

    @property
    def path(self) -> Path:
        """The database file holding the entries."""
        return self.folder / self.FILENAME

    def key(self, source: bytes, module_name: str, is_package: bool) -> str:
        digest = hashlib.sha256()
        # Length-prefixed fields: no two different inputs can spell the same byte string.
        for field in (
            ANALYZER_VERSION.encode(),
            module_name.encode(),
            b"p" if is_package else b"m",
        ):
            digest.update(len(field).to_bytes(8, "big") + field)
        digest.update(source)
        return digest.hexdigest()

    def analyze(
        self, source: bytes, module_name: str, is_package: bool, filename: str
    ) -> ModuleAnalysis:
        key = self.key(source, module_name, is_package)
        cached = self._read(key, source, module_name, is_package)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        analysis = analyze_module(source, module_name, is_package, filename)
        self._new[key] = analysis.to_json()
        return analysis

    def flush(self) -> None:
        """Store every entry made since the last flush and close the database (the next
        lookup opens it again); raises ``OSError`` naming the database if it cannot."""
        new, self._new = self._new, {}
        try:
            if new:
                with self._errors_named("write"):
                    database = self._connection()
                    with database:  # one transaction
                        database.executemany(
                            "INSERT OR REPLACE INTO analyses (key, entry) VALUES (?, ?)",
                            new.items(),
                        )
        finally:
            if self._database is not None:
                self._database.close()
                self._database = None

    def _read(
        self, key: str, source: bytes, module_name: str, is_package: bool
    ) -> ModuleAnalysis | None:
        text = self._new.get(key)
        if text is None:
            with self._errors_named("read"):
                row = (
                    self._connection()
                    .execute("SELECT entry FROM analyses WHERE key = ?", (key,))
                    .fetchone()
                )
            if row is None:
                return None
            text = row[0]
        try:
            analysis = ModuleAnalysis.from_json(text)
        except (TypeError, ValueError):
            return None
        expected = (module_name, is_package, hashlib.sha256(source).hexdigest())
        if (analysis.module_name, analysis.is_package, analysis.source_sha256) != expected:
            return None
        return analysis

    def _connection(self) -> sqlite3.Connection:
        if self._database is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            database = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            try:
                # WAL: readers never wait for a writer. NORMAL: a crash may lose the last
                # entries, never corrupt the others, and a lost entry is only recomputed.
                database.execute("PRAGMA journal_mode = WAL")
                database.execute("PRAGMA synchronous = NORMAL")
                database.execute(
                    "CREATE TABLE IF NOT EXISTS analyses"
                    " (key TEXT PRIMARY KEY, entry TEXT NOT NULL) WITHOUT ROWID"
                )
            except BaseException:
                database.close()
                raise
            self._database = database
        return self._database

    @contextmanager
    def _errors_named(self, action: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as err:  # OSError: its folder cannot be made
            raise OSError(
                f"analysis cache {self.path}: cannot {action} it ({err}); delete it to start "
                "an empty cache, or pass another cache folder"
            ) from err


class AnalysisIndex:
    """Analyses computed elsewhere (Bazel's per-file actions), looked up by module and source.

    A module whose analysis was not provided, or whose source differs from the one analysed,
    is analysed on the spot (through ``fallback`` if given); ``misses`` names those modules.
    """

    def __init__(
        self, analyses: Iterable[ModuleAnalysis], fallback: ModuleAnalyzer | None = None
    ) -> None:
        self._by_key = {(a.module_name, a.is_package, a.source_sha256): a for a in analyses}
        self._fallback = fallback
        self.hits = 0
        self.misses: list[str] = []

    @classmethod
    def from_files(
        cls, paths: Iterable[str | os.PathLike[str]], fallback: ModuleAnalyzer | None = None
    ) -> AnalysisIndex:
        analyses = []
        for path in paths:
            try:
                analyses.append(ModuleAnalysis.from_json(Path(path).read_bytes()))
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from err
        return cls(analyses, fallback)

    def __len__(self) -> int:
        return len(self._by_key)

    def analyze(
        self, source: bytes, module_name: str, is_package: bool, filename: str
    ) -> ModuleAnalysis:
        found = self._by_key.get((module_name, is_package, hashlib.sha256(source).hexdigest()))
        if found is not None:
            self.hits += 1
            return found
        self.misses.append(module_name)
        if self._fallback is not None:
            return self._fallback.analyze(source, module_name, is_package, filename)
        return analyze_module(source, module_name, is_package, filename)

    def flush(self) -> None:
        """Store the fallback's new entries (an :class:`AnalysisCache`'s)."""
        flush = getattr(self._fallback, "flush", None)
        if flush is not None:
            flush()
