"""The shortest chain of imports from a package's pickles to a module, scanning few sources.

``torchpack why`` used to scan every interned module for its imports before searching: 2,400
modules (about 4 s of ``compile``) for a transformers package, when a chain needs a handful.
Here the search runs from both ends, a whole level at a time, and each step takes the end that
needs fewer sources scanned:

- forwards from the pickles: a module's imports are scanned when the search reaches it;
- backwards from the target: only a module whose text spells the name as an import would can
  import it (``import a.b``, ``from .a import b`` and ``from a import b`` all spell ``b``;
  outside the package ``a`` only absolute imports can), so substring and pattern searches over
  every source (tens of milliseconds) leave a few to scan.

When the two searches meet, the chain is a shortest one, as a search over the whole graph
would find (a level-at-a-time search from both ends meets first on a shortest path).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterable, Iterator

from ..analysis.import_scanner import ImportAnalysisError, find_imports
from ..analysis.source_names import may_import_by_calling, names_text
from ..archive.zip_index import ZipIndex
from .package_contents import PackageContents

# A substring search over every source costs about as much as scanning this many modules
# (transformers: ~25 ms against ~1.7 ms).
_SEARCH_COST = 15
# What may stand around the dots of a dotted name: spaces, lines continued by backslashes.
_GAP = rb"(?:\s|\\)*"


class ImportGraph:
    """Who pulls in what: a pickle its globals' modules, an interned module its imports.

    Importing ``a.b.c`` runs ``a`` and ``a.b`` first, so each of those is an edge too, and so
    is ``a.b`` for ``from a import b`` where ``a.b`` is a module the package provides or
    externs. Sources are read and scanned only when asked; ``scanned`` counts them.
    """

    def __init__(self, index: ZipIndex, contents: PackageContents) -> None:
        self._index = index
        self._sources = contents.interned_modules
        self._modules = {*contents.interned_modules, *contents.mocked_modules}
        self._modules.update(contents.extern_modules)
        self._pickles = {
            pickle.record: _with_parents(module for module, _ in pickle.globals)
            for pickle in contents.pickles
        }
        self._successors: dict[str, list[str]] = dict(self._pickles)
        self._texts: dict[str, bytes] | None = None
        self._calling: list[str] = []
        self._containing: dict[str, list[str]] = {}  # substring -> modules whose text holds it
        self._candidates: dict[str, list[str]] = {}  # module -> those that may import it
        self.scanned = 0

    @property
    def pickles(self) -> list[str]:
        return list(self._pickles)

    def successors(self, node: str) -> list[str]:
        """What ``node`` (a pickle record or a module) imports; scans its source once."""
        found = self._successors.get(node)
        if found is None:
            found = self._successors[node] = _with_parents(self._imports(node))
        return found

    def cost_forwards(self, frontier: list[str]) -> int:
        """How many sources expanding ``frontier`` forwards would scan."""
        return sum(node in self._sources and node not in self._successors for node in frontier)

    def cost_backwards(self, frontier: list[str], limit: int) -> int:
        """How many sources expanding ``frontier`` backwards would scan (in scan units), counted
        up to just past ``limit``: the searches this needs are made only while it is cheaper."""
        cost = 0
        for node in frontier:
            if node.rpartition(".")[2] not in self._containing:
                cost += _SEARCH_COST
                if cost > limit:
                    break
            cost += sum(module not in self._successors for module in self._may_import(node))
            if cost > limit:
                break
        return cost

    def importers(self, node: str, first: Container[str] = ()) -> Iterator[str]:
        """The pickles and modules with an edge to ``node``, those in ``first`` scanned first."""
        yield from (record for record, modules in self._pickles.items() if node in modules)
        candidates = sorted(self._may_import(node), key=lambda module: module not in first)
        yield from (module for module in candidates if node in self.successors(module))

    def likely_importers(self, nodes: list[str]) -> set[str]:
        """Modules that may import one of ``nodes``, as far as that is known yet."""
        known = (self._candidates.get(node, ()) for node in nodes)
        return {module for modules in known for module in modules}

    def _imports(self, module: str) -> Iterable[str]:
        record = self._sources.get(module)
        if record is None:
            return []  # extern, mocked or absent: nothing of the package runs for it
        self.scanned += 1
        try:
            scan = find_imports(
                self._index.read(record), module, record.endswith("/__init__.py"), record
            )
        except ImportAnalysisError:
            return []
        imported = []
        for ref in scan.imports:
            imported.append(ref.module)
            submodule = f"{ref.module}.{ref.name}"
            if ref.name is not None and submodule in self._modules:
                imported.append(submodule)
        return imported

    def _may_import(self, node: str) -> list[str]:
        """The interned modules that may have an edge to ``node``, found by their text.

        An import spells the part of the name below the package it is relative to:
        ``import a.b.c`` and ``from a.b import c`` spell ``a``, ``b`` and ``c``; in ``a.x``,
        ``from .b import c`` spells ``b`` and ``c``; in ``a.b.x``, ``from . import c`` spells
        ``c``. So a module may import ``a.b.c`` (or a module below it) only if its text holds
        each part of that name below what its own name shares with it. Modules below
        ``a.b.c`` are left out: whatever reaches them reaches ``a.b.c`` as soon, so their edge
        to it is on no shortest chain.
        """
        found = self._candidates.get(node)
        if found is None:
            parts = node.split(".")
            texts = self._searchable_texts()
            spelling = [
                module
                for module in self._containing_text(parts[-1])
                if all(part.encode() in texts[module] for part in _below_shared(parts, module))
            ]
            # Outside the top-level package every import of the name is absolute, and a
            # name is often a common word ("string"): look for it as an import spells it.
            absolute = _AbsoluteImport(parts)
            spelling = [
                module
                for module in spelling
                if module.partition(".")[0] == parts[0] or absolute.search(texts[module])
            ]
            found = self._candidates[node] = [
                module
                for module in dict.fromkeys([*spelling, *self._calling])
                if not module.startswith(node + ".")
            ]
        return found

    def _containing_text(self, part: str) -> list[str]:
        found = self._containing.get(part)
        if found is None:
            needle = part.encode("utf-8")
            texts = self._searchable_texts()
            found = self._containing[part] = [m for m, text in texts.items() if needle in text]
        return found

    def _searchable_texts(self) -> dict[str, bytes]:
        """Each interned source as Python reads its names (see ``source_names``)."""
        if self._texts is None:
            self._texts = {}
            for module, record in self._sources.items():
                text = names_text(self._index.read(record), module, record)
                if text is None:
                    continue  # its imports cannot be scanned either: it imports nothing
                self._texts[module] = text
                if may_import_by_calling(text):
                    self._calling.append(module)
        return self._texts


def _below_shared(parts: list[str], module: str) -> list[str]:
    """The parts of a name below the packages it shares with ``module``'s name."""
    shared = 0
    for mine, theirs in zip(module.split("."), parts, strict=False):
        if mine != theirs:
            break
        shared += 1
    return parts[shared:]


