"""Exporter hooks, dependency introspection and torchpack.analyze, against torch.package."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch
import torch.package
import torch.package.analyze

from torchpack import PackageExporter, PackageImporter, PackagingError
from torchpack.analyze import find_first_use_of_broken_modules, trace_dependencies

SOURCES = {
    "zoo/__init__.py": "",
    "zoo/animals.py": """
        import numpy
        from zoo import keeper, feeding


        class Cat:
            sound = "meow"

            def speak(self):
                return keeper.announce(self.sound)
    """,
    "zoo/keeper.py": """
        def announce(text):
            return text.upper()
    """,
    "zoo/feeding.py": """
        import zoo_billing
    """,
    "zoo_billing.py": "",
}


@pytest.fixture
def zoo(source_tree):
    source_tree(SOURCES)
    import zoo.animals

    return zoo.animals


def _export_with_hooks(exporter_class, target, cat) -> dict[str, list[str]]:
    calls: dict[str, list[str]] = {"intern": [], "extern": [], "mock": []}
    with exporter_class(target) as exporter:
        for action in calls:
            register = getattr(exporter, f"register_{action}_hook")
            register(lambda exp, name, action=action: calls[action].append(name))
        exporter.intern("zoo.**", exclude="zoo.feeding")
        exporter.extern("numpy.**")
        exporter.mock("zoo.feeding")
        exporter.save_pickle("zoo", "cat.pkl", cat)
    return calls


def test_hooks_are_called_once_per_module_like_torch_package(tmp_path: Path, zoo) -> None:
    ours = _export_with_hooks(PackageExporter, tmp_path / "ours.pt", zoo.Cat())
    theirs = _export_with_hooks(torch.package.PackageExporter, str(tmp_path / "t.pt"), zoo.Cat())
    for action, names in ours.items():
        assert len(names) == len(set(names)), f"{action} hook called twice for a module"
    # The parent `zoo` is a placeholder in both.
    assert set(ours["intern"]) == {"zoo.animals", "zoo.keeper"}
    assert ours["mock"] == ["zoo.feeding"]
    assert "numpy" in ours["extern"]
    # torch.package also calls the intern hook for each pickle ("<zoo.cat.pkl>"), which is
    # not a module.
    assert set(ours["intern"]) == set(theirs["intern"]) - {"<zoo.cat.pkl>"}
    assert sorted(ours["mock"]) == sorted(theirs["mock"])
    assert sorted(ours["extern"]) == sorted(theirs["extern"])


def test_hook_sees_the_exporter_and_removed_hooks_are_not_called(tmp_path: Path, zoo) -> None:
    seen, removed = [], []
    with PackageExporter(tmp_path / "p.pt") as exporter:
        exporter.intern("zoo.**")
        exporter.extern(["numpy.**", "zoo_billing"])
        exporter.register_extern_hook(lambda exp, name: seen.append((exp, name)))
        handle = exporter.register_extern_hook(lambda exp, name: removed.append(name))
        handle.remove()
        handle.remove()  # removing twice is harmless
        with exporter.register_intern_hook(lambda exp, name: removed.append(name)):
            pass
        exporter.save_pickle("zoo", "cat.pkl", zoo.Cat())
    assert removed == []
    assert {exp for exp, _ in seen} == {exporter}
    assert {"numpy", "zoo_billing"} <= {name for _, name in seen}


def test_hooks_run_in_registration_order_and_can_stop_the_export(tmp_path: Path, zoo) -> None:
    order = []

    def refuse_numpy(exporter, name):
        order.append(("check", name))
        if name == "numpy":
            raise RuntimeError("numpy is not allowed in this package")

    target = tmp_path / "p.pt"
    with pytest.raises(RuntimeError, match="numpy is not allowed"):
        with PackageExporter(target) as exporter:
            exporter.intern("zoo.**")
            exporter.extern(["numpy.**", "zoo_billing"])
            exporter.register_extern_hook(lambda exp, name: order.append(("first", name)))
            exporter.register_extern_hook(refuse_numpy)
            exporter.save_pickle("zoo", "cat.pkl", zoo.Cat())
    assert order[:2] == [("first", order[0][1]), ("check", order[0][1])]
    assert not target.exists()


def test_hooks_are_not_called_when_the_export_is_broken(tmp_path: Path, zoo) -> None:
    called = []
    with pytest.raises(PackagingError):
        with PackageExporter(tmp_path / "p.pt") as exporter:
            exporter.register_intern_hook(lambda exp, name: called.append(name))
            exporter.intern("zoo.**")  # numpy and zoo_billing match nothing
            exporter.save_pickle("zoo", "cat.pkl", zoo.Cat())
    assert called == []


def test_introspection_after_close(tmp_path: Path, zoo) -> None:
    with PackageExporter(tmp_path / "p.pt") as exporter:
        exporter.intern("zoo.**", exclude="zoo.feeding")
        exporter.extern("numpy.**")
        exporter.mock("zoo.feeding")
        exporter.deny("zoo_billing")
        exporter.save_pickle("zoo", "cat.pkl", zoo.Cat())
    assert exporter.interned_modules() == ["zoo.animals", "zoo.keeper"]
    assert exporter.mocked_modules() == ["zoo.feeding"]
    assert "numpy" in exporter.externed_modules()
    # zoo.feeding is mocked, so its own import of zoo_billing is never followed.
    assert exporter.denied_modules() == []
    assert exporter.get_rdeps("zoo.keeper") == ["zoo.animals"]
    paths = exporter.all_paths("<zoo.cat.pkl>", "zoo.keeper")
    assert '"<zoo.cat.pkl>" -> "zoo.animals"' in paths
    assert '"zoo.animals" -> "zoo.keeper"' in paths
    assert '"zoo.animals" -> "zoo.keeper"' in exporter.dependency_graph_string()


def _broken_export(exporter_class, cat, **kwargs) -> PackagingError:
    with pytest.raises(Exception) as info:
        with exporter_class(io.BytesIO(), **kwargs) as exporter:
            exporter.intern("zoo.**")
            exporter.extern("numpy.**")
            exporter.save_pickle("zoo", "cat.pkl", cat)
    assert type(info.value).__name__ == "PackagingError"
    return info.value


def test_debug_packaging_error_shows_the_path_to_each_broken_module(zoo) -> None:
    error = _broken_export(PackageExporter, zoo.Cat(), debug=True)
    assert set(error.broken_modules) == {"zoo_billing"}
    assert "Pulled in by: <zoo.cat.pkl> -> zoo.animals -> zoo.feeding -> zoo_billing" in str(error)
    theirs = _broken_export(torch.package.PackageExporter, zoo.Cat(), debug=True)
    assert "zoo_billing" in str(theirs)


def test_packaging_error_text_is_torch_packages(zoo) -> None:
    ours = _broken_export(PackageExporter, zoo.Cat())
    theirs = _broken_export(torch.package.PackageExporter, zoo.Cat())
    assert str(ours) == str(theirs)
    assert "Pulled in by" not in str(ours)


def test_find_first_use_of_broken_modules_matches_torch_package(zoo) -> None:
    ours = find_first_use_of_broken_modules(_broken_export(PackageExporter, zoo.Cat()))
    theirs = torch.package.analyze.find_first_use_of_broken_modules(
        _broken_export(torch.package.PackageExporter, zoo.Cat())
    )
    assert ours == {"zoo_billing": ["<zoo.cat.pkl>", "zoo.animals", "zoo.feeding", "zoo_billing"]}
    assert ours["zoo_billing"][1:] == theirs["zoo_billing"][1:]
    with pytest.raises(TypeError):
        find_first_use_of_broken_modules(ValueError("not a packaging error"))


def test_trace_dependencies_finds_the_modules_a_call_runs(zoo) -> None:
    cat = zoo.Cat()
    used = trace_dependencies(lambda c: c.speak(), [(cat,), (cat,)])
    assert {"zoo.animals", "zoo.keeper"} <= set(used)
    assert used == sorted(used)
    assert "sys" not in used  # the tracer's own bookkeeping is not reported
    theirs = torch.package.analyze.trace_dependencies(lambda c: c.speak(), [(cat,)])
    assert set(theirs) <= set(used)
    assert sys.getprofile() is None


def test_trace_dependencies_reports_packaged_modules_by_real_name(tmp_path: Path, zoo) -> None:
    with PackageExporter(tmp_path / "p.pt") as exporter:
        exporter.intern("zoo.**")
        exporter.extern(["numpy.**", "zoo_billing"])
        exporter.save_pickle("zoo", "cat.pkl", zoo.Cat())
    cat = PackageImporter(tmp_path / "p.pt").load_pickle("zoo", "cat.pkl")
    used = trace_dependencies(cat.speak, [()])
    assert {"zoo.animals", "zoo.keeper"} <= set(used)
    assert not any("torch_package" in name for name in used)


def test_trace_dependencies_with_a_torch_model() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    used = trace_dependencies(model, [(torch.ones(1, 2),)])
    assert {"torch.nn.modules.linear", "torch.nn.modules.activation"} <= set(used)
