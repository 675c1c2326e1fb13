"""TorchScript modules inside packages: written through torch.jit's own reduce hooks."""

from __future__ import annotations

import textwrap
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
import torch.package
from conftest import records_of, run_python

from torchpack import PackageExporter, PackageImporter

SOURCES = {
    "scripted/__init__.py": "",
    "scripted/model.py": """
        import torch


        class Block(torch.nn.Module):
            def __init__(self, width: int):
                super().__init__()
                self.lin = torch.nn.Linear(width, width)

            def forward(self, x):
                return torch.relu(self.lin(x))


        class Hybrid(torch.nn.Module):
            \"\"\"Eager code around scripted submodules; one weight shared with eager code.\"\"\"

            def __init__(self):
                super().__init__()
                self.eager = torch.nn.Linear(4, 4)
                self.first = torch.jit.script(Block(4))
                self.second = torch.jit.script(Block(4))
                self.tied = torch.jit.script(self.eager)

            def forward(self, x):
                return self.second(self.first(self.eager(x))) + self.tied(x)
    """,
}


@pytest.fixture
def scripted(source_tree):
    source_tree(SOURCES)
    import scripted.model

    torch.manual_seed(0)
    return scripted.model


@pytest.fixture(autouse=True)
def allow_torch_package_torchscript(monkeypatch):
    # torch.package gates TorchScript export behind a module flag; the oracle needs it open.
    monkeypatch.setattr(torch.package.package_exporter, "_gate_torchscript_serialization", False)


def _export(path: Path, exporter_class, objects: dict[str, object]) -> Path:
    with exporter_class(str(path)) as exporter:
        exporter.intern("scripted.**")
        for name, obj in objects.items():
            exporter.save_pickle("model", name, obj)
    return path


