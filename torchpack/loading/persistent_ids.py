"""What a pickle's persistent ids stand for: tensor storages, and objects a
``__reduce_package__`` saved (TorchScript modules, ``torch.fx`` graphs, a class's own).

A persistent id is whatever the pickle puts before ``BINPERSID``; a hostile one is checked
here and refused with a :class:`~torchpack.errors.MalformedArchiveError` naming the record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ArchiveError
from .storages import StorageLoader

# (func, args) -> what func(importer, *args) returned, after the importer's own checks.
CallReducer = Callable[[Any, tuple], Any]


class PersistentLoads:
    """``persistent_load`` for one ``load_pickle``."""

    def __init__(
        self,
        storages: StorageLoader,
        call_reducer: CallReducer,
        refuse: Callable[[str], ArchiveError],
    ) -> None:
        self._storages = storages
        self._call_reducer = call_reducer
        self._refuse = refuse
        self._reduced: dict[Any, Any] = {}

    def __call__(self, saved_id: Any) -> Any:
        if not isinstance(saved_id, tuple) or not saved_id:
            raise self._refuse(f"persistent id {saved_id!r:.80} is not a tuple")
        kind = saved_id[0]
        if isinstance(kind, bytes):
            kind = kind.decode("ascii", "replace")
        if kind == "storage" and len(saved_id) == 5:
            return self._storages.load(*saved_id[1:])
        if kind == "reduce_package" and len(saved_id) in (3, 4):
            *reduce_id, func, args = saved_id[1:]
            if not isinstance(args, tuple):
                raise self._refuse(f"persistent id {saved_id!r:.80} has no argument tuple")
            if not reduce_id:  # written before reduce ids existed
                return self._call_reducer(func, args)
            key = reduce_id[0]
            try:
                if key in self._reduced:
                    return self._reduced[key]
            except TypeError:
                raise self._refuse(f"persistent id {saved_id!r:.80} has an unhashable id") from None
            self._reduced[key] = result = self._call_reducer(func, args)
            return result
        raise self._refuse(f"unknown persistent id {saved_id!r:.80}")
