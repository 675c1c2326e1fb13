"""``torchpack why``'s search: a shortest chain of imports, found by scanning few sources."""

from __future__ import annotations

import random
from collections import deque
from pathlib import Path

import pytest
from conftest import run_cli

from torchpack import PackageExporter
from torchpack.archive.zip_index import ZipIndex
from torchpack.cli.import_chain import ImportGraph, shortest_chain
from torchpack.cli.package_contents import inspect_package


def _package(path: Path, sources: dict[str, str], pickled: list[str]) -> Path:
    """A package of ``sources`` (module -> text; ``pkg.__init__`` for a package) and one pickle
    naming a class of each module in ``pickled``, written as is: nothing is imported."""
    with PackageExporter(path) as exporter:
        for module, text in sources.items():
            name = module.removesuffix(".__init__")
            exporter.save_source_string(name, text, name != module, dependencies=False)
        names = b"".join(f"c{module}\nThing\n".encode() for module in pickled)
        exporter.save_binary("data", "model.pkl", b"\x80\x02(" + names + b"t.")  # a tuple
    return path


def _graph(path: Path) -> ImportGraph:
    index = ZipIndex(str(path))
    return ImportGraph(index, inspect_package(index))


def _distances(graph: ImportGraph) -> dict[str, int]:
    """Every node's distance from the pickles, by a search that scans every source."""
    distance = dict.fromkeys(graph.pickles, 0)
    queue = deque(graph.pickles)
    while queue:
        node = queue.popleft()
        for successor in graph.successors(node):
            if successor not in distance:
                distance[successor] = distance[node] + 1
                queue.append(successor)
    return distance


def test_why_follows_submodules_imported_by_name(tmp_path):
    path = _package(
        tmp_path / "p.pt",
        {
            "app.__init__": "",
            "app.top": "from app import middle\n\nclass Thing:\n    pass\n",
            "app.middle": "from . import ｌower\n",  # NFKC: Python reads `lower`
            "app.lower": "import app.deep\n",
            "app.deep": "",
        },
        ["app.top"],
    )
    result = run_cli("why", str(path), "app.deep")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == (
        "app.deep is interned; pulled in by:\n"
        "  data/model.pkl\n  -> app.top\n  -> app.middle\n  -> app.lower\n  -> app.deep\n"
    )


def test_why_refuses_a_name_no_module_has(tmp_path):
    path = _package(tmp_path / "p.pt", {"app": "class Thing:\n    pass\n"}, ["app"])
    result = run_cli("why", str(path), "app..x")
    assert result.returncode == 2
    assert result.stderr == "torchpack why: 'app..x' is not a dotted module name\n"


@pytest.mark.parametrize("seed", range(3))
def test_chains_are_as_short_as_a_full_search_finds(tmp_path, seed):
    # Modules importing each other every way Python spells it, absolute and relative, with
    # decoys that only mention a name; a pickle names two of them.
    rng = random.Random(seed)
    modules = [f"net.g{i // 8}.m{i}" for i in range(40)]
    sources = {"net.__init__": "", **{f"net.g{g}.__init__": "" for g in range(5)}}
    for name in modules:
        lines = []
        for other in rng.sample(modules, 3):
            group, leaf = other.rsplit(".", 1)
            lines.append(
                rng.choice(
                    [
                        f"import {other}",
                        f"from {group} import {leaf}",
                        f"from {other} import Thing",
                        f"from ..{group.split('.')[1]} import {leaf}",
                        f"if False:\n    x = '{other}'",  # spelled, never imported
                    ]
                )
            )
        sources[name] = "\n".join(lines) + "\n\nclass Thing:\n    pass\n"
    path = _package(tmp_path / "p.pt", sources, rng.sample(modules, 2))
    distance = _distances(_graph(path))
    for target in [*modules, "net.g1", "absent.module"]:
        graph = _graph(path)
        chain = shortest_chain(graph, target)
        if target not in distance:
            assert chain is None
            continue
        assert chain is not None
        assert len(chain) - 1 == distance[target]
        assert chain[-1] == target
        assert all(b in graph.successors(a) for a, b in zip(chain, chain[1:], strict=False))
