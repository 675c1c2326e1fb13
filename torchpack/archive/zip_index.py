"""The checked table of contents of a package ZIP, read with the standard library only.

Every structural check happens here, before PyTorch's C++ reader ever sees the file, so that a
hostile or damaged archive gives a :class:`MalformedArchiveError` instead of a crash, a hang or
a huge allocation: the ZIP's structure must be unambiguous (:mod:`.zip_structure`: one parse
that every reader shares), every record must sit under the one top-level folder with a plain
relative name (:func:`~torchpack.archive.format.record_name_problem`; no duplicate, not even
one differing only in case, which PyTorch's reader would confuse), be stored uncompressed
(PyTorch maps records straight from the file; only the TorchScript code its own serializer
writes may be deflated, within a size bound), and lie inside the file without overlapping
another. Only a regular file is read: a FIFO or a device would hang or never end. Reading a
record checks its CRC.
"""

from __future__ import annotations

import os
import stat
import threading
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from ..errors import ArchiveError, MalformedArchiveError
from .checksums import crc32, new_hasher
from .format import (
    MAX_READABLE_VERSION,
    MIN_READABLE_VERSION,
    VERSION_RECORD,
    record_name_problem,
)
from .zip_structure import DEFLATED, ZipEntry, ZipStructureError, read_entries

_CHUNK = 1 << 22
# PyTorch's TorchScript serializer deflates the code it writes here; nothing else is compressed.
_COMPRESSIBLE_FOLDER = ".data/ts_code/"
# Generated TorchScript code is kilobytes; a larger declared size is a zip bomb.
_MAX_INFLATED_SIZE = 64 << 20
# PyTorch reads .data/version with stoull: anything longer is no version it wrote.
_MAX_VERSION_DIGITS = 20


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


