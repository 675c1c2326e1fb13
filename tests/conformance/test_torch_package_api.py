"""torch.package's documented behaviours, written against torch.package's own module paths."""

from __future__ import annotations

import importlib
import importlib.machinery
import io
import os
import sys
import zipfile
from pathlib import Path
from textwrap import dedent

import pytest
import torch
import torch.fx
from torch.package import (
    EmptyMatchError,
    Importer,
    PackageExporter,
    PackageImporter,
    PackagingError,
    is_from_package,
    sys_importer,
)
from torch.package._mangling import PackageMangler, demangle, get_mangle_prefix, is_mangled
from torch.package.analyze import find_first_use_of_broken_modules

IMPLEMENTATION = os.environ.get("CONFORMANCE_IMPLEMENTATION", "torch.package")
FOOTER = (
    "Set debug=True when invoking PackageExporter for a visualization of where broken "
    "modules are coming from!"
)


def test_the_implementation_under_test() -> None:
    assert PackageExporter.__module__ == f"{IMPLEMENTATION}.package_exporter"
    assert PackageImporter.__module__ == f"{IMPLEMENTATION}.package_importer"
    # torch's own users of torch.package see the same implementation.
    assert torch.fx.graph_module.PackageImporter is PackageImporter


def test_module_paths_torch_code_imports() -> None:
    exporter_module = importlib.import_module("torch.package.package_exporter")
    assert exporter_module.PackagingError is PackagingError
    assert exporter_module.EmptyMatchError is EmptyMatchError
    assert isinstance(exporter_module._gate_torchscript_serialization, bool)
    for path, name in [
        ("torch.package._digraph", "DiGraph"),
        ("torch.package.glob_group", "GlobGroup"),
        ("torch.package.importer", "OrderedImporter"),
        ("torch.package.file_structure_representation", "Directory"),
        ("torch.package.analyze.trace_dependencies", "trace_dependencies"),
        ("torch.package._package_pickler", "create_pickler"),
        ("torch.package._package_unpickler", "PackageUnpickler"),
        ("torch.package._stdlib", "is_stdlib_module"),
    ]:
        assert callable(getattr(importlib.import_module(path), name))


def test_mangling() -> None:
    mangler = PackageMangler()
    name = mangler.mangle("models.resnet")
    assert is_mangled(name)
    assert demangle(name) == "models.resnet"
    assert mangler.demangle(name) == "models.resnet"
    assert get_mangle_prefix(name) == mangler.parent_name()
    assert PackageMangler().demangle(name) == name  # another importer's name passes through
    with pytest.raises(AssertionError):
        mangler.mangle("")


def _export(buffer: io.BytesIO, obj: object, **patterns: object) -> PackageImporter:
    with PackageExporter(buffer) as exporter:
        for action, pattern in patterns.items():
            getattr(exporter, action)(pattern)
        exporter.save_pickle("model", "model.pkl", obj)
    buffer.seek(0)
    return PackageImporter(buffer)


def test_model_from_a_module_pytest_imported(buffer) -> None:
    from conformance_models.test_nn_modules import TwoLayer

    assert type(sys.modules["conformance_models.test_nn_modules"].__spec__.loader).__name__ == (
        "AssertionRewritingHook"
    )
    model = TwoLayer().eval()
    x = torch.randn(2, 4)
    importer = _export(buffer, model, intern="conformance_models.**")
    loaded = importer.load_pickle("model", "model.pkl")
    assert is_from_package(loaded)
    assert (
        type(loaded).__module__
        == f"{importer._mangler.parent_name()}.conformance_models.test_nn_modules"
    )
    assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("tracer", ["symbolic_trace", "custom_tracer"])
def test_fx_graph_module(buffer, tracer: str) -> None:
    from conformance_models.test_nn_modules import GateIsALeaf, TwoLayer

    model = TwoLayer().eval()
    if tracer == "symbolic_trace":
        graph_module = torch.fx.symbolic_trace(model)
    else:
        graph_module = torch.fx.GraphModule(model, GateIsALeaf().trace(model))
    x = torch.randn(3, 4)
    importer = _export(buffer, graph_module, intern="**")
    loaded = importer.load_pickle("model", "model.pkl")
    assert isinstance(loaded, torch.fx.GraphModule)
    assert torch.equal(loaded(x), graph_module(x))


def test_torchscript_module(buffer, monkeypatch) -> None:
    from conformance_models.test_nn_modules import TwoLayer

    monkeypatch.setattr(
        importlib.import_module("torch.package.package_exporter"),
        "_gate_torchscript_serialization",
        False,
    )
    model = TwoLayer().eval()
    x = torch.randn(5, 4)
    # Traced on the input it is checked with: tracing records the branch `doubled` takes for
    # that input, and another random input may take the other one.
    scripted = torch.jit.trace(model, x)
    importer = _export(buffer, {"eager": model, "scripted": scripted}, intern="**")
    loaded = importer.load_pickle("model", "model.pkl")
    assert isinstance(loaded["scripted"], torch.jit.ScriptModule)
    assert torch.equal(loaded["scripted"](x), model(x))
    assert torch.equal(loaded["eager"](x), model(x))


def test_save_module_of_a_module_loaded_from_a_package(buffer) -> None:
    with PackageExporter(buffer) as exporter:
        exporter.intern("conformance_models.**")
        exporter.save_module("conformance_models.test_nn_modules")
    buffer.seek(0)
    first = PackageImporter(buffer)
    loaded_module = first.import_module("conformance_models.test_nn_modules")
    assert is_mangled(loaded_module.__name__)

    again = io.BytesIO()
    with PackageExporter(again, importer=(first, sys_importer)) as exporter:
        exporter.intern("**")
        exporter.save_module(loaded_module.__name__)
    again.seek(0)
    second = PackageImporter(again)
    assert second.file_structure().has_file("conformance_models/test_nn_modules.py")
    assert hasattr(second.import_module("conformance_models.test_nn_modules"), "TwoLayer")


