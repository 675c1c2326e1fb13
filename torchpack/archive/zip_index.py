"""The checked table of contents of a package ZIP, read with the standard library only.

Every structural check happens here, before PyTorch's C++ reader ever sees the file, so that a
hostile or damaged archive gives a :class:`MalformedArchiveError` instead of a crash, a hang or
a huge allocation: the central directory must parse, every record must sit under the one
top-level folder with a plain relative name (no ``..``, no absolute path, no duplicate), be
stored uncompressed (PyTorch maps records straight from the file; only the TorchScript code
its own serializer writes may be deflated, within a size bound), and lie inside the file without
overlapping another. Reading a record checks its CRC.
"""

from __future__ import annotations

import contextlib
import os
import struct
import weakref
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from ..errors import ArchiveError, MalformedArchiveError
from .format import MAX_READABLE_VERSION, MIN_READABLE_VERSION, VERSION_RECORD

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_CHUNK = 1 << 22
# PyTorch's TorchScript serializer deflates the code it writes here; nothing else is compressed.
_COMPRESSIBLE_FOLDER = ".data/ts_code/"
# Generated TorchScript code is kilobytes; a larger declared size is a zip bomb.
_MAX_INFLATED_SIZE = 64 << 20


@dataclass(frozen=True)
class ZipRecord:
    """Where one record's bytes are: ``stored_size`` bytes at ``offset`` of the file, which
    hold ``size`` bytes of content (the same unless ``deflated``)."""

    name: str
    offset: int
    size: int
    crc: int
    stored_size: int
    deflated: bool


