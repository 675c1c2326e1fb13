"""What one module's source imports, as a deterministic value that can be cached and shipped.

:func:`analyze_module` runs the import scanner once over a module's source; the resulting
:class:`ModuleAnalysis` depends only on the source bytes, the module name and whether it is a
package, so it round-trips through JSON and can be computed once and reused: by
:class:`AnalysisCache` (a content-addressed folder, for repeated builds on one machine) or as a
build output shared by every package built from the same library (the Bazel aspect).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
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


def _write_entry(path: Path, analysis: ModuleAnalysis) -> None:
    """Write ``analysis`` to ``path`` atomically: readers see the old entry or the new one."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(analysis.to_json())
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


class AnalysisCache:
    """A folder of analyses addressed by (analyzer version, module name, is_package, source).

    Entries are written atomically; an entry that is unreadable or does not describe the
    source it is filed under is recomputed and rewritten, never trusted. ``hits`` and
    ``misses`` count lookups since creation.

    New entries are written by a second thread (creating a file costs about as much as
    analysing a small module): :meth:`flush` waits for them and raises the first error.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0
        self._writer: ThreadPoolExecutor | None = None
        self._writes: list[Future[None]] = []

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

    def path_of(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def analyze(
        self, source: bytes, module_name: str, is_package: bool, filename: str
    ) -> ModuleAnalysis:
        path = self.path_of(self.key(source, module_name, is_package))
        cached = self._read(path, source, module_name, is_package)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        analysis = analyze_module(source, module_name, is_package, filename)
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="torchpack-cache")
        self._writes.append(self._writer.submit(_write_entry, path, analysis))
        return analysis

    def flush(self) -> None:
        """Wait until every new entry is written; raises the first write's error."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        writes, self._writes = self._writes, []
        for write in writes:
            write.result()

    @staticmethod
    def _read(
        path: Path, source: bytes, module_name: str, is_package: bool
    ) -> ModuleAnalysis | None:
        try:
            analysis = ModuleAnalysis.from_json(path.read_bytes())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        expected = (module_name, is_package, hashlib.sha256(source).hexdigest())
        if (analysis.module_name, analysis.is_package, analysis.source_sha256) != expected:
            return None
        return analysis


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
        """Wait for the fallback's pending work (an :class:`AnalysisCache`'s writes)."""
        flush = getattr(self._fallback, "flush", None)
        if flush is not None:
            flush()