def test_save_module_of_a_missing_module_raises_at_once(buffer) -> None:
    with PackageExporter(buffer) as exporter:
        with pytest.raises(ModuleNotFoundError):
            exporter.save_module("conformance_models.no_such_module")


def test_unmatched_modules_error_text(buffer) -> None:
    from conformance_models.settings.values import Threshold

    with pytest.raises(PackagingError) as info:
        with PackageExporter(buffer) as exporter:
            exporter.save_pickle("model", "model.pkl", Threshold(0.5))
    assert str(info.value) == (
        "\n* Module did not match against any action pattern. Extern, mock, or intern it.\n"
        "    conformance_models.settings.values\n\n" + FOOTER + "\n"
    )
    assert find_first_use_of_broken_modules(info.value) == {
        "conformance_models.settings.values": [
            "<model.model.pkl>",
            "conformance_models.settings.values",
        ]
    }


def test_dependency_resolution_error_text(buffer) -> None:
    with pytest.raises(PackagingError) as info:
        with PackageExporter(buffer) as exporter:
            exporter.save_source_string("too_far", "from ... import anything\n")
    assert str(info.value) == (
        "\n* Dependency resolution failed.\n    too_far\n"
        "      Context: attempted relative import beyond top-level package\n\n" + FOOTER + "\n"
    )


def test_c_extension_error_text(buffer) -> None:
    class CompiledOnly(Importer):
        """Modules that come from compiled files, with a loader that has no source."""

        def __init__(self) -> None:
            self.modules = {}
            for name in ("fast_a", "fast_b"):
                spec = importlib.machinery.ModuleSpec(name, self)
                module = importlib.util.module_from_spec(spec)
                module.__file__ = f"{name}.so"
                self.modules[name] = module

        def import_module(self, module_name: str):
            return self.modules[module_name]

    with pytest.raises(PackagingError) as info:
        with PackageExporter(buffer, importer=CompiledOnly()) as exporter:
            exporter.intern(["fast_a", "fast_b"])
            exporter.save_source_string("uses_them", "import fast_a\nimport fast_b\n")
    assert (
        str(info.value)
        == dedent(
            """
        * Module is a C extension module. torch.package supports Python modules only.
            fast_a
            fast_b

        """
        )
        + FOOTER
        + "\n"
    )


def test_debug_shows_where_broken_modules_come_from(buffer) -> None:
    from conformance_models.settings.values import Threshold

    with pytest.raises(PackagingError) as info:
        with PackageExporter(buffer, debug=True) as exporter:
            exporter.save_pickle("model", "model.pkl", Threshold(0.5))
    message = str(info.value)
    assert "<model.model.pkl> -> conformance_models.settings.values" in message
    assert FOOTER not in message


def test_parent_package_with_code_of_its_own_is_a_placeholder(buffer) -> None:
    from conformance_models.settings.values import Threshold

    with PackageExporter(buffer) as exporter:
        exporter.intern("**")
        exporter.save_pickle("model", "model.pkl", Threshold(0.5))
        assert exporter.interned_modules() == ["conformance_models.settings.values"]
    buffer.seek(0)
    importer = PackageImporter(buffer)
    assert importer.load_pickle("model", "model.pkl").value == 0.5
    assert not hasattr(importer.import_module("conformance_models.settings"), "NAME")


def test_resource_readers(tmp_path: Path) -> None:
    archive = tmp_path / "resources.pt"
    with PackageExporter(archive) as exporter:
        exporter.save_text("assets", "labels.txt", "cat\ndog\n")
        exporter.save_text("assets.deeper", "notes.txt", "deep")
    zipped = PackageImporter(archive)
    assert zipped.get_resource_reader("no_such_package") is None
    reader = zipped.get_resource_reader("assets")
    assert reader.open_resource("labels.txt").read() == b"cat\ndog\n"
    with pytest.raises(FileNotFoundError):
        reader.resource_path("labels.txt")

    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "unzipped")
    folder = tmp_path / "unzipped" / "resources"
    unzipped = PackageImporter(folder)
    path = unzipped.get_resource_reader("assets").resource_path("labels.txt")
    assert path == os.path.join(folder, "assets", "labels.txt")
    assert Path(path).read_text() == "cat\ndog\n"


def test_sources_are_read_through_loaders_that_remap_files(buffer, tmp_path: Path) -> None:
    (tmp_path / "remapped_module.py").write_text("WHERE = 'original'\n")
    (tmp_path / "remapped_module_elsewhere.py").write_text("WHERE = 'remapped'\n")

    class RemappingLoader(importlib.machinery.SourceFileLoader):
        def get_filename(self, name: str | None = None) -> str:
            return str(tmp_path / "remapped_module_elsewhere.py")

    class RemappingFinder:
        def find_spec(self, fullname, path=None, target=None):
            if fullname != "remapped_module":
                return None
            loader = RemappingLoader(fullname, str(tmp_path / "remapped_module.py"))
            return importlib.util.spec_from_loader(fullname, loader)

    sys.meta_path.insert(0, RemappingFinder())
    try:
        with PackageExporter(buffer) as exporter:
            exporter.intern("remapped_module")
            exporter.save_source_string("user", "import remapped_module\n")
    finally:
        sys.meta_path.pop(0)
        sys.modules.pop("remapped_module", None)
    buffer.seek(0)
    importer = PackageImporter(buffer)
    assert importer.import_module("remapped_module").WHERE == "remapped"