def _load(importer_class, path: Path, name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.package: TypedStorage deprecation
        return importer_class(str(path)).load_pickle("model", name)


def _storage_bytes(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(i.file_size for i in archive.infolist() if i.filename.endswith(".storage"))


def test_scripted_module_round_trip(tmp_path: Path, scripted) -> None:
    module = torch.jit.script(scripted.Block(5))
    path = _export(tmp_path / "s.pt", PackageExporter, {"s.pkl": module})
    loaded = _load(PackageImporter, path, "s.pkl")
    assert isinstance(loaded, torch.jit.ScriptModule)
    batch = torch.randn(3, 5)
    assert torch.equal(loaded(batch), module(batch))
    assert loaded.code == module.code


def test_torchscript_gate_is_open_by_default_and_honoured(
    tmp_path: Path, scripted, monkeypatch
) -> None:
    import torchpack.package_exporter

    assert torchpack.package_exporter._gate_torchscript_serialization is False
    monkeypatch.setattr(torchpack.package_exporter, "_gate_torchscript_serialization", True)
    with pytest.raises(Exception, match="_gate_torchscript_serialization"):
        _export(
            tmp_path / "gated.pt", PackageExporter, {"s.pkl": torch.jit.script(scripted.Block(5))}
        )
    assert not (tmp_path / "gated.pt").exists()


def test_eager_module_with_scripted_submodules(tmp_path: Path, scripted) -> None:
    model = scripted.Hybrid()
    path = _export(tmp_path / "h.pt", PackageExporter, {"h.pkl": model})
    loaded = _load(PackageImporter, path, "h.pkl")
    batch = torch.randn(2, 4)
    assert torch.equal(loaded(batch), model(batch))
    # The weight the eager Linear shares with its scripted twin is one tensor again.
    assert loaded.eager.weight.data_ptr() == loaded.tied.weight.data_ptr()
    loaded.eager.weight.data.add_(1)
    assert torch.equal(loaded.tied.weight, loaded.eager.weight)


def test_code_is_written_once_per_type(tmp_path: Path, scripted) -> None:
    # Hybrid holds two instances of one scripted type; a second pickle holds a third.
    objects = {"h.pkl": scripted.Hybrid(), "b.pkl": torch.jit.script(scripted.Block(4))}
    path = _export(tmp_path / "h.pt", PackageExporter, objects)
    code_files = [r for r in records_of(path) if r.startswith(".data/ts_code/code/")]
    block_code = [r for r in code_files if "/scripted/model" in r and r.endswith(".py")]
    linear_code = [r for r in code_files if "/nn/modules/linear" in r and r.endswith(".py")]
    assert len(block_code) == 1, code_files
    assert len(linear_code) == 1, code_files
    loaded = _load(PackageImporter, path, "b.pkl")
    assert torch.equal(loaded(torch.ones(1, 4)), objects["b.pkl"](torch.ones(1, 4)))


def test_shared_tensors_are_written_once_and_stay_shared(tmp_path: Path, scripted) -> None:
    block = scripted.Block(64)
    scripted_block = torch.jit.script(block)
    objects = {"both.pkl": {"eager": block, "script": scripted_block, "again": scripted_block}}
    path = _export(tmp_path / "both.pt", PackageExporter, objects)
    weight_bytes = sum(p.numel() * p.element_size() for p in block.parameters())
    assert _storage_bytes(path) == weight_bytes
    loaded = _load(PackageImporter, path, "both.pkl")
    assert loaded["again"] is loaded["script"]
    assert loaded["eager"].lin.weight.data_ptr() == loaded["script"].lin.weight.data_ptr()


@pytest.mark.parametrize("direction", ["torchpack->torch.package", "torch.package->torchpack"])
def test_torchscript_packages_load_across_implementations(
    tmp_path: Path, scripted, direction: str
) -> None:
    model = scripted.Hybrid()
    exporter_class, importer_class = (
        (PackageExporter, torch.package.PackageImporter)
        if direction.startswith("torchpack")
        else (torch.package.PackageExporter, PackageImporter)
    )
    path = _export(tmp_path / "h.pt", exporter_class, {"h.pkl": model})
    loaded = _load(importer_class, path, "h.pkl")
    batch = torch.randn(2, 4)
    assert torch.equal(loaded(batch), model(batch))
    assert loaded.eager.weight.data_ptr() == loaded.tied.weight.data_ptr()


def test_same_torchscript_records_as_torch_package(tmp_path: Path, scripted) -> None:
    model = scripted.Hybrid()
    ours = _export(tmp_path / "ours.pt", PackageExporter, {"h.pkl": model})
    theirs = _export(tmp_path / "theirs.pt", torch.package.PackageExporter, {"h.pkl": model})

    def data_records(path: Path) -> set[str]:
        return {r for r in records_of(path) if r.startswith(".data/")}

    # The integrity manifest is torchpack's one addition (torch.package ignores .data/ files).
    assert data_records(ours) == data_records(theirs) | {".data/manifest.blake3"}


@pytest.mark.parametrize("map_location", ["cpu", torch.device("cpu"), None])
def test_map_location_reaches_scripted_modules(tmp_path: Path, scripted, map_location) -> None:
    model = scripted.Hybrid()
    path = _export(tmp_path / "h.pt", PackageExporter, {"h.pkl": model})
    loaded = PackageImporter(path).load_pickle("model", "h.pkl", map_location=map_location)
    assert loaded.first.lin.weight.device.type == "cpu"
    assert torch.equal(loaded(torch.ones(1, 4)), model(torch.ones(1, 4)))


def test_function_map_location_is_refused_for_scripted_modules(tmp_path: Path, scripted) -> None:
    """TorchScript takes only a device; both implementations pass torch.jit's error on."""
    model = scripted.Hybrid()
    path = _export(tmp_path / "h.pt", PackageExporter, {"h.pkl": model})
    for importer in (PackageImporter(path), torch.package.PackageImporter(str(path))):
        with pytest.raises(ValueError, match="map_location should be"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importer.load_pickle("model", "h.pkl", map_location=lambda s, loc: s)


def test_unzipped_package_with_torchscript_is_a_clear_error(tmp_path: Path, scripted) -> None:
    module = torch.jit.script(scripted.Block(2))
    path = _export(tmp_path / "s.pt", PackageExporter, {"s.pkl": module})
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    with pytest.raises(RuntimeError, match="directory is not supported"):
        PackageImporter(folder / "s").load_pickle("model", "s.pkl")


def test_archives_do_not_depend_on_where_the_source_lives(tmp_path: Path) -> None:
    """torch.jit records source file paths; the package holds them relative to sys.path."""
    source = SOURCES["scripted/model.py"]
    archives = []
    for checkout in ("one", "somewhere/else/two"):
        root = tmp_path / checkout
        (root / "scripted").mkdir(parents=True)
        (root / "scripted" / "__init__.py").write_text("")
        (root / "scripted" / "model.py").write_text(textwrap.dedent(source))
        target = tmp_path / f"out-{len(archives)}" / "h.pt"
        target.parent.mkdir()
        run_python(
            f"""
            import torch
            torch.manual_seed(0)
            from scripted.model import Hybrid
            from torchpack import PackageExporter
            with PackageExporter({str(target)!r}) as exporter:
                exporter.intern("scripted.**")
                exporter.save_pickle("model", "h.pkl", Hybrid())
            """,
            extra_path=[root],
            cwd=root,
            # torch.jit orders a module's constants by iterating a set of their names.
            env={"PYTHONHASHSEED": "0"},
        )
        archives.append(target.read_bytes())
    assert archives[0] == archives[1]
    assert str(tmp_path).encode() not in archives[0]


def test_scripted_errors_point_at_the_portable_source_path(tmp_path: Path, source_tree) -> None:
    source_tree(
        {
            "failing.py": """
                import torch


                class Checked(torch.nn.Module):
                    def forward(self, x):
                        if x.sum() < 0:
                            raise ValueError("negative input")
                        return x
            """
        }
    )
    from failing import Checked

    path = tmp_path / "f.pt"
    with PackageExporter(path) as exporter:
        exporter.intern("failing")
        exporter.save_pickle("model", "m.pkl", torch.jit.script(Checked()))
    for importer in (PackageImporter(path), torch.package.PackageImporter(str(path))):
        loaded = importer.load_pickle("model", "m.pkl")
        with pytest.raises(Exception, match="negative input") as info:
            loaded(-torch.ones(2))
        assert 'File "failing.py", line 8' in str(info.value)
        assert str(tmp_path) not in str(info.value)


def test_tensor_attributes_outside_the_state_dict_survive(tmp_path: Path, source_tree) -> None:
    source_tree(
        {
            "lookup.py": """
                import torch


                class Lookup(torch.nn.Module):
                    table: torch.Tensor

                    def __init__(self):
                        super().__init__()
                        self.table = torch.arange(10.0) * 3  # neither parameter nor buffer

                    def forward(self, i: int):
                        return self.table[i]
            """
        }
    )
    from lookup import Lookup

    module = torch.jit.script(Lookup())
    assert "table" not in module.state_dict()
    path = tmp_path / "l.pt"
    with PackageExporter(path) as exporter:
        exporter.intern("lookup")
        exporter.save_pickle("model", "m.pkl", module)
    loaded = PackageImporter(path).load_pickle("model", "m.pkl")
    assert torch.equal(loaded.table, torch.arange(10.0) * 3)
    assert loaded(4).item() == 12.0
