"""Tensor storages met while pickling: each saved once as ``.data/<key>.storage``.

A pickle refers to a storage through a persistent id
``("storage", <storage class>, <key>, <location>, <element count>)``; tensors that share a
storage (views, tied weights) share one record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.serialization import location_tag, normalize_storage_type

from ..archive.format import storage_record

# What StorageSaver.persistent_id names: a quick test for the few objects among many.
STORAGE_TYPES = (torch.storage.TypedStorage, torch.UntypedStorage)


class StorageSaver:
    """Persistent ids for storages met while pickling; writes each storage's bytes once."""

    def __init__(
        self, write_storage: Callable[[str, torch.UntypedStorage], None], storage_context: Any
    ) -> None:
        self._write_storage = write_storage
        # TorchScript's serializer numbers storages too; sharing its context keeps one key
        # per storage across pickles and scripted modules.
        self._context = storage_context

    def persistent_id(self, obj: Any) -> tuple | None:
        if isinstance(obj, torch.storage.TypedStorage):
            untyped = obj._untyped_storage
            storage_type = getattr(torch, obj._pickle_storage_type())
            numel = obj._size()
        elif isinstance(obj, torch.UntypedStorage):
            untyped = obj
            storage_type = normalize_storage_type(type(obj))
            numel = obj.nbytes()
        else:
            return None
        location = location_tag(untyped)
        already_written = self._context.has_storage(untyped)
        key = str(self._context.get_or_add_storage(untyped))
        if not already_written:
            cpu_storage = untyped if untyped.device.type == "cpu" else untyped.cpu()
            self._write_storage(storage_record(key), cpu_storage)
        return ("storage", storage_type, key, location, numel)
