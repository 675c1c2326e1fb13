"""Archives written to a path get their CRC-32s from torchpack, not PyTorch's writer: the bytes
must be exactly those PyTorch's checksumming writer produces, and every checksum valid."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from torchpack import PackageExporter, PackageImporter
from torchpack.archive.format import FORMAT_VERSION
from torchpack.archive.writer import ArchiveWriter

BIG = torch.randn(1 << 19).untyped_storage()  # 2 MiB: checksummed in a second thread
SMALL = torch.arange(10).untyped_storage()


def write_with_torchpack(path: Path, records: list[tuple[str, bytes | torch.UntypedStorage]]):
    writer = ArchiveWriter(path, manifest=False)  # PyTorch writes no manifest
    for name, data in records:
        if isinstance(data, torch.UntypedStorage):
            writer.write_storage(name, data)
        else:
            writer.write(name, data)
    writer.zip_file.write_record("direct.txt", b"written past torchpack", 22)
    writer.commit()


def write_with_pytorch(path: Path, records: list[tuple[str, bytes | torch.UntypedStorage]]):
    writer = torch._C.PyTorchFileWriter(str(path), True)
    writer.set_min_version(FORMAT_VERSION)
    for name, data in records:
        size = data.nbytes() if isinstance(data, torch.UntypedStorage) else len(data)
        writer.write_record(name, data, size)
    writer.write_record("direct.txt", b"written past torchpack", 22)
    writer.write_end_of_file()


def test_bytes_equal_pytorchs_checksumming_writer(tmp_path):
    records = [
        ("model/model.pkl", b"pickle bytes"),
        (".data/0.storage", BIG),
        (".data/1.storage", SMALL),
        (".data/extern_modules", b""),
    ]
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    write_with_torchpack(tmp_path / "ours" / "pkg.pt", records)
    write_with_pytorch(tmp_path / "theirs" / "pkg.pt", records)
    ours = (tmp_path / "ours" / "pkg.pt").read_bytes()
    assert ours == (tmp_path / "theirs" / "pkg.pt").read_bytes()
    with zipfile.ZipFile(tmp_path / "ours" / "pkg.pt") as archive:
        assert archive.testzip() is None
        serialization_id = archive.read("pkg/.data/serialization_id")
    assert not serialization_id.endswith(b"0" * 20), "the checksum part of the id is filled in"


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_exported_package_checksums_are_valid(tmp_path):
    model = nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 4))
    scripted = torch.jit.script(nn.Linear(3, 3))
    path = tmp_path / "model.pt"
    with PackageExporter(path) as exporter:
        exporter.save_pickle("model", "model.pkl", model)
        exporter.save_pickle("model", "scripted.pkl", scripted)
        exporter.save_text("model", "notes.txt", "hello")
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
    loaded = PackageImporter(path).load_pickle("model", "model.pkl")
    assert torch.equal(loaded[0].weight, model[0].weight)


def test_more_records_than_a_plain_zip_can_count(tmp_path):
    # Past 65535 entries the counts live in the ZIP64 end record.
    records = [(f"r/{i}.txt", str(i).encode()) for i in range(70_000)]
    path = tmp_path / "many.pt"
    write_with_torchpack(path, records)
    with zipfile.ZipFile(path) as archive:
        assert len(archive.infolist()) > 70_000
        assert archive.testzip() is None