class _AbsoluteImport:
    """Whether text may hold an absolute import of the module ``parts`` (or of one below it):
    ``a.b.c`` (``import a.b.c``, ``from a.b.c import x``; spaces and continued lines may stand
    around the dots), or ``from a.b import`` with the word ``c`` anywhere after it (its
    from-list may run over lines, comments included); for a top-level ``a``, ``from a`` or
    ``import ..., a`` within one statement (an ``import`` statement has no parentheses).
    Patterns start with a literal, which ``re`` finds fast."""

    def __init__(self, parts: list[str]) -> None:
        names = [re.escape(part.encode("utf-8")) for part in parts]
        dot = _GAP + rb"\." + _GAP
        if len(names) == 1:
            self._whole = re.compile(
                rb"from(?:\s|\\)+%s\b|import(?:[^\n;#\\]|\\.)*?\b%s\b" % (names[0], names[0]),
                re.DOTALL,
            )
            self._from: re.Pattern[bytes] | None = None
        else:
            self._whole = re.compile(dot.join(names) + rb"\b")
            self._from = re.compile(
                rb"from(?:\s|\\)+%s(?:\s|\\)+import\b(?:.*?)(?<![\w])%s\b"
                % (dot.join(names[:-1]), names[-1]),
                re.DOTALL,
            )

    def search(self, text: bytes) -> bool:
        return bool(self._whole.search(text) or (self._from and self._from.search(text)))


def shortest_chain(graph: ImportGraph, target: str) -> list[str] | None:
    """A shortest chain from one of the package's pickles to ``target``, if any: the pickle
    first, then each module it pulls in, ``target`` last."""
    # Each search's nodes with their neighbour on the way back to where it started.
    came_from: dict[str, str | None] = dict.fromkeys(graph.pickles)
    leads_to: dict[str, str | None] = {target: None}
    forwards, backwards = graph.pickles, [target]
    while forwards and backwards:
        cost = graph.cost_forwards(forwards)
        if cost <= graph.cost_backwards(backwards, limit=cost):
            # Any meeting on this level closes a shortest chain: try the likely ones first.
            likely = graph.likely_importers(backwards)
            forwards, met = _expand(
                sorted(forwards, key=lambda node: node not in likely),
                graph.successors,
                came_from,
                leads_to,
            )
        else:
            backwards, met = _expand(
                backwards, lambda node: graph.importers(node, first=came_from), leads_to, came_from
            )
        if met is not None:
            return _path(met, came_from)[::-1] + _path(met, leads_to)[1:]
    return None


def _expand(
    frontier: list[str],
    neighbours: Callable[[str], Iterable[str]],
    seen: dict[str, str | None],
    other: dict[str, str | None],
) -> tuple[list[str], str | None]:
    """The next level of one search (each node noted with where it was reached from), or the
    first node where it meets the ``other`` search."""
    level = []
    for node in frontier:
        for neighbour in neighbours(node):
            if neighbour not in seen:
                seen[neighbour] = node
                if neighbour in other:
                    return level, neighbour
                level.append(neighbour)
    return level, None


def _path(node: str, links: dict[str, str | None]) -> list[str]:
    path = [node]
    while (following := links[path[-1]]) is not None:
        path.append(following)
    return path


def _with_parents(modules: Iterable[str]) -> list[str]:
    """Importing ``a.b.c`` runs ``a`` and ``a.b`` first."""
    expanded: dict[str, None] = {}
    for module in modules:
        parts = module.split(".")
        expanded.update((".".join(parts[: i + 1]), None) for i in range(len(parts)))
    return list(expanded)
