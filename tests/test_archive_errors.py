"""Unreadable packages give an ArchiveError that names the package and the record."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from torchpack import ArchiveError, PackageExporter, PackageImporter
from torchpack.errors import MalformedArchiveError


@pytest.fixture
def tensor_package(tmp_path: Path) -> Path:
    target = tmp_path / "tensors.pt"
    with PackageExporter(target) as exporter:
        exporter.save_pickle("data", "t.pkl", torch.arange(64, dtype=torch.float32))
    return target


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="no such file") as info:
        PackageImporter(tmp_path / "absent.pt")
    assert str(tmp_path / "absent.pt") in str(info.value)


def test_random_bytes(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(ArchiveError, match="not a readable package archive") as info:
        PackageImporter(junk)
    assert str(junk) in str(info.value)


def test_missing_resource_names_record(tensor_package: Path) -> None:
    with pytest.raises(ArchiveError, match=r"record 'data/absent\.pkl': no such record"):
        PackageImporter(tensor_package).load_pickle("data", "absent.pkl")


def test_storage_shorter_than_its_tensor(tensor_package: Path, tmp_path: Path) -> None:
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(tensor_package) as archive:
        archive.extractall(folder)
    root = folder / "tensors"
    storage = root / ".data" / "0.storage"
    storage.write_bytes(storage.read_bytes()[:100])
    with pytest.raises(
        ArchiveError, match="storage holds 100 bytes but its tensor needs 256"
    ) as info:
        PackageImporter(root).load_pickle("data", "t.pkl")
    assert info.value.record == ".data/0.storage"


def test_folder_without_data(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match=r"folder has no \.data/version"):
        PackageImporter(tmp_path)


def test_not_a_torch_package_archive(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save(torch.ones(2), plain)
    with pytest.raises(ArchiveError, match="this is not a torch.package archive"):
        PackageImporter(plain)


def test_unzipped_record_linking_outside_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "linked.pt"
    with PackageExporter(target) as exporter:
        exporter.save_text("res", "a.txt", "inside")
    with zipfile.ZipFile(target) as archive:
        archive.extractall(tmp_path / "unzipped")
    root = tmp_path / "unzipped" / "linked"
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (root / "res" / "a.txt").unlink()
    (root / "res" / "a.txt").symlink_to(secret)
    with pytest.raises(MalformedArchiveError, match="leads outside the package folder") as info:
        PackageImporter(root)
    assert info.value.record == "res/a.txt"
