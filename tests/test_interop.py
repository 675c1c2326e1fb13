"""torchpack and torch.package read each other's archives: a real CNN gives identical outputs."""

from __future__ import annotations

import importlib
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.package

import torchpack

SOURCES = {
    "inet/__init__.py": """
        from .model import CNN
    """,
    "inet/blocks.py": """
        from torch import nn


        class ConvBlock(nn.Module):
            def __init__(self, cin, cout):
                super().__init__()
                self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
                self.bn = nn.BatchNorm2d(cout)
                self.act = nn.ReLU()

            def forward(self, x):
                return self.act(self.bn(self.conv(x)))
    """,
    "inet/model.py": """
        import torch
        from torch import nn

        import inet_tracking

        from .blocks import ConvBlock


        class CNN(nn.Module):
            def __init__(self, classes=4):
                super().__init__()
                self.features = nn.Sequential(ConvBlock(3, 8), nn.MaxPool2d(2), ConvBlock(8, 16))
                self.pool = nn.AdaptiveAvgPool2d(1)
                self.dropout = nn.Dropout(0.5)
                self.head = nn.Linear(16, classes)
                self.register_buffer("scale", torch.tensor(1.5))

            def forward(self, x):
                x = self.pool(self.features(x)).flatten(1)
                return self.head(self.dropout(x)) * self.scale

            def report(self, loss):
                inet_tracking.log_metric("loss", loss)


        def labels():
            import torch_package_importer

            return torch_package_importer.load_text("inet.assets", "labels.txt").split()
    """,
    "inet_tracking.py": """
        def log_metric(name, value):
            print(name, value)
    """,
}

LABELS = "cat dog bird fish"


@pytest.fixture
def inet(source_tree):
    source_tree(SOURCES)
    return importlib.import_module("inet")


@pytest.fixture
def trained(inet):
    """A CNN whose BatchNorm statistics moved away from their defaults, in eval mode."""
    torch.manual_seed(0)
    model = inet.CNN()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 12, 12))
    return model.eval()


@pytest.fixture
def batch():
    return torch.randn(5, 3, 12, 12, generator=torch.Generator().manual_seed(42))


def fill(exporter: Any, model: Any, protocol: int) -> None:
    exporter.intern("inet.**")
    exporter.mock("inet_tracking")
    exporter.save_pickle("model", "model.pkl", model, pickle_protocol=protocol)
    exporter.save_pickle("model", "state.pkl", model.state_dict(), pickle_protocol=protocol)
    exporter.save_text("inet.assets", "labels.txt", LABELS)
    exporter.save_text("notes", "readme.txt", "a packaged CNN")


def export_torchpack(path: Path, model: Any, protocol: int) -> Path:
    with torchpack.PackageExporter(path) as exporter:
        fill(exporter, model, protocol)
    return path


def export_torch_package(path: Path, model: Any, protocol: int) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.package's TypedStorage deprecation warnings
        with torch.package.PackageExporter(str(path)) as exporter:
            fill(exporter, model, protocol)
    return path


def check_loaded(importer: Any, inet: Any, original: Any, batch: torch.Tensor) -> None:
    """Everything the archive holds, as seen through ``importer`` (either implementation)."""
    with torch.no_grad():
        expected = original(batch)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.package's importer warns about TypedStorage
        model = importer.load_pickle("model", "model.pkl")
        state = importer.load_pickle("model", "state.pkl")
    assert type(model).__name__ == "CNN"
    assert type(model).__module__.endswith(".inet.model")
    assert type(model).__module__.startswith("<torch_package_")
    assert type(model) is not inet.CNN
    assert not model.training
    with torch.no_grad():
        assert torch.equal(model(batch), expected)

    assert list(state) == list(original.state_dict())
    for name, tensor in original.state_dict().items():
        assert torch.equal(state[name], tensor), name
        assert state[name].dtype == tensor.dtype, name
    fresh = inet.CNN()
    fresh.load_state_dict(state)
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(batch), expected)

    assert importer.load_text("inet.assets", "labels.txt") == LABELS
    assert importer.load_text("notes", "readme.txt") == "a packaged CNN"
    assert importer.import_module("inet.model").labels() == LABELS.split()

    mocked = importer.import_module("inet_tracking")
    with pytest.raises(NotImplementedError):
        mocked.log_metric("loss", 1.0)
    with pytest.raises(NotImplementedError):
        model.report(0.5)


def pickle_protocol_of(path: Path, record: str) -> int:
    with zipfile.ZipFile(path) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(record)]
        data = archive.read(name)
    assert data[0] == 0x80
    return data[1]


@pytest.mark.parametrize("protocol", [3, 4])
def test_torchpack_archive_loads_in_torch_package(tmp_path, inet, trained, batch, protocol):
    path = export_torchpack(tmp_path / "ours.pt", trained, protocol)
    assert pickle_protocol_of(path, "model/model.pkl") == protocol
    check_loaded(torch.package.PackageImporter(str(path)), inet, trained, batch)


@pytest.mark.parametrize("protocol", [3, 4])
def test_torch_package_archive_loads_in_torchpack(tmp_path, inet, trained, batch, protocol):
    path = export_torch_package(tmp_path / "theirs.pt", trained, protocol)
    assert pickle_protocol_of(path, "model/model.pkl") == protocol
    check_loaded(torchpack.PackageImporter(path), inet, trained, batch)


@pytest.mark.parametrize("protocol", [3, 4])
def test_torchpack_archive_loads_in_torchpack(tmp_path, inet, trained, batch, protocol):
    path = export_torchpack(tmp_path / "ours.pt", trained, protocol)
    check_loaded(torchpack.PackageImporter(path), inet, trained, batch)


@pytest.mark.parametrize("protocol", [3, 4])
def test_unzipped_torch_package_archive_loads_in_torchpack(
    tmp_path, inet, trained, batch, protocol
):
    path = export_torch_package(tmp_path / "theirs.pt", trained, protocol)
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    assert (folder / "theirs" / ".data" / "version").is_file()
    check_loaded(torchpack.PackageImporter(folder / "theirs"), inet, trained, batch)
    importer = torchpack.PackageImporter(str(folder / "theirs"))
    assert importer.file_structure().has_file("inet/model.py")


def test_unzipped_torchpack_archive_loads_in_both(tmp_path, inet, trained, batch):
    path = export_torchpack(tmp_path / "ours.pt", trained, 3)
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    check_loaded(torchpack.PackageImporter(folder / "ours"), inet, trained, batch)
    # torch.package 2.13 cannot load tensors from any unzipped folder (not even its own:
    # '_HasStorage' object has no attribute '_typed_storage'); code and text it can.
    theirs = torch.package.PackageImporter(str(folder / "ours"))
    assert theirs.load_text("inet.assets", "labels.txt") == LABELS
    assert theirs.import_module("inet.model").labels() == LABELS.split()


def test_reexport_of_a_torch_package_archive_with_torchpack(tmp_path, inet, trained, batch):
    """The docs' re-export recipe, for a torch.package archive read by torchpack."""
    theirs = export_torch_package(tmp_path / "theirs.pt", trained, 3)
    importer = torchpack.PackageImporter(theirs)
    model = importer.load_pickle("model", "model.pkl")
    ours = tmp_path / "again.pt"
    with torchpack.PackageExporter(ours, importer=(importer, torchpack.sys_importer)) as e:
        e.intern("inet.**")
        e.mock("inet_tracking")
        e.save_pickle("model", "model.pkl", model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = torch.package.PackageImporter(str(ours)).load_pickle("model", "model.pkl")
    with torch.no_grad():
        assert torch.equal(again(batch), trained(batch))
