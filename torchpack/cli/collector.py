"""The cyclic garbage collector in a ``torchpack`` process: kept off the objects imports make.

A build is one short process whose heap is mostly what importing torch and the model's code
creates: hundreds of thousands of objects, alive until the process ends. The collector walks
all of them in every full collection, the first ones while they are still being created, and
again in the collections Python makes while it shuts down (about 0.4 s here after importing
torch). So the build imports with the collector paused and then moves what the imports made out
of its sight (``gc.freeze``); the objects the entry function and the export make are collected
as usual. Cyclic garbage made by the imports is freed only at exit (peak memory measured
unchanged). The command line freezes everything just before the process ends.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["before_exit", "imports_spared"]


@contextmanager
def imports_spared() -> Iterator[Callable[[], None]]:
    """Pause the collector until the function yielded is called (imports done), which freezes
    what exists; the block's end unfreezes it, so a process that goes on (tests calling
    ``main``) collects those objects again. Changes nothing if the collector is off or objects
    are frozen already: the program manages the collector itself."""
    if gc.get_freeze_count() or not gc.isenabled():
        yield lambda: None
        return
    frozen = False

    def imports_done() -> None:
        nonlocal frozen
        if not frozen:
            gc.freeze()
            gc.enable()
            frozen = True

    gc.disable()
    try:
        yield imports_done
    finally:
        if frozen:
            gc.unfreeze()
        else:
            gc.enable()


def before_exit() -> None:
    """Freeze every object: the interpreter's collections at shutdown then have nothing to walk.
    Only for a process about to end (objects in cycles are then freed by the exit itself)."""
    gc.freeze()
