"""Mapping fresh memory's pages before a read fills it, with ``madvise(MADV_POPULATE_WRITE)``.

The kernel maps new memory one page at a time as it is first written: for an eager load of
1 GiB, a quarter of a million page faults taken inside the read, costing about as much as
copying the bytes. One ``madvise`` call (Linux 5.14+) maps a whole range instead, and the
helper thread of a load makes it for the next chunk while the load reads and checks this
one, on the other core. Where the call is missing (older kernels, other systems) nothing is
mapped ahead and the read faults the pages in as before.

(``mmap=True`` loads map their pages as the first forward touches them, as safetensors'
do: mapping them ahead in the background measured no faster on two cores.)
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import sys
from collections.abc import Callable

_MADV_POPULATE_WRITE = 23  # linux/mman.h; Python's mmap module does not name it
_PAGE = mmap.PAGESIZE


def can_prefault() -> bool:
    """True where :func:`prefault` can work (it may still fail on a kernel before 5.14)."""
    return _load_madvise() is not None


def prefault(address: int, nbytes: int) -> bool:
    """Map the pages of the ``nbytes`` at ``address`` for writing; contents do not change.

    The range may start inside a page another allocation shares: mapping that page changes
    nothing for its owner either.
    """
    madvise = _load_madvise()
    if madvise is None or nbytes <= 0:
        return False
    start = address - address % _PAGE
    return madvise(start, address + nbytes - start, _MADV_POPULATE_WRITE) == 0


@functools.cache
def _load_madvise() -> Callable[[int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    return function
