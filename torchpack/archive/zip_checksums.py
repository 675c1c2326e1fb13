"""CRC-32s of a package's records, computed beside PyTorch's writer and filled in at the end.

PyTorch's ZIP writer computes each record's CRC-32 byte by byte, which makes writing a large
model several times slower than the disk. torchpack lets it write zeros instead, computes the
checksums with zlib (several times faster, and for tensor storages in a second thread while
the writer copies the same bytes to the file), then writes them into the finished archive:
into each record's data descriptor and its central directory entry, the only two places
PyTorch's writer keeps a CRC. The result is byte for byte what PyTorch would have written.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Callable

from ..errors import ArchiveError
from .beside_write import Buffer, compute_beside_write

SERIALIZATION_ID_RECORD = ".data/serialization_id"


_END_OF_CENTRAL_DIRECTORY = b"PK\x05\x06"
_ZIP64_END_LOCATOR = b"PK\x06\x07"
_ZIP64_END = b"PK\x06\x06"
_CENTRAL_ENTRY = b"PK\x01\x02"
_LOCAL_HEADER = b"PK\x03\x04"
_DATA_DESCRIPTOR = b"PK\x07\x08"
_ZIP64_EXTRA = 0x0001
_HAS_DATA_DESCRIPTOR = 0x0008


def crc32_while(data: Buffer, write: Callable[[], None]) -> int:
    """The CRC-32 of ``data``, computed while ``write()`` runs (zlib releases the GIL)."""
    return compute_beside_write(data, zlib.crc32, write)


def fill_in_crcs(path: str, known: dict[str, int]) -> None:
    """Write the CRC-32 of every record of the ZIP at ``path`` into its descriptor and entry.

    ``known`` maps record names (without the archive's top folder) to their checksums; any
    other record (written by PyTorch itself) is read back and checksummed here.
    """
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        combined = 0
        for entry in _central_directory(path, data):
            record = entry.name.partition("/")[2]
            if record == SERIALIZATION_ID_RECORD:
                # PyTorch's id ends in the combined checksum of the records before it.
                fixed = data[entry.data_offset : entry.data_offset + entry.size - 20]
                content = fixed + b"%020d" % combined
                os.pwrite(f.fileno(), content, entry.data_offset)
                crc = zlib.crc32(content)
            else:
                crc = known.get(record)
                if crc is None:
                    crc = zlib.crc32(data[entry.data_offset : entry.data_offset + entry.size])
                if entry.size:  # PyTorch folds in the records that have bytes
                    combined = _hash_combine(combined, crc)
            packed = struct.pack("<I", crc)
            os.pwrite(f.fileno(), packed, entry.crc_offset)
            if entry.descriptor_crc_offset is not None:
                os.pwrite(f.fileno(), packed, entry.descriptor_crc_offset)


def _hash_combine(seed: int, value: int) -> int:
    """c10::hash_combine on 64-bit size_t, as PyTorch's writer folds the records' checksums."""
    return (seed ^ (value + 0x9E3779B9 + (seed << 6) + (seed >> 2))) & 0xFFFFFFFFFFFFFFFF


class _Entry:
    def __init__(
        self, name: str, size: int, crc_offset: int, data_offset: int, descriptor: int | None
    ) -> None:
        self.name = name
        self.size = size
        self.crc_offset = crc_offset
        self.data_offset = data_offset
        self.descriptor_crc_offset = descriptor


def _central_directory(path: str, data: mmap.mmap) -> list[_Entry]:
    end = data.rfind(_END_OF_CENTRAL_DIRECTORY, max(0, len(data) - (1 << 16) - 22))
    if end < 0:
        raise ArchiveError(path, "finished ZIP has no end of central directory")
    count, _, directory = struct.unpack_from("<HII", data, end + 10)
    if count == 0xFFFF or directory == 0xFFFFFFFF:
        locator = end - 20
        if data[locator : locator + 4] != _ZIP64_END_LOCATOR:
            raise ArchiveError(path, "finished ZIP lacks its ZIP64 end locator")
        (zip64_end,) = struct.unpack_from("<Q", data, locator + 8)
        if data[zip64_end : zip64_end + 4] != _ZIP64_END:
            raise ArchiveError(path, "finished ZIP lacks its ZIP64 end record")
        count, _, directory = struct.unpack_from("<QQQ", data, zip64_end + 32)
    entries = []
    offset = directory
    for _ in range(count):
        if data[offset : offset + 4] != _CENTRAL_ENTRY:
            raise ArchiveError(path, "finished ZIP has a broken central directory")
        flags, method = struct.unpack_from("<HH", data, offset + 8)
        compressed, uncompressed = struct.unpack_from("<II", data, offset + 20)
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, offset + 28)
        (local,) = struct.unpack_from("<I", data, offset + 42)
        name = data[offset + 46 : offset + 46 + name_length].decode("utf-8")
        extra = data[offset + 46 + name_length : offset + 46 + name_length + extra_length]
        compressed, local = _zip64_values(extra, uncompressed, compressed, local)
        if method != 0:
            raise ArchiveError(path, "record is compressed; package records never are", name)
        if data[local : local + 4] != _LOCAL_HEADER:
            raise ArchiveError(path, "finished ZIP has a broken local header", name)
        local_name, local_extra = struct.unpack_from("<HH", data, local + 26)
        data_offset = local + 30 + local_name + local_extra
        descriptor = None
        if flags & _HAS_DATA_DESCRIPTOR:
            descriptor = data_offset + compressed
            if data[descriptor : descriptor + 4] == _DATA_DESCRIPTOR:
                descriptor += 4
        entries.append(_Entry(name, compressed, offset + 16, data_offset, descriptor))
        offset += 46 + name_length + extra_length + comment_length
    return entries


def _zip64_values(extra: bytes, uncompressed: int, compressed: int, local: int) -> tuple[int, int]:
    """Sizes and offsets too large for their fields live in the ZIP64 extra field."""
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        if kind == _ZIP64_EXTRA:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, position + 4))
            # In order: uncompressed size, compressed size, local header offset, each only
            # if its own field is full.
            if uncompressed == 0xFFFFFFFF:
                values.pop(0)
            if compressed == 0xFFFFFFFF:
                compressed = values.pop(0)
            if local == 0xFFFFFFFF:
                local = values.pop(0)
            break
        position += 4 + length
    return compressed, local
