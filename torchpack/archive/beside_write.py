"""Checksumming a buffer in a second thread while PyTorch's writer copies it to the file.

zlib and hashlib release the GIL on large buffers, as PyTorch's ``write_record`` does, so on a
machine with a free core the checksum costs no extra time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

Buffer = bytes | bytearray | memoryview
Result = TypeVar("Result")

# Below this a thread costs more than the checksum it would overlap with the write.
THREAD_THRESHOLD = 1 << 20


def compute_beside_write(
    data: Buffer, compute: Callable[[Buffer], Result], write: Callable[[], None]
) -> Result:
    """``compute(data)``, run while ``write()`` runs; returns what ``compute`` returned."""
    if memoryview(data).nbytes < THREAD_THRESHOLD:
        write()
        return compute(data)
    results: list[Result] = []
    started = threading.Event()

    def run() -> None:
        started.set()
        results.append(compute(data))

    worker = threading.Thread(target=run, name=getattr(compute, "__name__", "checksum"))
    worker.start()
    # A write that holds the GIL would otherwise keep the worker from starting.
    started.wait()
    try:
        write()
    finally:
        worker.join()
    return results[0]
