"""Archive layout: the ZIP records a package holds, where they live, and how they are stored."""

from __future__ import annotations

import importlib
import io
import platform
import re
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.package

from torchpack import PackageExporter, PackageImporter

SOURCES = {
    "lpkg/__init__.py": """
        from .mod import Net


        class Config:
            def __init__(self, **values):
                self.values = values
    """,
    "lpkg/mod.py": """
        import collections

        import extlib
        import mocklib
        import torch
        from torch import nn

        from . import helpers


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 2, 3)
                self.bn = nn.BatchNorm2d(2)
                self.fc = nn.Linear(2, 3)
                self.counts = collections.Counter()

            def forward(self, x):
                x = helpers.squash(self.bn(self.conv(x)))
                return self.fc(x.mean((2, 3))) * extlib.SCALE
    """,
    "lpkg/helpers.py": """
        import torch


        def squash(x):
            return torch.tanh(x)
    """,
    "extlib.py": "SCALE = 2.0\n",
    "mocklib.py": "def log(*args):\n    print(*args)\n",
}


@pytest.fixture
def lpkg(source_tree):
    source_tree(SOURCES)
    return importlib.import_module("lpkg")


def fill(exporter: Any, lpkg: Any) -> None:
    """The same export, for torchpack's and torch.package's exporters."""
    torch.manual_seed(0)
    exporter.intern("lpkg.**")
    exporter.extern("extlib")
    exporter.mock("mocklib")
    exporter.save_pickle("model", "model.pkl", lpkg.Net())
    exporter.save_pickle("config", "config.pkl", lpkg.Config(lr=0.1, tags=["a", "b"]))
    exporter.save_text("res", "notes.txt", "some notes")
    exporter.save_binary("res.raw", "blob.bin", bytes(range(256)))
    exporter.save_module("lpkg")


def export_ours(target: Any, lpkg: Any) -> Any:
    with PackageExporter(target) as exporter:
        fill(exporter, lpkg)
    return target


def export_theirs(target: Any, lpkg: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.package's TypedStorage warnings
        with torch.package.PackageExporter(target) as exporter:
            fill(exporter, lpkg)
    return target


def records(archive: Any) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(archive) as z:
        return {info.filename: info for info in z.infolist()}


def read(archive: Any, name: str) -> bytes:
    with zipfile.ZipFile(archive) as z:
        return z.read(name)


def data_offset(archive_bytes: bytes, info: zipfile.ZipInfo) -> int:
    """Where a record's bytes start: after its *local* header, name and extra field."""
    header = archive_bytes[info.header_offset : info.header_offset + 30]
    (signature,) = struct.unpack("<I", header[:4])
    assert signature == 0x04034B50, "not a local file header"
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length


# -- top folder ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "top"),
    [("out.pt", "out"), ("my.model.pt", "my.model"), ("noext", "noext")],
)
def test_records_live_under_one_folder_named_after_the_file(tmp_path, lpkg, file_name, top):
    path = export_ours(tmp_path / file_name, lpkg)
    names = list(records(path))
    assert names
    assert {name.split("/", 1)[0] for name in names} == {top}
    assert f"{top}/.data/version" in names
    (tmp_path / "theirs").mkdir()
    theirs = export_theirs(str(tmp_path / "theirs" / file_name), lpkg)
    assert {name.split("/", 1)[0] for name in records(theirs)} == {top}


def test_file_object_archive_uses_torch_default_folder(lpkg):
    ours = export_ours(io.BytesIO(), lpkg)
    theirs = export_theirs(io.BytesIO(), lpkg)
    ours.seek(0)
    theirs.seek(0)
    our_tops = {name.split("/", 1)[0] for name in records(ours)}
    their_tops = {name.split("/", 1)[0] for name in records(theirs)}
    assert our_tops == their_tops == {"archive"}


# -- framework records ---------------------------------------------------------------------


@pytest.fixture
def archive(tmp_path, lpkg) -> Path:
    return export_ours(tmp_path / "out.pt", lpkg)


def test_version_record(archive):
    assert read(archive, "out/.data/version") == b"6\n"
    assert "out/version" not in records(archive)


def test_extern_modules_record(archive):
    text = read(archive, "out/.data/extern_modules").decode("utf-8")
    assert text.endswith("\n")
    lines = text.splitlines()
    assert all(line and line == line.strip() for line in lines)
    assert len(lines) == len(set(lines))
    assert "extlib" in lines
    assert "torch" in lines or any(line.startswith("torch.") for line in lines)
    assert "collections" in lines
    # Interned and mocked modules are not extern.
    assert not {"lpkg", "lpkg.mod", "lpkg.helpers", "mocklib"} & set(lines)
    assert lines == PackageImporter(archive).extern_modules


def test_python_version_record(archive):
    assert read(archive, "out/.data/python_version").decode() == platform.python_version()
    assert PackageImporter(archive).python_version() == platform.python_version()


