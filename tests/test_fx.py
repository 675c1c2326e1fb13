"""torch.fx GraphModules inside packages: generated code is saved as source and imported back."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.fx
import torch.package
from conftest import records_of, run_python

from torchpack import PackageExporter, PackageImporter, sys_importer

SOURCES = {
    "graphs/__init__.py": "",
    "graphs/ops.py": """
        import torch
        import torch.fx


        def scaled_sum(x, y):
            # Data-dependent control flow: symbolic tracing cannot look inside, so it is wrapped.
            if x.sum() > 0:
                return x + 2 * y
            return x - y
    """,
    "graphs/model.py": """
        import torch
        from torch import nn

        from graphs.ops import scaled_sum

        # Wrapped where it is called: tracing records a call instead of running its body.
        torch.fx.wrap("scaled_sum")

        class Gate(nn.Module):
            def forward(self, x):
                return x * torch.sigmoid(x)


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = nn.Linear(6, 6)
                self.gate = Gate()
                self.out = nn.Linear(6, 3)

            def forward(self, x):
                h = self.gate(self.inp(x))
                return self.out(scaled_sum(h, x))


        class KeepGates(torch.fx.Tracer):
            \"\"\"Keeps Gate modules as calls instead of tracing into them.\"\"\"

            def is_leaf_module(self, m, qualname):
                return isinstance(m, Gate) or super().is_leaf_module(m, qualname)
    """,
}


@pytest.fixture
def graphs(source_tree):
    root = source_tree(SOURCES)
    import graphs.model

    torch.manual_seed(0)
    return graphs.model, root


def _traced(model_module, custom_tracer: bool) -> torch.fx.GraphModule:
    net = model_module.Net()
    if not custom_tracer:
        return torch.fx.symbolic_trace(net)
    graph = model_module.KeepGates().trace(net)
    return torch.fx.GraphModule(net, graph)


def _export(path: Path, exporter_class, graph_module, **kwargs) -> Path:
    with exporter_class(str(path), **kwargs) as exporter:
        exporter.intern("graphs.**")
        exporter.save_pickle("model", "graph.pkl", graph_module)
    return path


def _load(importer_class, path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.package: TypedStorage deprecation
        return importer_class(str(path)).load_pickle("model", "graph.pkl")


BATCH = torch.linspace(-1, 1, 12).reshape(2, 6)


@pytest.mark.parametrize("custom_tracer", [False, True], ids=["symbolic_trace", "custom_tracer"])
def test_graph_module_round_trip(tmp_path: Path, graphs, custom_tracer: bool) -> None:
    model_module, _ = graphs
    traced = _traced(model_module, custom_tracer)
    path = _export(tmp_path / "g.pt", PackageExporter, traced)
    loaded = _load(PackageImporter, path)
    assert isinstance(loaded, torch.fx.GraphModule)
    assert torch.equal(loaded(BATCH), traced(BATCH))
    assert torch.equal(loaded(-BATCH), traced(-BATCH))  # the wrapped function's other branch
    # The loaded code calls the packaged copy of the wrapped function, not the original.
    assert "_torch_package_" in loaded.code and "graphs_ops_scaled_sum" in loaded.code
    # The generated forward is a module of the package, written as source.
    assert any(r.startswith("fx-generated/") and r.endswith(".py") for r in records_of(path))
    call_targets = {str(n.target) for n in loaded.graph.nodes if n.op == "call_module"}
    assert ("gate" in call_targets) is custom_tracer


def test_graph_module_loads_without_the_source(tmp_path: Path, graphs) -> None:
    model_module, root = graphs
    traced = _traced(model_module, custom_tracer=True)
    path = _export(tmp_path / "g.pt", PackageExporter, traced)
    expected = traced(BATCH)
    torch.save(expected, tmp_path / "expected.pt")
    run_python(
        f"""
        import importlib.util, sys, torch
        assert importlib.util.find_spec("graphs") is None, "the model source must be absent"
        from torchpack import PackageImporter
        loaded = PackageImporter({str(path)!r}).load_pickle("model", "graph.pkl")
        batch = torch.linspace(-1, 1, 12).reshape(2, 6)
        assert torch.equal(loaded(batch), torch.load({str(tmp_path / "expected.pt")!r}))
        assert type(loaded.gate).__module__.endswith(">.graphs.model")
        """,
        cwd=tmp_path,
    )
    assert str(root) not in str(path)


@pytest.mark.parametrize("direction", ["torchpack->torch.package", "torch.package->torchpack"])
def test_graph_modules_load_across_implementations(tmp_path: Path, graphs, direction) -> None:
    model_module, _ = graphs
    traced = _traced(model_module, custom_tracer=True)
    exporter_class, importer_class = (
        (PackageExporter, torch.package.PackageImporter)
        if direction.startswith("torchpack")
        else (torch.package.PackageExporter, PackageImporter)
    )
    loaded = _load(importer_class, _export(tmp_path / "g.pt", exporter_class, traced))
    assert torch.equal(loaded(BATCH), traced(BATCH))


def test_graph_module_from_a_package_is_saved_again(tmp_path: Path, graphs) -> None:
    model_module, _ = graphs
    traced = _traced(model_module, custom_tracer=True)
    importer = PackageImporter(_export(tmp_path / "g.pt", PackageExporter, traced))
    loaded = importer.load_pickle("model", "graph.pkl")
    again = _export(
        tmp_path / "again.pt", PackageExporter, loaded, importer=(importer, sys_importer)
    )
    assert torch.equal(_load(PackageImporter, again)(BATCH), traced(BATCH))


def test_graph_module_export_is_deterministic(tmp_path: Path, graphs) -> None:
    model_module, _ = graphs
    traced = _traced(model_module, custom_tracer=False)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = _export(tmp_path / "one" / "g.pt", PackageExporter, traced).read_bytes()
    second = _export(tmp_path / "two" / "g.pt", PackageExporter, traced).read_bytes()
    assert first == second
