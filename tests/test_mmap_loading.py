"""``PackageImporter(..., mmap=True)``: storages are views of the mapped archive file."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import pytest
import torch
import torch.package
from torch import nn

from torchpack import PackageExporter, PackageImporter
from torchpack.archive.reader import ZipArchiveReader
from torchpack.errors import ArchiveError, IntegrityError

DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int8,
    torch.uint8,
    torch.bool,
    torch.complex64,
]


def export(path: Path, obj: object) -> None:
    with PackageExporter(path) as exporter:
        exporter.save_pickle("data", "obj.pkl", obj)


def mapped_file_of(tensor: torch.Tensor) -> str | None:
    """The file backing the memory that holds ``tensor``'s data, from /proc/self/maps."""
    address = tensor.untyped_storage().data_ptr()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            start, end = (int(part, 16) for part in fields[0].split("-"))
            if start <= address < end:
                return fields[5].strip() if len(fields) == 6 else None
    return None


def test_tensors_equal_and_backed_by_the_archive(tmp_path):
    tensors = {str(dtype): (torch.arange(37) % 5).to(dtype) for dtype in DTYPES}
    tensors["matrix"] = torch.randn(64, 33)
    tensors["strided"] = torch.randn(10, 12)[:, ::3]
    path = tmp_path / "tensors.pt"
    export(path, tensors)

    loaded = PackageImporter(path, mmap=True).load_pickle("data", "obj.pkl")
    eager = PackageImporter(path).load_pickle("data", "obj.pkl")

    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name], tensor), name
        assert mapped_file_of(loaded[name]) == str(path), name
        assert mapped_file_of(eager[name]) != str(path), name


def test_records_are_aligned_for_every_dtype(tmp_path):
    path = tmp_path / "aligned.pt"
    export(path, [torch.ones(3, dtype=torch.float64), torch.ones(5, dtype=torch.int8)])
    loaded = PackageImporter(path, mmap=True).load_pickle("data", "obj.pkl")
    for tensor in loaded:
        assert tensor.untyped_storage().data_ptr() % 64 == 0


def test_shared_storages_stay_shared(tmp_path):
    base = torch.arange(20, dtype=torch.float32)
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
    model[1].weight = model[0].weight
    path = tmp_path / "shared.pt"
    export(path, {"base": base, "view": base[5:15].view(2, 5), "model": model})

    loaded = PackageImporter(path, mmap=True).load_pickle("data", "obj.pkl")
    loaded["base"][7] = -1.0
    assert loaded["view"][0, 2] == -1.0
    tied = loaded["model"]
    assert tied[1].weight is tied[0].weight
    assert torch.equal(tied[0].weight, model[0].weight)


def test_writes_stay_in_memory_not_in_the_file(tmp_path):
    path = tmp_path / "cow.pt"
    export(path, torch.zeros(1000))
    before = path.read_bytes()
    loaded = PackageImporter(path, mmap=True).load_pickle("data", "obj.pkl")
    loaded += 3.0
    assert path.read_bytes() == before
    assert torch.equal(PackageImporter(path).load_pickle("data", "obj.pkl"), torch.zeros(1000))


@pytest.mark.parametrize("how", ["re-export", "delete and recreate"])
def test_archive_replaced_after_load(tmp_path, how):
    path = tmp_path / "model.pt"
    original = torch.randn(4096)
    export(path, original)
    loaded = PackageImporter(path, mmap=True).load_pickle("data", "obj.pkl")

    if how == "delete and recreate":
        path.unlink()
    export(path, torch.full((4096,), 7.0))

    assert torch.equal(loaded, original)
    assert torch.equal(
        PackageImporter(path, mmap=True).load_pickle("data", "obj.pkl"), torch.full((4096,), 7.0)
    )


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
def test_archive_written_by_torch_package(tmp_path):
    path = tmp_path / "theirs.pt"
    tensor = torch.randn(3, 7)
    with torch.package.PackageExporter(path) as exporter:
        exporter.save_pickle("data", "obj.pkl", {"t": tensor, "v": tensor[1]})
    loaded = PackageImporter(path, mmap=True).load_pickle("data", "obj.pkl")
    assert torch.equal(loaded["t"], tensor)
    assert loaded["v"].untyped_storage().data_ptr() == loaded["t"].untyped_storage().data_ptr()
    assert mapped_file_of(loaded["t"]) == str(path)


def test_unzipped_package_maps_each_storage_file(tmp_path):
    path = tmp_path / "model.pt"
    tensor = torch.randn(50)
    export(path, tensor)
    with zipfile.ZipFile(path) as archive:
        archive.extractall(tmp_path / "unzipped")
    folder = tmp_path / "unzipped" / "model"

    loaded = PackageImporter(folder, mmap=True).load_pickle("data", "obj.pkl")
    assert torch.equal(loaded, tensor)
    assert os.path.dirname(mapped_file_of(loaded)) == str(folder / ".data")


def test_file_object_is_a_clear_error(tmp_path):
    path = tmp_path / "model.pt"
    export(path, torch.ones(2))
    with open(path, "rb") as f, pytest.raises(ArchiveError, match="mmap=True needs .* file path"):
        PackageImporter(f, mmap=True)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ArchiveError, match="no such file"):
        PackageImporter(tmp_path / "absent.pt", mmap=True)


def test_map_location_still_applies(tmp_path):
    path = tmp_path / "model.pt"
    export(path, torch.ones(3))
    loaded = PackageImporter(path, mmap=True).load_pickle("data", "obj.pkl", map_location="cpu")
    assert torch.equal(loaded, torch.ones(3))


def test_separate_loads_do_not_share_memory(tmp_path):
    path = tmp_path / "model.pt"
    export(path, torch.zeros(100))
    importer = PackageImporter(path, mmap=True)
    first = importer.load_pickle("data", "obj.pkl")
    second = importer.load_pickle("data", "obj.pkl")
    first += 1.0
    assert torch.equal(second, torch.zeros(100))


def test_storages_mapped_after_the_path_was_given_a_new_file(tmp_path):
    # Record offsets come from the file the reader opened; a later mapping must be of that one.
    path = tmp_path / "model.pt"
    original = torch.randn(1000)
    export(path, original)
    reader = ZipArchiveReader(path, mmap=True)
    with PackageExporter(path) as exporter:
        exporter.save_text("padding", "shift.txt", "x" * 5000)
        exporter.save_pickle("data", "obj.pkl", torch.full((1000,), 9.0))

    storage = reader.storage_reader()(".data/0.storage", original.nbytes)
    loaded = torch.empty(0, dtype=torch.uint8).set_(storage).view(torch.float32)
    assert torch.equal(loaded, original)


def flip_a_storage_byte(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(".data/0.storage"))
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", f.read(4))
        f.seek(info.header_offset + 30 + name_length + extra_length + 10)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_storages_are_checked_only_with_verify_true(tmp_path):
    path = tmp_path / "model.pt"
    export(path, torch.zeros(1000))
    flip_a_storage_byte(path)

    unchecked = PackageImporter(path, mmap=True).load_pickle("data", "obj.pkl")
    assert not torch.equal(unchecked, torch.zeros(1000))
    with pytest.raises(IntegrityError, match=r"\.data/0\.storage"):
        PackageImporter(path, mmap=True, verify=True).load_pickle("data", "obj.pkl")
