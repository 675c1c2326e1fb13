"""The structure of a ZIP archive, parsed once and strictly, so that every reader reads the same.

Python's ``zipfile`` and PyTorch's reader (miniz) find records differently when an archive is
ambiguous: ``zipfile`` shifts every offset by bytes prepended to the archive and takes the
ZIP64 end record from just before its locator, miniz uses offsets as written and the record
the locator points to; names without the UTF-8 flag decode differently; miniz looks names up
without regard to case. An archive where they could disagree lets checks see one package and
PyTorch load another, so it is refused: the end records must sit at the very end and agree
with each other, the central directory must end where they say, the first record must start
the file, every name must be UTF-8 and match its local header, and nothing may be encrypted
or span disks. Torch-free: the command line uses it too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

_END = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")
_LOCATOR_SIGNATURE = b"PK\x06\x07"
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_SIGNATURE = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_LOCAL = struct.Struct("<4s5H3L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_MAX_COMMENT = 0xFFFF
_ZIP64_EXTRA = 0x0001
_SATURATED16, _SATURATED32 = 0xFFFF, 0xFFFFFFFF
_ENCRYPTED = 0x0001 | 0x0040 | 0x2000  # encrypted, strongly encrypted, masked local header
_HAS_DESCRIPTOR = 0x0008
_UTF8_NAME = 0x0800
STORED, DEFLATED = 0, 8

ReadAt = Callable[[int, int], bytes]


class ZipStructureError(Exception):
    """The archive's structure is broken or ambiguous; ``name`` is the entry, if one."""

    def __init__(self, problem: str, name: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.name = name


@dataclass(frozen=True)
class ZipEntry:
    """One entry of the central directory, with where its bytes and checksums are."""

    name: str
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int
    central_crc_offset: int  # where the central directory keeps its CRC-32
    descriptor_crc_offset: int | None  # where its data descriptor keeps it, if it has one


def read_entries(read_at: ReadAt, file_size: int) -> list[ZipEntry]:
    """The entries of the archive ``read_at(offset, size)`` reads, in central-directory order."""
    end_offset, count, directory_size, directory_offset = _end_records(read_at, file_size)
    if directory_offset + directory_size != end_offset:
        raise ZipStructureError(
            f"the central directory ({directory_size} bytes at {directory_offset}) does not "
            f"end where the end record is ({end_offset}): bytes were added or removed, and "
            "readers would disagree on where records are"
        )
    if count * _CENTRAL.size > directory_size:
        raise ZipStructureError(f"{count} entries cannot fit a {directory_size}-byte directory")
    directory = _read_exactly(read_at, directory_offset, directory_size)
    entries: list[ZipEntry] = []
    position = 0
    for _ in range(count):
        entry, position = _central_entry(read_at, directory, position, directory_offset)
        entries.append(entry)
    if position != directory_size:
        raise ZipStructureError(
            f"the central directory holds {directory_size - position} bytes after its entries"
        )
    _check_layout(entries)
    return entries


def _read_exactly(read_at: ReadAt, offset: int, size: int) -> bytes:
    data = read_at(offset, size)
    if len(data) != size:
        raise ZipStructureError(f"the file ends inside the {size} bytes at offset {offset}")
    return data


def _end_records(read_at: ReadAt, file_size: int) -> tuple[int, int, int, int]:
    """Where the directory's end records start, and its entry count, size and offset."""
    if file_size < _END.size:
        raise ZipStructureError("the file is too small to be a ZIP archive")
    tail_start = max(0, file_size - _END.size - _MAX_COMMENT)
    tail = _read_exactly(read_at, tail_start, file_size - tail_start)
    # Both readers take the last signature in the file; it must end the file exactly.
    at = tail.rfind(_END_SIGNATURE, 0, len(tail) - _END.size + len(_END_SIGNATURE))
    if at < 0:
        raise ZipStructureError("no end of central directory record: not a ZIP archive")
    if tail.find(_END_SIGNATURE, at + 1) >= 0:
        raise ZipStructureError("the archive comment holds another end of central directory")
    fields = _END.unpack_from(tail, at)
    _, disk, directory_disk, disk_count, count, size, offset, comment = fields
    end = tail_start + at
    if end + _END.size + comment != file_size:
        raise ZipStructureError(
            f"the end of central directory record at {end} does not end the file "
            f"({file_size - end - _END.size - comment} bytes follow it): refusing an archive "
            "readers could read differently"
        )
    if end < _LOCATOR.size or read_at(end - _LOCATOR.size, 4) != _LOCATOR_SIGNATURE:
        if disk or directory_disk or disk_count != count:
            raise ZipStructureError("the archive spans several disks")
        return end, count, size, offset
    return _zip64_end(read_at, end, (disk, directory_disk, disk_count, count, size, offset))


def _zip64_end(read_at: ReadAt, end: int, legacy: tuple[int, ...]) -> tuple[int, int, int, int]:
    locator = _LOCATOR.unpack(_read_exactly(read_at, end - _LOCATOR.size, _LOCATOR.size))
    _, record_disk, record_offset, disks = locator
    expected = end - _LOCATOR.size - _END64.size
    if record_disk != 0 or disks != 1 or record_offset != expected:
        raise ZipStructureError(
            f"the ZIP64 locator points to {record_offset} on disk {record_disk} of {disks}, "
            f"not to the record just before it ({expected}): readers would disagree on which "
            "end record counts"
        )
    record = _END64.unpack(_read_exactly(read_at, record_offset, _END64.size))
    signature, record_size, _, _, disk, directory_disk, disk_count, count, size, offset = record
    if signature != _END64_SIGNATURE or record_size != _END64.size - 12:
        raise ZipStructureError("the ZIP64 end of central directory record is malformed")
    if disk or directory_disk or disk_count != count:
        raise ZipStructureError("the archive spans several disks")
    saturated = (_SATURATED16, _SATURATED16, _SATURATED16, _SATURATED16, _SATURATED32, _SATURATED32)
    actual = (0, 0, count, count, size, offset)
    for old, full, new in zip(legacy, saturated, actual, strict=True):
        if old not in (full, new):
            raise ZipStructureError(
                "the end of central directory record and its ZIP64 version disagree: readers "
                "would disagree on where records are"
            )
    return record_offset, count, size, offset


def _central_entry(
    read_at: ReadAt, directory: bytes, position: int, directory_offset: int
) -> tuple[ZipEntry, int]:
    if position + _CENTRAL.size > len(directory):
        raise ZipStructureError("the central directory ends inside an entry")
    fields = _CENTRAL.unpack_from(directory, position)
    signature, _, _, flags, method, _, _, crc, compressed, size = fields[:10]
    name_length, extra_length, comment_length, disk, _, _, header_offset = fields[10:]
    if signature != _CENTRAL_SIGNATURE:
        raise ZipStructureError(f"no central directory entry at {directory_offset + position}")
    start = position + _CENTRAL.size
    after = start + name_length + extra_length + comment_length
    if after > len(directory):
        raise ZipStructureError("the central directory ends inside an entry")
    raw_name = directory[start : start + name_length]
    name = _decode_name(raw_name, flags)
    extra = directory[start + name_length : start + name_length + extra_length]
    size, compressed, header_offset = _zip64_values(extra, name, size, compressed, header_offset)
    if flags & _ENCRYPTED:
        raise ZipStructureError("entry is encrypted", name)
    if disk != 0:
        raise ZipStructureError(f"entry starts on disk {disk}", name)
    if method not in (STORED, DEFLATED):
        raise ZipStructureError(f"entry uses compression method {method}", name)
    if (method == STORED and compressed != size) or (size and not compressed):
        raise ZipStructureError(f"entry declares {size} bytes stored in {compressed}", name)
    data_offset = _local_header(read_at, header_offset, raw_name, method, name)
    if data_offset + compressed > directory_offset:
        raise ZipStructureError(
            f"entry declares {compressed} bytes at offset {data_offset}, past the end of the "
            f"data ({directory_offset} bytes); the archive is truncated or forged",
            name,
        )
    descriptor = None
    if flags & _HAS_DESCRIPTOR:
        descriptor = data_offset + compressed
        if read_at(descriptor, 4) == _DESCRIPTOR_SIGNATURE:
            descriptor += 4
    entry = ZipEntry(
        name,
        flags,
        method,
        crc,
        compressed,
        size,
        header_offset,
        data_offset,
        directory_offset + position + 16,
        descriptor,
    )
    return entry, after


def _decode_name(raw: bytes, flags: int) -> str:
    if not raw:
        raise ZipStructureError("an entry has an empty name")
    if not (flags & _UTF8_NAME or raw.isascii()):
        # zipfile would read it as cp437, PyTorch as its raw bytes: two different names.
        raise ZipStructureError(f"entry name {raw!r:.80} is neither ASCII nor marked UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ZipStructureError(f"entry name {raw!r:.80} is not valid UTF-8") from None


def _zip64_values(
    extra: bytes, name: str, size: int, compressed: int, offset: int
) -> tuple[int, int, int]:
    """Sizes and offsets too large for their fields come from the ZIP64 extra field, in order."""
    position = 0
    found = False
    while position < len(extra):
        if position + 4 > len(extra):
            raise ZipStructureError("the extra field ends inside a field header", name)
        kind, length = struct.unpack_from("<2H", extra, position)
        data = extra[position + 4 : position + 4 + length]
        if len(data) != length:
            raise ZipStructureError("an extra field runs past the end of the extra data", name)
        position += 4 + length
        if kind != _ZIP64_EXTRA:
            continue
        if found:
            raise ZipStructureError("entry has two ZIP64 extra fields", name)
        found = True
        values = list(struct.unpack_from(f"<{length // 8}Q", data))
        saturated = [v == _SATURATED32 for v in (size, compressed, offset)]
        if len(values) < sum(saturated):
            raise ZipStructureError("the ZIP64 extra field is too short", name)
        size = values.pop(0) if saturated[0] else size
        compressed = values.pop(0) if saturated[1] else compressed
        offset = values.pop(0) if saturated[2] else offset
    return size, compressed, offset


def _local_header(read_at: ReadAt, offset: int, raw_name: bytes, method: int, name: str) -> int:
    """Where the entry's data starts; its local header must agree with the directory."""
    header = read_at(offset, _LOCAL.size)
    if len(header) != _LOCAL.size or header[:4] != _LOCAL_SIGNATURE:
        raise ZipStructureError(f"no local file header at offset {offset}", name)
    fields = _LOCAL.unpack(header)
    flags, local_method, name_length, extra_length = fields[2], fields[3], fields[9], fields[10]
    if local_method != method:
        raise ZipStructureError(
            f"local header says compression method {local_method}, the central directory {method}",
            name,
        )
    if flags & _ENCRYPTED:
        raise ZipStructureError("entry is encrypted", name)
    if read_at(offset + _LOCAL.size, name_length) != raw_name:
        raise ZipStructureError("local header names another entry", name)
    return offset + _LOCAL.size + name_length + extra_length


def _check_layout(entries: list[ZipEntry]) -> None:
    """No bytes before the first entry, and no entry inside another."""
    extents = sorted((e.header_offset, e.data_offset + e.compressed_size, e.name) for e in entries)
    if extents and extents[0][0] != 0:
        raise ZipStructureError(
            f"{extents[0][0]} bytes precede the first entry: refusing an archive with data "
            "prepended, which readers locate differently"
        )
    for (_, end, first), (start, _, second) in zip(extents, extents[1:], strict=False):
        if start < end:
            raise ZipStructureError(f"entry overlaps the bytes of entry {first!r}", second)
