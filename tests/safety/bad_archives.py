"""Builds the corpus of hostile and malformed packages that the safety tests load.

Every case starts from one valid package (a tensor pickle, a text resource and an interned
module ``victim``) and breaks one thing. Run it as a script to write the corpus to a folder::

    .venv/bin/python tests/safety/bad_archives.py OUT_DIR
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import sys
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from torchpack import PackageExporter
from torchpack.errors import ArchiveError, MalformedArchiveError, MissingModuleError

PICKLE = "data/t.pkl"
STORAGE = ".data/0.storage"
MODULE = "victim.py"
MANIFEST = ".data/manifest.sha256"


@dataclass(frozen=True)
class Case:
    """A broken package, and what loading it must raise.

    ``stage`` is where the problem shows: ``open`` (PackageImporter), ``load`` (load_pickle),
    ``load_safe`` (load_pickle with safe=True) or ``import`` (import_module of ``victim``).
    """

    name: str
    path: Path
    stage: str
    error: type[ArchiveError]
    record: str | None
    message: str


def make_valid(path: Path) -> Path:
    with PackageExporter(path) as exporter:
        exporter.save_source_string("victim", "VALUE = 41 + 1\n")
        exporter.save_text("data", "notes.txt", "hello")
        exporter.save_pickle("data", "t.pkl", {"t": torch.arange(64, dtype=torch.float32)})
    return path


def _records(path: Path) -> tuple[str, list[tuple[str, bytes]]]:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        top = infos[0].filename.split("/", 1)[0]
        return top, [(info.filename.split("/", 1)[1], archive.read(info)) for info in infos]


def rebuild(
    valid: Path,
    target: Path,
    change: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]],
    *,
    recompute_manifest: bool = True,
    compress: str | None = None,
) -> Path:
    """Rewrite ``valid`` with the standard library after ``change`` edits its records.

    The manifest is recomputed so that the damage is the case's own, not a digest mismatch.
    """
    top, records = _records(valid)
    records = change(records)
    if recompute_manifest:
        lines = sorted(
            f"{hashlib.sha256(data).hexdigest()}  {name}"
            for name, data in records
            if name != MANIFEST
            and name not in (".data/version", "byteorder")
            and name != ".data/serialization_id"
        )
        manifest = "".join(line + "\n" for line in lines).encode()
        records = [(n, manifest if n == MANIFEST else d) for n, d in records]
    with zipfile.ZipFile(target, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the duplicate-name case is deliberate
        for name, data in records:
            info = zipfile.ZipInfo(name if name.startswith("/") else f"{top}/{name}")
            info.compress_type = zipfile.ZIP_DEFLATED if name == compress else zipfile.ZIP_STORED
            archive.writestr(info, data)
    return target


def _replace(record: str, data: bytes | None) -> Callable:
    def change(records: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        if data is None:
            return [(n, d) for n, d in records if n != record]
        return [(n, data if n == record else d) for n, d in records]

    return change


def _add(record: str, data: bytes) -> Callable:
    return lambda records: [*records, (record, data)]


def _patch_central_entry(path: Path, record_suffix: str, field_offset: int, value: bytes) -> None:
    """Overwrite a field of a record's central-directory entry (offsets as in the ZIP spec)."""
    data = bytearray(path.read_bytes())
    position = data.find(b"PK\x01\x02")
    while position != -1:
        name_length = struct.unpack_from("<H", data, position + 28)[0]
        name = bytes(data[position + 46 : position + 46 + name_length]).decode()
        if name.endswith(record_suffix):
            data[position + field_offset : position + field_offset + len(value)] = value
            path.write_bytes(bytes(data))
            return
        position = data.find(b"PK\x01\x02", position + 4)
    raise AssertionError(f"no central entry for {record_suffix}")


