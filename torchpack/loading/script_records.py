"""TorchScript in a package: its records checked before torch.jit reads them.

PyTorch's C++ loader reads a scripted module's records itself (``.data/ts_code/<id>/data.pkl``,
``constants.pkl``, the code under ``.data/ts_code/code/``) and every storage it does not find
in the shared storage context. Before it runs, the importer reads each of those records
through its own checks (manifest digest or CRC), and loads the storages the scripted module
names into the context, checked, so that torch.jit never reads an unchecked byte.
"""

from __future__ import annotations

import io
import pickle
import re
from typing import Any

from ..analysis.pickle_scanner import PickleScanError, scan_pickle
from ..archive.reader import ArchiveReader
from ..errors import MalformedArchiveError
from .storages import StorageLoader

SCRIPT_FOLDER = ".data/ts_code/"
_SCRIPT_ID = re.compile(r"[0-9A-Za-z_]+")
# The pickles of one scripted module that can hold tensors.
_SCRIPT_PICKLES = ("data.pkl", "constants.pkl")


class ScriptChecks:
    """Checks, for one importer, every record torch.jit reads before it reads them."""

    def __init__(self, archive: ArchiveReader, max_depth: int) -> None:
        self._archive = archive
        self._max_depth = max_depth
        self._code_checked = False

    def check(self, script_id: object, storages: StorageLoader, record: str) -> None:
        """Before ``unpackage_script_module(importer, script_id)``: the code and pickles under
        ``.data/ts_code/`` read through the archive's checks, and the scripted module's
        storages loaded, checked, into the storage context it reads them from."""
        archive = self._archive
        if not (isinstance(script_id, str) and _SCRIPT_ID.fullmatch(script_id)):
            raise MalformedArchiveError(
                archive.name, f"TorchScript module id {script_id!r:.40} is not a plain name", record
            )
        if not self._code_checked:
            for name in archive.records():
                if name.startswith(SCRIPT_FOLDER):
                    archive.read(name)
            self._code_checked = True
        for name in _SCRIPT_PICKLES:
            pickle_record = f"{SCRIPT_FOLDER}{script_id}/{name}"
            if not archive.has_record(pickle_record):
                continue
            data = archive.read(pickle_record)
            try:
                found = script_storage_ids(data, pickle_record, self._max_depth)
            except (PickleScanError, pickle.UnpicklingError, EOFError) as err:
                raise MalformedArchiveError(
                    archive.name, f"TorchScript pickle cannot be read: {err}", pickle_record
                ) from None
            for storage, storage_type, numel in found:
                storages.preload(storage, storage_type, numel)


def script_storage_ids(data: bytes, record: str, max_depth: int) -> list[tuple[Any, str, Any]]:
    """The storages a TorchScript pickle names: ``(name, storage type, elements)``.

    The pickle is scanned (strictly: nothing in it may nest absurdly or allocate up front),
    then unpickled with inert stand-ins for every class and function it names: only its
    persistent ids matter here.
    """
    scan_pickle(data, record, max_depth, strict=True)
    found: list[tuple[Any, str, Any]] = []
    unpickler = _Inert.unpickler(data)

    def persistent_load(saved_id: Any) -> _Inert:
        if isinstance(saved_id, tuple) and len(saved_id) == 5 and saved_id[0] == "storage":
            _, storage_type, name, _, numel = saved_id
            found.append((name, getattr(storage_type, "__name__", ""), numel))
        return _Inert()

    unpickler.persistent_load = persistent_load
    unpickler.load()
    return found


class _Inert:
    """Stands in for every global of a TorchScript pickle: accepts any call and state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    @classmethod
    def unpickler(cls, data: bytes) -> pickle.Unpickler:
        stand_ins: dict[tuple[str, str], type] = {}

        class Unpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> type:
                key = (module, name)
                if key not in stand_ins:
                    # Named like the global: a storage type is recognized by its class name.
                    stand_ins[key] = type(name.rpartition(".")[2], (cls,), {})
                return stand_ins[key]

        return Unpickler(io.BytesIO(data))
