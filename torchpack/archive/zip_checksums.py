"""CRC-32s of a package's records, computed beside PyTorch's writer and filled in at the end.

PyTorch's ZIP writer computes each record's CRC-32 byte by byte, which makes writing a large
model several times slower than the disk. torchpack lets it write zeros instead, computes the
checksums itself (``checksums``: several times faster, and for tensor storages in a second
thread while the writer copies the same bytes to the file), then writes them into the
finished archive: into each record's data descriptor and its central directory entry, the
only two places PyTorch's writer keeps a CRC. The result is byte for byte what PyTorch
would have written.
"""

from __future__ import annotations

import mmap
import os
import struct

from ..errors import ArchiveError
from .checksums import crc32
from .format import SERIALIZATION_ID_RECORD
from .zip_structure import ZipStructureError, read_entries


def fill_in_crcs(path: str, known: dict[str, int]) -> None:
    """Write the CRC-32 of every record of the ZIP at ``path`` into its descriptor and entry.

    ``known`` maps record names (without the archive's top folder) to their checksums; any
    other record (written by PyTorch itself) is read back and checksummed here.
    """
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            entries = read_entries(lambda offset, size: data[offset : offset + size], len(data))
        except ZipStructureError as err:
            raise ArchiveError(
                path, f"finished ZIP is malformed: {err.problem}", err.name
            ) from None
        combined = 0
        for entry in entries:
            record = entry.name.partition("/")[2]
            end = entry.data_offset + entry.compressed_size
            if record == SERIALIZATION_ID_RECORD:
                # PyTorch's id ends in the combined checksum of the records before it.
                content = data[entry.data_offset : end - 20] + b"%020d" % combined
                os.pwrite(f.fileno(), content, entry.data_offset)
                crc = crc32(content)
            else:
                crc = known.get(record)
                if crc is None:
                    crc = crc32(data[entry.data_offset : end])
                if entry.compressed_size:  # PyTorch folds in the records that have bytes
                    combined = hash_combine(combined, crc)
            packed = struct.pack("<I", crc)
            os.pwrite(f.fileno(), packed, entry.central_crc_offset)
            if entry.descriptor_crc_offset is not None:
                os.pwrite(f.fileno(), packed, entry.descriptor_crc_offset)


def hash_combine(seed: int, value: int) -> int:
    """c10::hash_combine on 64-bit size_t, as PyTorch's writer folds the records' checksums."""
    return (seed ^ (value + 0x9E3779B9 + (seed << 6) + (seed >> 2))) & 0xFFFFFFFFFFFFFFFF