def build_corpus(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    valid = make_valid(folder / "valid.pt")
    original = valid.read_bytes()
    _, records = _records(valid)
    pickle_bytes = dict(records)[PICKLE]
    cases: list[Case] = []

    def case(name: str, stage: str, error: type, record: str | None, message: str) -> Path:
        path = folder / f"{name}.pt"
        cases.append(Case(name, path, stage, error, record, message))
        return path

    case("empty", "open", MalformedArchiveError, None, "empty").write_bytes(b"")
    case("random_bytes", "open", MalformedArchiveError, None, "not a readable").write_bytes(
        bytes((i * 7919 + 13) % 256 for i in range(4096))
    )
    case("truncated", "open", MalformedArchiveError, None, "not a readable").write_bytes(
        original[: len(original) // 2]
    )
    case(
        "no_end_of_central_directory", "open", MalformedArchiveError, None, "not a readable"
    ).write_bytes(original[:-22])

    bad_crc = case("bad_crc", "load", MalformedArchiveError, PICKLE, "CRC mismatch")
    bad_crc.write_bytes(original)
    _patch_central_entry(bad_crc, PICKLE, 16, b"\xde\xad\xbe\xef")

    rebuild(
        valid,
        case("short_storage", "load", MalformedArchiveError, STORAGE, "storage holds 100 bytes"),
        lambda rs: [(n, d[:100] if n == STORAGE else d) for n, d in rs],
    )
    rebuild(
        valid,
        case("truncated_pickle", "load", MalformedArchiveError, PICKLE, "truncated or corrupt"),
        _replace(PICKLE, pickle_bytes[: len(pickle_bytes) // 2]),
    )
    rebuild(
        valid,
        case("garbage_pickle", "load", MalformedArchiveError, PICKLE, "truncated or corrupt"),
        _replace(PICKLE, b"\x80\x03\xff\xfe\xfd garbage"),
    )
    depth = 100_000
    rebuild(
        valid,
        case("deep_pickle", "load_safe", MalformedArchiveError, PICKLE, "nests deeper than"),
        _replace(PICKLE, b"\x80\x02" + b"(" * depth + b"l" * depth + b"."),
    )
    rebuild(
        valid,
        case("missing_module", "load", MissingModuleError, PICKLE, "'nowhere_module'"),
        _replace(PICKLE, b"\x80\x02cnowhere_module\nThing\n)\x81."),
    )
    rebuild(
        valid,
        case("no_version", "open", MalformedArchiveError, ".data/version", "missing"),
        _replace(".data/version", None),
    )
    rebuild(
        valid,
        case("future_version", "open", MalformedArchiveError, ".data/version", "version 99"),
        _replace(".data/version", b"99\n"),
    )
    rebuild(
        valid,
        case("syntax_error_source", "import", MalformedArchiveError, MODULE, "does not compile"),
        _replace(MODULE, b"def broken(:\n"),
    )
    rebuild(
        valid,
        case("source_not_utf8", "import", MalformedArchiveError, MODULE, "does not compile"),
        _replace(MODULE, b"VALUE = '\xff\xfe'\n"),
    )
    rebuild(
        valid,
        case("dotdot_name", "open", MalformedArchiveError, "valid/../escaped.txt", "'..'"),
        _add("../escaped.txt", b"escaped"),
        recompute_manifest=False,
    )
    rebuild(
        valid,
        case("absolute_name", "open", MalformedArchiveError, "/tmp/escaped.txt", "absolute"),
        _add("/tmp/escaped.txt", b"escaped"),
        recompute_manifest=False,
    )
    rebuild(
        valid,
        case("duplicate_name", "open", MalformedArchiveError, PICKLE, "twice"),
        _add(PICKLE, b"\x80\x02N."),
        recompute_manifest=False,
    )
    rebuild(
        valid,
        case("compressed_record", "open", MalformedArchiveError, PICKLE, "compressed"),
        lambda rs: rs,
        compress=PICKLE,
    )
    bomb = case("zip_bomb_declared_size", "open", MalformedArchiveError, STORAGE, "past the end")
    bomb.write_bytes(original)
    for field in (20, 24):  # compressed and uncompressed size
        _patch_central_entry(bomb, STORAGE, field, struct.pack("<L", 0xFFFF0000))
    code = ".data/ts_code/code/__torch__/bomb.py"
    inflated = case("zip_bomb_inflated", "open", MalformedArchiveError, code, "zip bomb")
    rebuild(valid, inflated, _add(code, b"x" * 4096), compress=code)
    _patch_central_entry(inflated, code, 24, struct.pack("<L", 0xF0000000))

    unzipped = folder / "symlink_out"
    with zipfile.ZipFile(valid) as archive:
        archive.extractall(unzipped)
    root = unzipped / "valid"
    secret = folder / "secret.txt"
    secret.write_text("outside the package")
    (root / "data" / "notes.txt").unlink()
    (root / "data" / "notes.txt").symlink_to(secret)
    cases.append(
        Case("symlink_out", root, "open", MalformedArchiveError, "data/notes.txt", "outside")
    )
    return cases


if __name__ == "__main__":
    out = Path(sys.argv[1])
    if out.exists():
        shutil.rmtree(out)
    for built in build_corpus(out):
        print(f"{built.name:28} {os.fspath(built.path)}")