def open_regular_file(path: str) -> int:
    """A read-only descriptor of ``path``, which must be a regular file.

    Opened without blocking (a FIFO would block the open itself), then checked: reading a FIFO
    hangs and a device never ends.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ArchiveError(path, "no such file") from None
    except IsADirectoryError:
        raise ArchiveError(
            path, "is a folder; give the package archive (the .pt file) itself"
        ) from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        os.close(fd)
        raise ArchiveError(path, "is a folder; give the package archive (the .pt file) itself")
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ArchiveError(
            path, "is not a regular file (a FIFO, socket or device); only files are read"
        )
    return fd


class ZipIndex:
    """The records of a package ZIP, validated; reads them with CRC checks."""

    def __init__(self, source: str | os.PathLike[str] | IO[bytes]) -> None:
        self.fd: int | None = None
        self._source: IO[bytes] | None = None
        self._lock = threading.Lock()
        if isinstance(source, (str, os.PathLike)):
            self.name = os.fspath(source)
            # Held for the index's life, as PyTorch's reader holds its own: records must come
            # from the file that was indexed, even after the path names a new file.
            self.fd = open_regular_file(self.name)
            weakref.finalize(self, os.close, self.fd)
            self.file_size = os.fstat(self.fd).st_size
        else:
            self.name = getattr(source, "name", "<binary>")
            self._source = source
            self.file_size = source.seek(0, os.SEEK_END)
        if self.file_size == 0:
            raise MalformedArchiveError(self.name, "the file is empty")
        self._records = self._index()
        self.version = self._check_version()

    def read_at(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` (fewer at the end of the file); safe from any thread."""
        if offset < 0 or size < 0:
            return b""
        if self.fd is not None:
            return os.pread(self.fd, size, offset)
        assert self._source is not None
        with self._lock:
            self._source.seek(offset)
            return self._source.read(size)

    def read_into(self, offset: int, buffer: memoryview) -> int:
        """Fill ``buffer`` from ``offset``; how many bytes the file had for it."""
        done = 0
        while done < len(buffer):
            if self.fd is not None:
                count = os.preadv(self.fd, [buffer[done:]], offset + done)
            else:
                assert self._source is not None
                with self._lock:
                    self._source.seek(offset + done)
                    count = self._source.readinto(buffer[done:])  # type: ignore[attr-defined]
            if not count:
                break
            done += count
        return done

    # -- structure ------------------------------------------------------------------------

    def _index(self) -> dict[str, ZipRecord]:
        try:
            entries = read_entries(self.read_at, self.file_size)
        except ZipStructureError as err:
            if err.name is None:
                raise MalformedArchiveError(
                    self.name,
                    f"not a readable package archive ({err.problem}); was it written by "
                    "torchpack or torch.package, and copied completely?",
                ) from None
            record = err.name.partition("/")[2] or err.name  # without the top folder
            raise MalformedArchiveError(self.name, err.problem, record) from None
        top_folder: str | None = None
        records: dict[str, ZipRecord] = {}
        # PyTorch's reader finds names regardless of ASCII case.
        folded: dict[bytes, str] = {}
        for entry in entries:
            folder, record = self._split_name(entry.name)
            if top_folder is None:
                # PyTorch takes the archive's folder from its first entry, folder or not.
                top_folder = folder
            elif folder != top_folder:
                raise MalformedArchiveError(
                    self.name,
                    f"record is under {folder!r}, but the archive's top folder is "
                    f"{top_folder!r}; a package has exactly one",
                    entry.name,
                )
            if not record or record.endswith("/"):
                if entry.size:
                    raise MalformedArchiveError(
                        self.name, f"folder entry holds {entry.size} bytes", entry.name
                    )
                continue  # a folder entry, as zip tools add: holds nothing
            key = entry.name.encode().lower()
            if key in folded:
                same = folded[key] == record
                raise MalformedArchiveError(
                    self.name,
                    "the archive holds this record twice"
                    + ("" if same else f" (as {folded[key]!r}, which differs only in case)")
                    + "; which copy a reader uses is ambiguous, so the archive is refused",
                    record,
                )
            folded[key] = record
            deflated = self._check_compression(entry, record)
            records[record] = ZipRecord(
                record, entry.data_offset, entry.size, entry.crc, entry.compressed_size, deflated
            )
        if top_folder is None or not records:
            raise MalformedArchiveError(self.name, "the archive holds no records")
        return records

    def _check_compression(self, entry: ZipEntry, record: str) -> bool:
        """Whether the record is deflated; refuses it anywhere but TorchScript's code."""
        if entry.method != DEFLATED:
            return False
        if not record.startswith(_COMPRESSIBLE_FOLDER):
            raise MalformedArchiveError(
                self.name,
                f"record is compressed (method {entry.method}); package records must be "
                "stored uncompressed, as torch.package writes them",
                record,
            )
        if entry.size > _MAX_INFLATED_SIZE:
            raise MalformedArchiveError(
                self.name,
                f"compressed record declares {entry.size} bytes once inflated (more than "
                f"{_MAX_INFLATED_SIZE}); refusing a possible zip bomb",
                record,
            )
        return True

    def _split_name(self, name: str) -> tuple[str, str]:
        """Top folder and record (a folder entry's record ends with ``/``, the top's is "")."""
        is_folder = name.endswith("/")
        checked = name[:-1] if is_folder else name
        problem = record_name_problem(checked)
        folder, _, record = checked.partition("/")
        if problem is None and not record and not is_folder:
            problem = "is not inside the archive's top folder"
        if problem is not None:
            raise MalformedArchiveError(
                self.name, f"record name {problem}; refusing a path that could escape", name
            )
        return folder, record + "/" if is_folder and record else record

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

    def chunks(self, name: str, size: int = _CHUNK) -> Iterator[bytes]:
        """The record's bytes as stored, in pieces (for big storages in bounded memory)."""
        entry = self.record(name)
        position = entry.offset
        end = entry.offset + entry.stored_size
        while position < end:
            chunk = self.read_at(position, min(size, end - position))
            if not chunk:
                raise MalformedArchiveError(self.name, "record ends early", name)
            position += len(chunk)
            yield chunk

    def digest(self, name: str, algorithm: str) -> str:
        """The digest (hex) of the record's bytes, read a few MiB at a time."""
        hasher = new_hasher(algorithm)
        for chunk in self.chunks(name):
            hasher.update(chunk)
        return hasher.hexdigest()

    def check_crc(self, name: str) -> None:
        """Compare the record's CRC with its bytes, read a few MiB at a time."""
        crc = 0
        for chunk in self.chunks(name):
            crc = crc32(chunk, crc)
        check_crc_value(self.name, self.record(name), crc)

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
    check_crc_value(archive, entry, crc32(data))


def check_crc_value(archive: str, entry: ZipRecord, actual: int) -> None:
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
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_VERSION_DIGITS:
        raise MalformedArchiveError(
            archive, f"format version {text[:40]!r} is not a number PyTorch reads", VERSION_RECORD
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
