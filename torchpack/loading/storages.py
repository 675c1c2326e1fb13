"""Tensor storages named by a pickle's persistent ids, read once per key per load.

Each key is read once per pickle, so tensors that shared a storage (views, tied weights)
share it again after loading.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.serialization import default_restore_location

from ..archive.format import storage_record

MapLocation = None | str | torch.device | dict | Callable[..., Any]


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
