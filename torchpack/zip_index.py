"""The checked table of contents of a package ZIP, read with the standard library only.

Every structural check happens here, before PyTorch's C++ reader ever sees the file, so that a
hostile or damaged archive gives a :class:`MalformedArchiveError` instead of a crash, a hang or
a huge allocation: the central directory must parse, every record must sit under the one
top-level folder with a plain relative name (no ``..``, no absolute path, no duplicate), be
stored uncompressed (PyTorch maps records straight from the file), and lie inside the file
without overlapping another. Reading a record checks its CRC.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from .archive_format import MAX_READABLE_VERSION, MIN_READABLE_VERSION, VERSION_RECORD
from .errors import ArchiveError, MalformedArchiveError

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_CHUNK = 1 << 22


@dataclass(frozen=True)
class ZipRecord:
    """Where one record's bytes are: ``size`` bytes at ``offset`` of the file."""

    name: str
    offset: int
    size: int
    crc: int


class ZipIndex:
    """The records of a package ZIP, validated; reads them with CRC checks."""

    def __init__(self, source: str | os.PathLike[str] | IO[bytes]) -> None:
        if isinstance(source, (str, os.PathLike)):
            self.name = os.fspath(source)
            try:
                self._file: IO[bytes] = open(self.name, "rb")  # noqa: SIM115 (kept open)
            except FileNotFoundError:
                raise ArchiveError(self.name, "no such file") from None
            self._owns_file = True
        else:
            self.name = getattr(source, "name", "<binary>")
            self._file = source
            self._owns_file = False
        try:
            self.top_folder, self._records = self._index()
        except BaseException:
            self.close()
            raise
        self.version = self._check_version()

    def close(self) -> None:
        if self._owns_file:
            self._file.close()

    def __enter__(self) -> ZipIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- structure ------------------------------------------------------------------------

    def _index(self) -> tuple[str, dict[str, ZipRecord]]:
        file_size = self._file.seek(0, os.SEEK_END)
        if file_size == 0:
            raise MalformedArchiveError(self.name, "the file is empty")
        try:
            with zipfile.ZipFile(self._file) as archive:
                infos = archive.infolist()
                directory_start = archive.start_dir  # type: ignore[attr-defined]
        except (zipfile.BadZipFile, ValueError, EOFError, OSError, struct.error) as err:
            raise MalformedArchiveError(
                self.name,
                f"not a readable package archive ({err}); was it written by torchpack or "
                "torch.package, and copied completely?",
            ) from None
        top_folder: str | None = None
        records: dict[str, ZipRecord] = {}
        extents: list[tuple[int, int, str]] = []
        for info in infos:
            if info.filename.endswith("/") and info.file_size == 0:
                continue  # a folder entry, as zip tools add: holds nothing
            folder, record = self._split_name(info.filename)
            if top_folder is None:
                top_folder = folder
            elif folder != top_folder:
                raise MalformedArchiveError(
                    self.name,
                    f"record is under {folder!r}, but the archive's top folder is "
                    f"{top_folder!r}; a package has exactly one",
                    info.filename,
                )
            if record in records:
                raise MalformedArchiveError(
                    self.name,
                    "the archive holds this record twice; which copy a reader uses is "
                    "ambiguous, so the archive is refused",
                    record,
                )
            if info.compress_type != zipfile.ZIP_STORED:
                raise MalformedArchiveError(
                    self.name,
                    f"record is compressed (method {info.compress_type}); package records "
                    "must be stored uncompressed, as torch.package writes them",
                    record,
                )
            if info.compress_size != info.file_size:
                raise MalformedArchiveError(
                    self.name,
                    f"stored record declares {info.file_size} bytes but occupies "
                    f"{info.compress_size}",
                    record,
                )
            offset = self._data_offset(info, record)
            if offset + info.file_size > directory_start:
                raise MalformedArchiveError(
                    self.name,
                    f"record declares {info.file_size} bytes at offset {offset}, past the "
                    f"end of the data ({directory_start} bytes); the archive is truncated or "
                    "forged",
                    record,
                )
            records[record] = ZipRecord(record, offset, info.file_size, info.CRC)
            extents.append((info.header_offset, offset + info.file_size, record))
        if top_folder is None:
            raise MalformedArchiveError(self.name, "the archive holds no records")
        extents.sort()
        for (_, end, first), (start, _, second) in zip(extents, extents[1:], strict=False):
            if start < end:
                raise MalformedArchiveError(
                    self.name, f"record overlaps the bytes of record {first!r}", second
                )
        return top_folder, records

    def _split_name(self, name: str) -> tuple[str, str]:
        folder, _, record = name.partition("/")
        parts = record.split("/")
        problem = None
        if name.startswith("/") or "\\" in name or name[1:2] == ":":
            problem = "is an absolute path"
        elif not folder or not record:
            problem = "is not inside the archive's top folder"
        elif folder in (".", "..") or any(part in ("", ".", "..") for part in parts):
            problem = "has an empty, '.' or '..' component"
        elif "\x00" in name:
            problem = "contains a NUL character"
        if problem is not None:
            raise MalformedArchiveError(
                self.name, f"record name {problem}; refusing a path that could escape", name
            )
        return folder, record

    def _data_offset(self, info: zipfile.ZipInfo, record: str) -> int:
        self._file.seek(info.header_offset)
        header = self._file.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise MalformedArchiveError(
                self.name, f"no local file header at offset {info.header_offset}", record
            )
        fields = _LOCAL_HEADER.unpack(header)
        method, name_length, extra_length = fields[4], fields[10], fields[11]
        if method != zipfile.ZIP_STORED:
            raise MalformedArchiveError(
                self.name, f"record is compressed (method {method}) in its local header", record
            )
        return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length

    def _check_version(self) -> int:
        if VERSION_RECORD not in self._records:
            raise MalformedArchiveError(
                self.name, "missing; this is not a torch.package archive", VERSION_RECORD
            )
        text = self.read(VERSION_RECORD).decode("ascii", errors="replace").strip()
        return check_format_version(self.name, text)

    # -- records --------------------------------------------------------------------------

    def records(self) -> list[str]:
        """Record names (without the top folder), in archive order."""
        return list(self._records)

    def has_record(self, name: str) -> bool:
        return name in self._records

    def record(self, name: str) -> ZipRecord:
        entry = self._records.get(name)
        if entry is None:
            raise ArchiveError(self.name, "no such record", name)
        return entry

    def chunks(self, name: str) -> Iterator[bytes]:
        """The record's bytes in pieces (for hashing big storages in bounded memory)."""
        entry = self.record(name)
        position = entry.offset
        end = entry.offset + entry.size
        while position < end:
            self._file.seek(position)
            chunk = self._file.read(min(_CHUNK, end - position))
            if not chunk:
                raise MalformedArchiveError(self.name, "record ends early", name)
            position += len(chunk)
            yield chunk

    def read(self, name: str) -> bytes:
        """The record's bytes; raises :class:`MalformedArchiveError` on a CRC mismatch."""
        data = b"".join(self.chunks(name))
        check_crc(self.name, self.record(name), data)
        return data


def check_crc(archive: str, entry: ZipRecord, data: bytes | memoryview) -> None:
    actual = zlib.crc32(data)
    if actual != entry.crc:
        raise MalformedArchiveError(
            archive,
            f"CRC mismatch (stored {entry.crc:08x}, bytes give {actual:08x}): the record is "
            "damaged",
            entry.name,
        )


def check_format_version(archive: str, text: str) -> int:
    """The format version in ``.data/version``, if PyTorch can read it."""
    if not text.isdigit():
        raise MalformedArchiveError(
            archive, f"format version {text[:40]!r} is not a number", VERSION_RECORD
        )
    version = int(text)
    if not MIN_READABLE_VERSION <= version <= MAX_READABLE_VERSION:
        raise MalformedArchiveError(
            archive,
            f"format version {version} is outside the versions this PyTorch reads "
            f"({MIN_READABLE_VERSION}..{MAX_READABLE_VERSION}); it was written by a newer "
            "(or broken) writer",
            VERSION_RECORD,
        )
    return version
