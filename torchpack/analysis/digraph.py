"""A minimal directed graph for module dependency tracking.

All traversals are iterative (dependency chains can be long) and every result
is ordered by insertion so error messages and DOT output are reproducible.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["DiGraph"]


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot(edges: Iterable[tuple[str, str]], isolated: Iterable[str] = ()) -> str:
    lines = ["digraph G {", "rankdir = LR;", "node [shape=box];"]
    lines.extend(f"{_quote(n)};" for n in isolated)
    lines.extend(f"{_quote(u)} -> {_quote(v)};" for u, v in edges)
    return "\n".join(lines) + "\n}\n"


class DiGraph:
    """Directed graph of string nodes with per-node attribute dicts."""

    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, Any]] = {}
        # Dicts used as ordered sets.
        self._succ: dict[str, dict[str, None]] = {}
        self._pred: dict[str, dict[str, None]] = {}
        self._edges: dict[tuple[str, str], None] = {}

    def add_node(self, n: str, **attrs: Any) -> None:
        """Add ``n`` (if new) and merge ``attrs`` into its attributes."""
        if n in self._nodes:
            self._nodes[n].update(attrs)
        else:
            self._nodes[n] = dict(attrs)
            self._succ[n] = {}
            self._pred[n] = {}

    def add_edge(self, u: str, v: str) -> None:
        """Add the edge ``u -> v``, adding either node if missing."""
        self.add_node(u)
        self.add_node(v)
        self._succ[u][v] = None
        self._pred[v][u] = None
        self._edges[(u, v)] = None

    def _check(self, n: str) -> None:
        if n not in self._nodes:
            raise ValueError(f"node {n!r} is not in the graph")

    def successors(self, n: str) -> list[str]:
        """Nodes ``n`` has an edge to, in insertion order."""
        self._check(n)
        return list(self._succ[n])

    def predecessors(self, n: str) -> list[str]:
        """Nodes with an edge to ``n``, in insertion order."""
        self._check(n)
        return list(self._pred[n])

    def __contains__(self, n: object) -> bool:
        try:
            return n in self._nodes
        except TypeError:  # unhashable
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        """Node name -> attribute dict (live, insertion-ordered)."""
        return self._nodes

    @property
    def edges(self) -> list[tuple[str, str]]:
        """All edges, in insertion order."""
        return list(self._edges)

    def _closure(self, start: str, adjacency: dict[str, dict[str, None]]) -> set[str]:
        self._check(start)
        seen = {start}
        todo = [start]
        while todo:
            for n in adjacency[todo.pop()]:
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen

    def forward_transitive_closure(self, src: str) -> set[str]:
        """``src`` and every node reachable from it."""
        return self._closure(src, self._succ)

    def backward_transitive_closure(self, dst: str) -> set[str]:
        """``dst`` and every node from which it is reachable."""
        return self._closure(dst, self._pred)

    def first_path(self, dst: str) -> list[str]:
        """A shortest path to ``dst`` from the earliest-added root that reaches it.

        A root is a node without predecessors.  If ``dst`` is reachable only
        through cycles (no root reaches it) the path starts at the
        earliest-added node that reaches it.
        """
        self._check(dst)
        # Backward BFS; toward[n] is the next hop from n on a shortest path to dst.
        toward: dict[str, str | None] = {dst: None}
        queue = deque([dst])
        while queue:
            cur = queue.popleft()
            for p in self._pred[cur]:
                if p not in toward:
                    toward[p] = cur
                    queue.append(p)
        order = {n: i for i, n in enumerate(self._nodes)}
        roots = [n for n in toward if not self._pred[n]]
        start = min(roots or toward, key=order.__getitem__)
        path = [start]
        while (nxt := toward[path[-1]]) is not None:
            path.append(nxt)
        return path

    def all_paths(self, src: str, dst: str) -> str:
        """DOT text of the subgraph made of every path from ``src`` to ``dst``."""
        reachable = self.forward_transitive_closure(src)
        reaching = self.backward_transitive_closure(dst)
        # u -> v lies on a src..dst path iff src reaches u and v reaches dst.
        return _dot((u, v) for u, v in self._edges if u in reachable and v in reaching)

    def to_dot(self) -> str:
        """DOT text of the whole graph (isolated nodes included)."""
        isolated = [n for n in self._nodes if not self._succ[n] and not self._pred[n]]
        return _dot(self._edges, isolated)
