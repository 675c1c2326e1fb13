"""TorchScript in a package: its records pass through a side archive, gaining portable paths.

torch.jit stores the absolute path of every scripted function's source file in the
``.debug_pkl`` record beside the TorchScript code. Left alone, the same model built from a
checkout at another path gives a different archive, and every archive tells where its builder
kept their files. TorchScript's serializer therefore writes into an in-memory side archive;
when the package closes, its records are copied into the package, each source path made
relative to the ``sys.path`` folder it was imported from (``models/resnet.py``).

The tensors of a scripted module are written to the package directly, before TorchScript
sees them (it skips storages the shared storage context already holds), so only pickles,
code and the odd constant pass through the side archive.
"""

from __future__ import annotations

import io
import os
import pickletools
import struct
import sys
from collections.abc import Callable

import torch

_STRING_OPCODES = frozenset({"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE"})


class ScriptRecords:
    """Owns TorchScript's serializer and copies what it wrote into the package."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._writer = torch._C.PyTorchFileWriter(self._buffer)
        self.serializer = torch._C.ScriptModuleSerializer(self._writer)
        self.storage_context = self.serializer.storage_context()

    def copy_into(
        self,
        write: Callable[[str, bytes], None],
        write_storage: Callable[[str, torch.UntypedStorage], None],
    ) -> None:
        """Finish TorchScript's records and write them, in name order, into the package."""
        self.serializer.write_files()
        names = sorted(self._writer.get_all_written_records())
        self._writer.write_end_of_file()
        if not names:
            return
        reader = torch._C.PyTorchFileReader(io.BytesIO(self._buffer.getbuffer()))
        for name in names:
            data = reader.get_record(name)
            if name.endswith(".storage"):
                write_storage(name, torch.UntypedStorage.from_buffer(data, dtype=torch.uint8))
            elif name.endswith(".debug_pkl"):
                write(name, portable_debug_pickle(data))
            else:
                write(name, data)


def portable_source_path(path: str) -> str:
    """``path`` relative to the ``sys.path`` folder that holds it (its file name if none does)."""
    best = ""
    for entry in sys.path:
        folder = os.path.abspath(entry or os.curdir)
        if path.startswith(folder + os.sep) and len(folder) > len(best):
            best = folder
    relative = os.path.relpath(path, best) if best else os.path.basename(path)
    return relative.replace(os.sep, "/")


def portable_debug_pickle(data: bytes) -> bytes:
    """A ``.debug_pkl`` record with each absolute source path replaced by a portable one.

    The record is a pickle of source ranges whose string table holds file names. A pickle
    addresses its memo by number, not by byte offset, so one string can be swapped for
    another of a different length without touching anything else but frame lengths; frames
    are optional, so they are dropped.
    """
    ops = list(pickletools.genops(data))
    ends = [start for _, _, start in ops[1:]] + [len(data)]
    replacements: list[tuple[int, int, bytes]] = []
    for (opcode, value, start), end in zip(ops, ends, strict=True):
        if opcode.name in _STRING_OPCODES and _is_source_path(value):
            encoded = portable_source_path(value).encode("utf-8")
            replacements.append((start, end, b"X" + struct.pack("<I", len(encoded)) + encoded))
        elif opcode.name == "FRAME":
            replacements.append((start, end, b""))
    if not any(replacement for _, _, replacement in replacements):
        return data
    pieces: list[bytes] = []
    copied_up_to = 0
    for start, end, replacement in replacements:
        pieces += [data[copied_up_to:start], replacement]
        copied_up_to = end
    pieces.append(data[copied_up_to:])
    return b"".join(pieces)


def _is_source_path(value: object) -> bool:
    return isinstance(value, str) and os.path.isabs(value) and os.path.isfile(value)
