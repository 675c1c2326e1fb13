"""A tensor storage's memory as a Python buffer, for writing and checksumming without a copy."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def storage_buffer(storage: torch.UntypedStorage) -> memoryview:
    """A CPU storage's memory as a buffer, without a copy; valid while ``storage`` lives."""
    nbytes = storage.nbytes()
    if nbytes == 0:
        return memoryview(b"")
    return memoryview((ctypes.c_char * nbytes).from_address(storage.data_ptr())).cast("B")
