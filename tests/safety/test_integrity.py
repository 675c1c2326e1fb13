"""The integrity manifest: written by every export, checked on load and by `torchpack verify`."""

from __future__ import annotations

import hashlib
import threading
import warnings
import zipfile
from pathlib import Path

import blake3
import pytest
import torch
import torch.package
from conftest import read_record, records_of, run_cli

from torchpack import PackageExporter, PackageImporter
from torchpack.errors import IntegrityError, IntegrityWarning, MalformedArchiveError

TRAILER = {".data/version", "byteorder", ".data/serialization_id"}


def _export(path: Path) -> Path:
    with PackageExporter(path) as exporter:
        exporter.save_text("res", "notes.txt", "hello")
        exporter.save_pickle("res", "t.pkl", {"w": torch.arange(1000, dtype=torch.float32)})
    return path


def _data_offset(path: Path, record: str) -> int:
    with zipfile.ZipFile(path) as archive:
        (info,) = [i for i in archive.infolist() if i.filename.split("/", 1)[1] == record]
        raw = path.read_bytes()
        name_length, extra_length = (
            int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little"),
            int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little"),
        )
        return info.header_offset + 30 + name_length + extra_length


def _flip_byte(path: Path, record: str, at: int = 17) -> Path:
    data = bytearray(path.read_bytes())
    data[_data_offset(path, record) + at] ^= 0x01
    flipped = path.with_name("flipped-" + path.name)
    flipped.write_bytes(bytes(data))
    return flipped


def test_manifest_lists_the_blake3_of_every_record(tmp_path):
    archive = _export(tmp_path / "m.pt")
    lines = read_record(archive, ".data/manifest.blake3").decode().splitlines()
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in lines}
    assert set(listed) == records_of(archive) - TRAILER - {".data/manifest.blake3"}
    assert list(listed) == sorted(listed)
    for record, digest in listed.items():
        assert blake3.blake3(read_record(archive, record)).hexdigest() == digest


def _with_sha256_manifest(archive: Path, target: Path) -> Path:
    """The same package as torchpack wrote it before BLAKE3: ``.data/manifest.sha256``."""
    with zipfile.ZipFile(archive) as source:
        records = [(i.filename.split("/", 1)[1], source.read(i)) for i in source.infolist()]
    kept = [(n, d) for n, d in records if n not in TRAILER | {".data/manifest.blake3"}]
    lines = sorted(f"{hashlib.sha256(data).hexdigest()}  {name}" for name, data in kept)
    manifest = "".join(line + "\n" for line in lines).encode()
    writer = torch._C.PyTorchFileWriter(str(target))
    writer.set_min_version(6)  # as PackageExporter does: `.data/version`
    for name, data in [*kept, (".data/manifest.sha256", manifest)]:
        writer.write_record(name, data, len(data))
    writer.write_end_of_file()
    return target


