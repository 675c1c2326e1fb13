"""Unpicklers that find the classes and functions a pickle names through an importer."""

from __future__ import annotations

import pickle
from typing import IO, TYPE_CHECKING, Any

from .._mangling import get_mangle_prefix
from ..errors import ArchiveError, MissingModuleError, UnsafeGlobalError
from ..importer import Importer, _lookup_qualname
from .safe_globals import GlobalPolicy

if TYPE_CHECKING:
    from ..package_importer import PackageImporter


class PackageUnpickler(pickle.Unpickler):
    """Resolves a pickle's globals with ``importer.import_module`` (torch.package's class).

    A module that the package neither holds nor lists as extern is a
    :class:`~torchpack.errors.MissingModuleError` naming ``record``.
    """

    def __init__(
        self, importer: Importer, file: IO[bytes], *, record: str = "<pickle>", **kwargs: Any
    ) -> None:
        super().__init__(file, **kwargs)
        self._importer = importer
        self._record = record

    def find_class(self, module_name: str, name: str) -> Any:
        return self._resolve(module_name, name)

    @property
    def _archive_name(self) -> str:
        return getattr(self._importer, "filename", None) or repr(self._importer)

    def _resolve(self, module_name: str, name: str) -> Any:
        try:
            module = self._importer.import_module(module_name)
        except ModuleNotFoundError as err:
            missing = err.name or ""
            if isinstance(err, ArchiveError) or not (module_name + ".").startswith(missing + "."):
                raise
            raise MissingModuleError(self._archive_name, self._record, module_name) from err
        return _lookup_qualname(module, name)


class SafeUnpickler(PackageUnpickler):
    """``safe=True``: resolves only the globals ``policy`` admits, and those defined in the
    package's own modules; anything else is an :class:`~torchpack.errors.UnsafeGlobalError`."""

    def __init__(
        self, importer: PackageImporter, file: IO[bytes], *, record: str, policy: GlobalPolicy
    ) -> None:
        super().__init__(importer, file, record=record)
        self._package = importer
        self._policy = policy

    def find_class(self, module_name: str, name: str) -> Any:
        policy = self._policy
        if policy.allows_name(module_name, name):
            return self._resolve(module_name, name)
        if self._package._is_packaged(module_name):
            obj = self._resolve(module_name, name)
            # Defined there, not merely reachable from there (`models.os.system`).
            if get_mangle_prefix(getattr(obj, "__module__", None) or "") == self._package.id():
                return obj
        elif policy.might_be_torch_value(module_name, name):
            obj = self._resolve(module_name, name)
            if policy.allows_torch_value(obj):
                return obj
        raise UnsafeGlobalError(self._archive_name, self._record, f"{module_name}.{name}")
