"""Tensor storages named by a pickle's persistent ids, read once per key per load.

Each key is read once per pickle, so tensors that shared a storage (views, tied weights)
share it again after loading.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch._utils import _element_size
from torch.serialization import default_restore_location

from ..archive.format import storage_record
from ..errors import ArchiveError

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
        refuse: Callable[[str], ArchiveError],
    ) -> None:
        self._read_storage = read_storage
        self._restore_location = restore_location_for(map_location)
        self._context = storage_context
        self._refuse = refuse
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
        self, storage_type: Any, key: Any, location: Any, numel: Any
    ) -> torch.storage.TypedStorage:
        """The storage a pickle's ``("storage", type, key, location, numel)`` id names."""
        dtype = self._dtype(storage_type)
        if type(key) is int and key >= 0:
            key = str(key)  # torch.package writes numbers, torchpack their text
        if isinstance(location, bytes):
            location = location.decode("ascii", "replace")
        if not (
            type(key) is str
            and _STORAGE_KEY.fullmatch(key)
            and isinstance(location, str)
            and type(numel) is int
            and numel >= 0
        ):
            raise self._refuse(
                f"storage id ({key!r:.40}, {location!r:.40}, {numel!r:.40}) is malformed"
            )
        untyped = self._loaded.get(key)
        if untyped is None:
            storage = self._read(key, numel * _element_size(dtype))
            typed = torch.storage.TypedStorage(wrap_storage=storage, dtype=dtype, _internal=True)
            try:
                restored = self._restore_location(typed, location)
            except RuntimeError as err:
                raise self._refuse(
                    f"cannot put a storage on {location!r}: {str(err).splitlines()[0]}; load "
                    "with map_location='cpu' (or a device this machine has)"
                ) from None
            untyped = (
                restored._untyped_storage
                if isinstance(restored, torch.storage.TypedStorage)
                else restored
            )
            self._loaded[key] = untyped
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)

    def preload(self, name: object, storage_type_name: str, numel: object) -> None:
        """Read (and check) the storage TorchScript names ``<key>.storage``: it then finds it
        in the context instead of reading the record itself, unchecked."""
        key = name[: -len(".storage")] if isinstance(name, str) else ""
        if not (
            name == f"{key}.storage"
            and _STORAGE_KEY.fullmatch(key)
            and type(numel) is int
            and numel >= 0
        ):
            raise self._refuse(
                f"TorchScript names the storage {name!r:.40} of {numel!r:.20} elements"
            )
        self._read(key, numel * _element_size(self._dtype_named(storage_type_name)))

    def _dtype(self, storage_type: Any) -> torch.dtype:
        # storage_type.dtype would work too, but it warns that TypedStorage is deprecated.
        if storage_type is torch.UntypedStorage:
            return torch.uint8
        if not (isinstance(storage_type, type) and issubclass(storage_type, _STORAGE_CLASSES)):
            raise self._refuse(f"storage id names {storage_type!r:.60}, not a storage class")
        return self._dtype_named(storage_type.__name__)

    def _dtype_named(self, name: str) -> torch.dtype:
        try:
            return torch.storage._get_dtype_from_pickle_storage_type(name)
        except KeyError:
            raise self._refuse(f"storage id names the unknown storage type {name!r:.60}") from None


# Keys are what the exporter's storage context hands out (numbers): never a path.
_STORAGE_KEY = re.compile(r"[0-9A-Za-z_]+")
_STORAGE_CLASSES = (torch.storage._LegacyStorage, torch.storage.TypedStorage, torch.UntypedStorage)