def test_packages_with_the_older_sha256_manifest_are_verified(tmp_path):
    legacy = _with_sha256_manifest(_export(tmp_path / "m.pt"), tmp_path / "legacy.pt")
    loaded = PackageImporter(legacy, verify=True).load_pickle("res", "t.pkl")
    assert torch.equal(loaded["w"], torch.arange(1000, dtype=torch.float32))
    result = run_cli("verify", str(legacy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "records match their sha256" in result.stdout
    assert "manifest sha256 " in result.stdout
    flipped = _flip_byte(legacy, ".data/0.storage")
    with pytest.raises(IntegrityError, match="sha256 is") as info:
        PackageImporter(flipped).load_pickle("res", "t.pkl")
    assert info.value.record == ".data/0.storage"


def test_a_package_with_both_manifests_is_refused(tmp_path):
    archive = _export(tmp_path / "m.pt")
    both = tmp_path / "both.pt"
    with zipfile.ZipFile(_with_sha256_manifest(archive, tmp_path / "legacy.pt")) as source:
        records = [(i.filename.split("/", 1)[1], source.read(i)) for i in source.infolist()]
    writer = torch._C.PyTorchFileWriter(str(both))
    writer.set_min_version(6)
    for name, data in records + [
        (".data/manifest.blake3", read_record(archive, ".data/manifest.blake3"))
    ]:
        if name not in TRAILER:
            writer.write_record(name, data, len(data))
    writer.write_end_of_file()
    with pytest.raises(MalformedArchiveError, match="two manifests"):
        PackageImporter(both)


def test_flipped_storage_byte_is_named_on_load_and_by_verify(tmp_path):
    flipped = _flip_byte(_export(tmp_path / "m.pt"), ".data/0.storage")
    for verify in (None, True):
        importer = PackageImporter(flipped, verify=verify)
        with pytest.raises(IntegrityError, match="changed after the package was written") as info:
            importer.load_pickle("res", "t.pkl")
        assert info.value.record == ".data/0.storage"
    result = run_cli("verify", str(flipped))
    assert result.returncode == 1
    assert "'.data/0.storage'" in result.stdout


def test_verify_false_loads_the_changed_bytes(tmp_path):
    # What torch.package does, and why the check matters: the flip goes unnoticed.
    flipped = _flip_byte(_export(tmp_path / "m.pt"), ".data/0.storage")
    loaded = PackageImporter(flipped, verify=False).load_pickle("res", "t.pkl")["w"]
    assert not torch.equal(loaded, torch.arange(1000, dtype=torch.float32))
    theirs = torch.package.PackageImporter(str(flipped)).load_pickle("res", "t.pkl")["w"]
    assert torch.equal(theirs, loaded)


def test_every_record_kind_is_checked(tmp_path):
    archive = _export(tmp_path / "m.pt")
    for record, load in [
        ("res/notes.txt", lambda i: i.load_text("res", "notes.txt")),
        ("res/t.pkl", lambda i: i.load_pickle("res", "t.pkl")),
    ]:
        with pytest.raises(IntegrityError) as info:
            load(PackageImporter(_flip_byte(archive, record, at=3)))
        assert info.value.record == record


def test_record_added_after_export_is_refused(tmp_path):
    archive = _export(tmp_path / "m.pt")
    with zipfile.ZipFile(archive, "a") as extra:
        extra.writestr("m/res/added.txt", "sneaked in")
    with pytest.raises(IntegrityError, match="not in the manifest") as info:
        PackageImporter(archive)
    assert info.value.record == "res/added.txt"
    assert PackageImporter(archive, verify=False).load_text("res", "added.txt") == "sneaked in"


def test_unzipped_package_is_verified_too(tmp_path):
    archive = _export(tmp_path / "m.pt")
    with zipfile.ZipFile(archive) as unzip:
        unzip.extractall(tmp_path / "unzipped")
    root = tmp_path / "unzipped" / "m"
    assert PackageImporter(root, verify=True).load_text("res", "notes.txt") == "hello"
    (root / "res" / "notes.txt").write_text("HELLO")
    with pytest.raises(IntegrityError) as info:
        PackageImporter(root).load_text("res", "notes.txt")
    assert info.value.record == "res/notes.txt"


def test_torch_package_loads_archives_with_a_manifest(tmp_path):
    archive = _export(tmp_path / "m.pt")
    theirs = torch.package.PackageImporter(str(archive))
    assert torch.equal(theirs.load_pickle("res", "t.pkl")["w"], torch.arange(1000.0))
    assert theirs.load_text("res", "notes.txt") == "hello"


def test_torch_package_archives_load_and_say_they_have_no_manifest(tmp_path):
    path = tmp_path / "theirs.pt"
    with torch.package.PackageExporter(str(path)) as exporter:
        exporter.save_pickle("res", "t.pkl", {"w": torch.arange(10.0)})
    assert torch.equal(PackageImporter(path).load_pickle("res", "t.pkl")["w"], torch.arange(10.0))
    with pytest.raises(IntegrityError, match="has no integrity manifest"):
        PackageImporter(path, verify=True)
    result = run_cli("verify", str(path))
    assert result.returncode == 2
    assert "has no integrity manifest" in result.stderr


def test_without_a_manifest_crc_catches_a_flipped_storage_byte(tmp_path):
    path = tmp_path / "theirs.pt"
    with torch.package.PackageExporter(str(path)) as exporter:
        exporter.save_pickle("res", "t.pkl", {"w": torch.arange(1000.0)})
    flipped = _flip_byte(path, ".data/0.storage")
    with pytest.raises(MalformedArchiveError, match="CRC mismatch") as info:
        PackageImporter(flipped).load_pickle("res", "t.pkl")
    assert info.value.record == ".data/0.storage"


def test_torchscript_records_are_hashed_too(tmp_path):
    path = tmp_path / "scripted.pt"
    scripted = torch.jit.script(torch.nn.Linear(3, 2))
    with PackageExporter(path) as exporter:
        exporter.save_pickle("res", "s.pkl", scripted)
    manifest = read_record(path, ".data/manifest.blake3").decode()
    # linear.py, or linear/___torch_mangle_N.py when this process scripted Linear before.
    code = next(r for r in records_of(path) if "nn/modules/linear" in r and r.endswith(".py"))
    assert f"  {code}\n" in manifest
    assert "crc32" not in manifest
    assert run_cli("verify", str(path)).returncode == 0
    loaded = PackageImporter(path, verify=True).load_pickle("res", "s.pkl")
    x = torch.randn(4, 3)
    assert torch.equal(loaded(x), scripted(x))
    result = run_cli("verify", str(_flip_byte(path, code, at=5)))
    assert result.returncode == 1
    assert f"record {code!r}: blake3 is" in result.stdout


def test_records_written_straight_into_zip_file_are_pinned_by_crc(tmp_path):
    # torch.package exposes exporter.zip_file; what is written there bypasses torchpack.
    path = tmp_path / "direct.pt"
    with PackageExporter(path) as exporter:
        exporter.save_text("res", "notes.txt", "hello")
        exporter.zip_file.write_record("res/direct.bin", b"raw bytes", 9)
    manifest = read_record(path, ".data/manifest.blake3").decode()
    assert "crc32  res/direct.bin\n" in manifest
    result = run_cli("verify", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 written straight into exporter.zip_file match their CRC-32" in result.stdout
    assert PackageImporter(path, verify=True).load_binary("res", "direct.bin") == b"raw bytes"
    flipped = _flip_byte(path, "res/direct.bin", at=2)
    assert "CRC mismatch" in run_cli("verify", str(flipped)).stdout
    with pytest.raises(MalformedArchiveError, match="CRC mismatch"):
        PackageImporter(flipped).load_binary("res", "direct.bin")


def test_verify_prints_the_manifest_digest(tmp_path):
    archive = _export(tmp_path / "m.pt")
    result = run_cli("verify", str(archive))
    assert result.returncode == 0
    digest = blake3.blake3(read_record(archive, ".data/manifest.blake3")).hexdigest()
    assert f"manifest blake3 {digest}" in result.stdout


def test_integrity_manifest_can_be_left_out(tmp_path):
    path = tmp_path / "plain.pt"
    with PackageExporter(path, integrity_manifest=False) as exporter:
        exporter.save_pickle("res", "t.pkl", {"w": torch.arange(10.0)})
    assert ".data/manifest.blake3" not in records_of(path)
    # Its layout is torchpack's: a missing manifest could be one removed to hide an edit.
    with pytest.warns(IntegrityWarning, match="integrity_manifest=False"):
        importer = PackageImporter(path)
    assert torch.equal(importer.load_pickle("res", "t.pkl")["w"], torch.arange(10.0))
    with pytest.raises(IntegrityError, match="has no integrity manifest"):
        PackageImporter(path, verify=True)


@pytest.mark.parametrize("verify", [None, True])
def test_storages_checked_while_the_next_chunk_is_mapped_still_stop_the_load(tmp_path, verify):
    """A second thread maps memory ahead of the reads (chunks of 4 MiB); a bad chunk still
    fails the load, and the thread is gone after it."""
    path = tmp_path / "layers.pt"
    layers = [torch.full((1_250_000,), float(i)) for i in range(6)]  # 5 MB each: two chunks
    with PackageExporter(path) as exporter:
        exporter.save_pickle("res", "layers.pkl", layers)
    loaded = PackageImporter(path, verify=verify).load_pickle("res", "layers.pkl")
    assert all(torch.equal(a, b) for a, b in zip(loaded, layers, strict=True))

    storages = sorted(r for r in records_of(path) if r.endswith(".storage"))
    flipped = _flip_byte(path, storages[3], at=4_500_000)
    with pytest.raises(IntegrityError) as info:
        PackageImporter(flipped, verify=verify).load_pickle("res", "layers.pkl")
    assert info.value.record == storages[3]
    assert not [t for t in threading.enumerate() if t.name.startswith("torchpack-read")]


class InPlace:
    """Changes the end of its tensor in __setstate__, while storages are still being checked."""

    def __init__(self, size: int) -> None:
        self.weights = torch.zeros(size)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.weights[-1000:] += 1


@pytest.mark.parametrize("verify", [None, True])
def test_setstate_that_edits_a_tensor_during_the_load_is_not_tampering(tmp_path, verify):
    path = tmp_path / "inplace.pt"
    with PackageExporter(path) as exporter:
        exporter.extern(__name__)
        exporter.save_pickle("res", "obj.pkl", [InPlace(16 << 20), InPlace(1 << 20)])
    for _ in range(3):
        first, second = PackageImporter(path, verify=verify).load_pickle("res", "obj.pkl")
        assert first.weights[-1].item() == 1 and second.weights[0].item() == 0


def _strip_manifest(path: Path, target: Path, edit: bytes | None = None) -> Path:
    """What someone hiding an edit does: rewrite the archive without the manifest."""
    with zipfile.ZipFile(path) as archive, zipfile.ZipFile(target, "w") as out:
        for info in archive.infolist():
            if info.filename.endswith(".data/manifest.blake3"):
                continue
            data = archive.read(info)
            if edit is not None and info.filename.endswith("res/notes.txt"):
                data = edit
            out.writestr(info, data)
    return target


def test_a_stripped_manifest_warns_and_verify_true_refuses(tmp_path):
    stripped = _strip_manifest(_export(tmp_path / "m.pt"), tmp_path / "stripped.pt", b"HELLO")
    with pytest.warns(IntegrityWarning, match=f"package {stripped} has no integrity manifest"):
        importer = PackageImporter(stripped)
    assert importer.load_text("res", "notes.txt") == "HELLO"
    with pytest.raises(IntegrityError, match="has no integrity manifest"):
        PackageImporter(stripped, verify=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PackageImporter(stripped, verify=False)


def test_torch_package_archives_load_without_a_warning(tmp_path):
    path = tmp_path / "theirs.pt"
    with torch.package.PackageExporter(str(path)) as exporter:
        exporter.save_pickle("res", "t.pkl", {"w": torch.arange(10.0), "b": torch.ones(2)})
        exporter.save_text("res", "notes.txt", "hello")
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntegrityWarning)
        assert PackageImporter(path).load_text("res", "notes.txt") == "hello"
    # Its records changed since PyTorch's writer sealed them: the seal no longer matches.
    edited = _strip_manifest(path, tmp_path / "edited.pt", b"HELLO")
    with pytest.warns(IntegrityWarning, match="serialization_id does not match"):
        PackageImporter(edited)
