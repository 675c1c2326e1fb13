"""One strict reading of a ZIP's structure: what Python's zipfile and PyTorch's reader could read
differently is refused (torch-free: the command line reads archives this way too)."""

from __future__ import annotations

import struct
import zipfile

import pytest
import torch

from torchpack import PackageExporter
from torchpack.archive.zip_structure import ZipStructureError, read_entries


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("zip") / "a.pt"
    with PackageExporter(path) as exporter:
        exporter.save_pickle("res", "t.pkl", torch.arange(4.0))
    return path.read_bytes()


def _entries(data: bytes) -> list:
    return read_entries(lambda offset, size: data[offset : offset + size], len(data))


def test_a_torchpack_archive_reads_as_zipfile_reads_it(archive, tmp_path):
    path = tmp_path / "a.pt"
    path.write_bytes(archive)
    with zipfile.ZipFile(path) as theirs:
        expected = [(i.filename, i.header_offset, i.file_size, i.CRC) for i in theirs.infolist()]
    ours = [(e.name, e.header_offset, e.size, e.crc) for e in _entries(archive)]
    assert ours == expected


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    patched = bytearray(data)
    struct.pack_into(fmt, patched, offset, value)
    return bytes(patched)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d + b"\0", "does not end the file"),
        (lambda d: b"\0" + d, "ZIP64 locator points to"),
        # The end record says the directory is elsewhere than its ZIP64 version says.
        (lambda d: _patched(d, d.rfind(b"PK\x05\x06") + 16, "<I", 1), "disagree"),
        (lambda d: _patched(d, d.rfind(b"PK\x06\x07") + 16, "<I", 2), "disk"),
        (lambda d: _patched(d, d.find(b"PK\x01\x02") + 8, "<H", 0x0001), "encrypted"),
        (lambda d: _patched(d, d.find(b"PK\x01\x02") + 10, "<H", 12), "compression method 12"),
        (lambda d: _patched(d, d.find(b"PK\x01\x02") + 42, "<I", 1), "no local file header"),
    ],
)
def test_ambiguous_or_unsupported_structure_is_refused(archive, edit, message):
    with pytest.raises(ZipStructureError, match=message):
        _entries(edit(archive))


def test_a_name_neither_ascii_nor_marked_utf8_is_refused(tmp_path):
    path = tmp_path / "cp437.zip"
    with zipfile.ZipFile(path, "w") as out:
        out.writestr("p/caf\u00e9.txt", b"x")
    data = bytearray(path.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature) + flags_at
        struct.pack_into("<H", data, at, struct.unpack_from("<H", data, at)[0] & ~0x0800)
    with pytest.raises(ZipStructureError, match="neither ASCII nor marked UTF-8"):
        _entries(bytes(data))


def test_a_comment_hiding_another_end_record_is_refused(tmp_path):
    path = tmp_path / "comment.zip"
    with zipfile.ZipFile(path, "w") as out:
        out.writestr("p/a.txt", b"x")
        out.comment = b"PK\x05\x06" + b"\0" * 18
    with pytest.raises(ZipStructureError):
        _entries(path.read_bytes())