def test_storage_records(archive, lpkg):
    names = records(archive)
    storages = sorted(name for name in names if name.endswith(".storage"))
    assert storages, names
    assert all(re.fullmatch(r"out/\.data/\d+\.storage", name) for name in storages)
    keys = sorted(int(name.rsplit("/", 1)[1].split(".")[0]) for name in storages)
    assert keys == list(range(len(keys)))
    torch.manual_seed(0)
    model_storages = {t.untyped_storage().data_ptr() for t in lpkg.Net().state_dict().values()}
    assert len(storages) == len(model_storages)


def test_user_files_and_sources_at_the_root(archive, lpkg):
    names = records(archive)
    for name in [
        "out/model/model.pkl",
        "out/config/config.pkl",
        "out/res/notes.txt",
        "out/res/raw/blob.bin",
        "out/lpkg/__init__.py",
        "out/lpkg/mod.py",
        "out/lpkg/helpers.py",
        "out/mocklib.py",
        "out/_mock.py",
    ]:
        assert name in names, name
    source_root = Path(lpkg.__file__).parent
    assert read(archive, "out/lpkg/mod.py") == (source_root / "mod.py").read_bytes()
    assert read(archive, "out/lpkg/__init__.py") == (source_root / "__init__.py").read_bytes()
    assert read(archive, "out/res/notes.txt") == b"some notes"
    assert read(archive, "out/res/raw/blob.bin") == bytes(range(256))
    # Externed modules are not in the package.
    assert "out/extlib.py" not in names


def test_every_record_is_stored_and_64_byte_aligned(archive):
    data = archive.read_bytes()
    infos = records(archive)
    for name, info in infos.items():
        assert info.compress_type == zipfile.ZIP_STORED, name
        assert info.compress_size == info.file_size, name
    for name, info in infos.items():
        if name.endswith(".storage"):
            assert data_offset(data, info) % 64 == 0, name
    # torch's writer aligns every record, not only storages.
    assert all(data_offset(data, info) % 64 == 0 for info in infos.values())
    with zipfile.ZipFile(archive) as z:
        assert z.testzip() is None
        for name, info in infos.items():
            start = data_offset(data, info)
            assert data[start : start + info.file_size] == z.read(name)


# -- against torch.package -----------------------------------------------------------------


def _relative(archive: Any) -> dict[str, zipfile.ZipInfo]:
    return {name.split("/", 1)[1]: info for name, info in records(archive).items()}


def test_same_records_as_torch_package(tmp_path, lpkg):
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    ours = export_ours(tmp_path / "ours" / "model.pt", lpkg)
    theirs = export_theirs(str(tmp_path / "theirs" / "model.pt"), lpkg)
    our_records = _relative(ours)
    their_records = _relative(theirs)
    # The integrity manifest is torchpack's one addition (torch.package ignores .data/ files).
    assert set(our_records) == set(their_records) | {".data/manifest.blake3"}
    same_bytes = [
        ".data/version",
        ".data/python_version",
        "res/notes.txt",
        "res/raw/blob.bin",
        "lpkg/__init__.py",
        "lpkg/mod.py",
        "lpkg/helpers.py",
        "byteorder",
    ]
    for name in same_bytes:
        assert read(ours, f"model/{name}") == read(theirs, f"model/{name}"), name
    for name in our_records:
        if name.endswith(".storage"):
            assert our_records[name].file_size == their_records[name].file_size, name
    our_externs = set(read(ours, "model/.data/extern_modules").decode().split())
    their_externs = set(read(theirs, "model/.data/extern_modules").decode().split())
    assert our_externs == their_externs


def test_storages_hold_the_same_bytes_as_torch_package(tmp_path, lpkg):
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    ours = export_ours(tmp_path / "ours" / "model.pt", lpkg)
    theirs = export_theirs(str(tmp_path / "theirs" / "model.pt"), lpkg)
    our_storages = sorted(
        read(ours, f"model/{name}") for name in _relative(ours) if name.endswith(".storage")
    )
    their_storages = sorted(
        read(theirs, f"model/{name}") for name in _relative(theirs) if name.endswith(".storage")
    )
    assert our_storages == their_storages


def test_torch_package_and_torchpack_read_each_others_layout(tmp_path, lpkg):
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    ours = export_ours(tmp_path / "ours" / "model.pt", lpkg)
    theirs = export_theirs(str(tmp_path / "theirs" / "model.pt"), lpkg)
    x = torch.randn(1, 1, 6, 6)
    torch.manual_seed(0)
    expected = lpkg.Net().eval()(x)
    for model in (
        PackageImporter(theirs).load_pickle("model", "model.pkl"),
        torch.package.PackageImporter(str(ours)).load_pickle("model", "model.pkl"),
    ):
        assert torch.equal(model.eval()(x), expected)
