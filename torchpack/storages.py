"""Tensor storages in pickles: saved once each as ``.data/<key>.storage``, referenced by id.

A pickle refers to a storage through a persistent id
``("storage", <storage class>, <key>, <location>, <element count>)``; the loader reads each
key once per pickle, so tensors that shared a storage (views, tied weights) share it again.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import torch
from torch.serialization import default_restore_location, location_tag, normalize_storage_type

from .archive_format import storage_record

MapLocation = None | str | torch.device | dict | Callable[..., Any]


def storage_buffer(storage: torch.UntypedStorage) -> memoryview:
    """A CPU storage's memory as a buffer, without a copy; valid while ``storage`` lives."""
    nbytes = storage.nbytes()
    if nbytes == 0:
        return memoryview(b"")
    return memoryview((ctypes.c_char * nbytes).from_address(storage.data_ptr()))


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


def restore_location_for(map_location: MapLocation) -> Callable[[Any, str], Any]:
    """``map_location`` as torch.load accepts it, turned into ``f(storage, location)``."""
    if map_location is None:
        return default_restore_location
    if isinstance(map_location, dict):
        remap = {str(k): str(v) for k, v in map_location.items()}
        return lambda storage, location: default_restore_location(
            storage, remap.get(location, location)
        )
    if isinstance(map_location, (str, bytes)):
        target = map_location.decode() if isinstance(map_location, bytes) else map_location
        return lambda storage, location: default_restore_location(storage, target)
    if isinstance(map_location, torch.device):
        return lambda storage, location: default_restore_location(storage, str(map_location))

    def call_user_function(storage: Any, location: str) -> Any:
        result = map_location(storage, location)
        return default_restore_location(storage, location) if result is None else result

    return call_user_function


class StorageLoader:
    """Resolves a pickle's storage ids, reading each storage record once.

    Scripted modules in the same pickle load their storages through TorchScript's
    ``storage_context``; going through it too keeps a tensor shared between eager and scripted
    code one tensor after loading.
    """

    def __init__(
        self,
        read_storage: Callable[[str, int], torch.UntypedStorage],
        map_location: MapLocation,
        storage_context: Any,
    ) -> None:
        self._read_storage = read_storage
        self._restore_location = restore_location_for(map_location)
        self._context = storage_context
        self._loaded: dict[str, torch.UntypedStorage] = {}

    def _read(self, key: str, nbytes: int) -> torch.UntypedStorage:
        # TorchScript names storages by their file name within .data/.
        name = f"{key}.storage"
        if self._context.has_storage(name):
            return self._context.get_storage(name, torch.uint8).untyped_storage()
        storage = self._read_storage(storage_record(key), nbytes)
        self._context.add_storage(name, torch.empty(0, dtype=torch.uint8).set_(storage))
        return storage

    def load(
        self, storage_type: Any, key: str, location: str, numel: int
    ) -> torch.storage.TypedStorage:
        if isinstance(location, bytes):
            location = location.decode("ascii")
        # storage_type.dtype would work too, but it warns that TypedStorage is deprecated.
        if storage_type is torch.UntypedStorage:
            dtype = torch.uint8
        else:
            dtype = torch.storage._get_dtype_from_pickle_storage_type(storage_type.__name__)
        untyped = self._loaded.get(key)
        if untyped is None:
            nbytes = numel * torch._utils._element_size(dtype)
            storage = self._read(key, nbytes)
            typed = torch.storage.TypedStorage(wrap_storage=storage, dtype=dtype, _internal=True)
            restored = self._restore_location(typed, location)
            untyped = (
                restored._untyped_storage
                if isinstance(restored, torch.storage.TypedStorage)
                else restored
            )
            self._loaded[key] = untyped
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)
