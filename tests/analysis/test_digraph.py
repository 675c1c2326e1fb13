import pytest

from torchpack.analysis.digraph import DiGraph


@pytest.fixture
def graph():
    #   root -> a -> c -> d
    #   root -> b -> c
    #   other -> b          (a second, later root)
    g = DiGraph()
    g.add_node("root", kind="intern")
    for u, v in [("root", "a"), ("root", "b"), ("a", "c"), ("b", "c"), ("c", "d"), ("other", "b")]:
        g.add_edge(u, v)
    return g


def test_nodes_and_attributes(graph):
    graph.add_node("a", action="extern")
    graph.add_node("a", error="boom")
    assert list(graph.nodes) == ["root", "a", "b", "c", "d", "other"]
    assert graph.nodes["a"] == {"action": "extern", "error": "boom"}
    assert graph.nodes["root"] == {"kind": "intern"}
    assert graph.nodes["d"] == {}
    assert list(graph) == list(graph.nodes) and len(graph) == 6


def test_add_node_copies_attributes():
    g = DiGraph()
    attrs = {"x": 1}
    g.add_node("n", **attrs)
    g.nodes["n"]["x"] = 2
    assert attrs == {"x": 1}


def test_edges_and_adjacency(graph):
    graph.add_edge("root", "a")  # duplicate edges are ignored
    assert graph.edges == [
        ("root", "a"),
        ("root", "b"),
        ("a", "c"),
        ("b", "c"),
        ("c", "d"),
        ("other", "b"),
    ]
    assert graph.successors("root") == ["a", "b"]
    assert graph.predecessors("c") == ["a", "b"]
    assert graph.predecessors("root") == []


def test_contains(graph):
    assert "a" in graph
    assert "zzz" not in graph
    assert ["unhashable"] not in graph


def test_missing_node(graph):
    for method in (
        graph.successors,
        graph.predecessors,
        graph.first_path,
        graph.forward_transitive_closure,
        graph.backward_transitive_closure,
    ):
        with pytest.raises(ValueError, match="'zzz'"):
            method("zzz")


def test_closures(graph):
    assert graph.forward_transitive_closure("a") == {"a", "c", "d"}
    assert graph.forward_transitive_closure("root") == {"root", "a", "b", "c", "d"}
    assert graph.backward_transitive_closure("c") == {"c", "a", "b", "root", "other"}
    assert graph.backward_transitive_closure("root") == {"root"}


def test_first_path(graph):
    assert graph.first_path("d") == ["root", "a", "c", "d"]
    assert graph.first_path("root") == ["root"]
    assert graph.first_path("b") == ["root", "b"]


def test_first_path_prefers_earliest_root():
    # late_root reaches x directly, but early_root was added first.
    g = DiGraph()
    g.add_node("early_root")
    g.add_edge("late_root", "x")
    g.add_edge("early_root", "m")
    g.add_edge("m", "x")
    assert g.first_path("x") == ["early_root", "m", "x"]


def test_first_path_through_cycle_without_root():
    g = DiGraph()
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", "a")
    assert g.first_path("c") == ["a", "b", "c"]


def test_all_paths(graph):
    dot = graph.all_paths("root", "d")
    assert dot.startswith("digraph G {\n") and dot.endswith("}\n")
    edges = [line for line in dot.splitlines() if "->" in line]
    assert edges == [
        '"root" -> "a";',
        '"root" -> "b";',
        '"a" -> "c";',
        '"b" -> "c";',
        '"c" -> "d";',
    ]
    assert "other" not in graph.all_paths("root", "d")


def test_all_paths_unreachable(graph):
    dot = graph.all_paths("d", "root")
    assert "->" not in dot and dot.startswith("digraph G {\n") and dot.endswith("}\n")


def test_to_dot(graph):
    graph.add_node("lonely")
    graph.add_edge('we"ird', "a")
    dot = graph.to_dot()
    assert '"lonely";' in dot
    assert '"we\\"ird" -> "a";' in dot
    assert dot.count("->") == len(graph.edges)
    assert dot == graph.to_dot()  # deterministic


def test_long_chain_is_iterative():
    g = DiGraph()
    n = 50_000
    for i in range(n):
        g.add_edge(f"m{i}", f"m{i + 1}")
    assert len(g.first_path(f"m{n}")) == n + 1
    assert len(g.forward_transitive_closure("m0")) == n + 1
    assert len(g.backward_transitive_closure(f"m{n}")) == n + 1
    assert g.all_paths("m0", f"m{n}").count("->") == n