class ZipIndex:
    """The records of a package ZIP, validated; reads them with CRC checks."""

    def __init__(self, source: str | os.PathLike[str] | IO[bytes]) -> None:
        self._path: str | None = None
        self._source: IO[bytes] | None = None
        if isinstance(source, (str, os.PathLike)):
            self.name = self._path = os.fspath(source)
            if os.path.isdir(self._path):
                raise ArchiveError(
                    self.name, "is a folder; give the package archive (the .pt file) itself"
                )
            if not os.path.isfile(self._path):
                raise ArchiveError(self.name, "no such file")
        else:
            self.name = getattr(source, "name", "<binary>")
            self._source = source
        with self._opened() as file:
            self._records = self._index(file)
        self.version = self._check_version()

    @contextlib.contextmanager
    def _opened(self) -> Iterator[IO[bytes]]:
        if self._source is None:
            assert self._path is not None
            # Held for the index's life, as PyTorch's reader holds its own: records must come
            # from the file that was indexed, even after the path names a new file.
            self._source = open(self._path, "rb")
            weakref.finalize(self, self._source.close)
        yield self._source

    # -- structure ------------------------------------------------------------------------

    def _index(self, file: IO[bytes]) -> dict[str, ZipRecord]:
        self.file_size = file_size = file.seek(0, os.SEEK_END)
        if file_size == 0:
            raise MalformedArchiveError(self.name, "the file is empty")
        try:
            with zipfile.ZipFile(file) as archive:
                infos = archive.infolist()
                directory_start = archive.start_dir  # type: ignore[attr-defined]
        except Exception as err:  # noqa: BLE001 - hostile bytes make zipfile raise anything
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
            deflated = self._check_compression(info, record)
            offset = self._data_offset(file, info, record)
            if offset + info.compress_size > directory_start:
                raise MalformedArchiveError(
                    self.name,
                    f"record declares {info.compress_size} bytes at offset {offset}, past the "
                    f"end of the data ({directory_start} bytes); the archive is truncated or "
                    "forged",
                    record,
                )
            records[record] = ZipRecord(
                record, offset, info.file_size, info.CRC, info.compress_size, deflated
            )
            extents.append((info.header_offset, offset + info.compress_size, record))
        if top_folder is None:
            raise MalformedArchiveError(self.name, "the archive holds no records")
        extents.sort()
        for (_, end, first), (start, _, second) in zip(extents, extents[1:], strict=False):
            if start < end:
                raise MalformedArchiveError(
                    self.name, f"record overlaps the bytes of record {first!r}", second
                )
        return records

    def _check_compression(self, info: zipfile.ZipInfo, record: str) -> bool:
        """Whether the record is deflated; refuses every other kind of compression."""
        if info.compress_type == zipfile.ZIP_STORED:
            if info.compress_size != info.file_size:
                raise MalformedArchiveError(
                    self.name,
                    f"stored record declares {info.file_size} bytes but occupies "
                    f"{info.compress_size}",
                    record,
                )
            return False
        if info.compress_type != zipfile.ZIP_DEFLATED or not record.startswith(
            _COMPRESSIBLE_FOLDER
        ):
            raise MalformedArchiveError(
                self.name,
                f"record is compressed (method {info.compress_type}); package records must be "
                "stored uncompressed, as torch.package writes them",
                record,
            )
        if info.file_size > _MAX_INFLATED_SIZE:
            raise MalformedArchiveError(
                self.name,
                f"compressed record declares {info.file_size} bytes once inflated (more than "
                f"{_MAX_INFLATED_SIZE}); refusing a possible zip bomb",
                record,
            )
        return True

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

    def _data_offset(self, file: IO[bytes], info: zipfile.ZipInfo, record: str) -> int:
        header = b""
        if info.header_offset >= 0:
            file.seek(info.header_offset)
            header = file.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise MalformedArchiveError(
                self.name, f"no local file header at offset {info.header_offset}", record
            )
        fields = _LOCAL_HEADER.unpack(header)
        method, name_length, extra_length = fields[4], fields[10], fields[11]
        if method != info.compress_type:
            raise MalformedArchiveError(
                self.name,
                f"local header says compression method {method}, the central directory "
                f"{info.compress_type}",
                record,
            )
        return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length

    def _check_version(self) -> int:
        if VERSION_RECORD not in self._records:
            raise MalformedArchiveError(
                self.name, "missing; this is not a torch.package archive", VERSION_RECORD
            )
        return check_format_version(self.name, self.read(VERSION_RECORD))

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
        """The record's bytes as stored, in pieces (for big storages in bounded memory)."""
        entry = self.record(name)
        position = entry.offset
        end = entry.offset + entry.stored_size
        with self._opened() as file:
            while position < end:
                file.seek(position)
                chunk = file.read(min(_CHUNK, end - position))
                if not chunk:
                    raise MalformedArchiveError(self.name, "record ends early", name)
                position += len(chunk)
                yield chunk

    def read(self, name: str, crc: bool = True) -> bytes:
        """The record's bytes; raises :class:`MalformedArchiveError` on a CRC mismatch.

        ``crc=False`` is for callers that check a stronger digest themselves.
        """
        entry = self.record(name)
        data = b"".join(self.chunks(name))
        if entry.deflated:
            data = self._inflate(entry, data)
        if crc:
            check_crc(self.name, entry, data)
        return data

    def _inflate(self, entry: ZipRecord, data: bytes) -> bytes:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            # One byte past the declared size is enough to know the declaration is false.
            content = inflater.decompress(data, entry.size + 1)
        except zlib.error as err:
            raise MalformedArchiveError(self.name, f"cannot inflate: {err}", entry.name) from None
        if not inflater.eof:
            raise MalformedArchiveError(
                self.name, "the compressed stream does not end where it should", entry.name
            )
        if len(content) != entry.size:
            raise MalformedArchiveError(
                self.name,
                f"inflates to {'more' if len(content) > entry.size else len(content)} bytes, "
                f"not the {entry.size} declared",
                entry.name,
            )
        return content


def check_crc(archive: str, entry: ZipRecord, data: bytes | memoryview) -> None:
    actual = zlib.crc32(data)
    if actual != entry.crc:
        raise MalformedArchiveError(
            archive,
            f"CRC mismatch (stored {entry.crc:08x}, bytes give {actual:08x}): the record is "
            "damaged",
            entry.name,
        )


def check_format_version(archive: str, data: bytes) -> int:
    """The format version in ``.data/version``, if PyTorch can read it."""
    text = data.decode("ascii", errors="replace").strip()
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
