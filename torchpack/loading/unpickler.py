"""Unpicklers that find the classes and functions a pickle names through an importer."""

from __future__ import annotations

import _compat_pickle
import pickle
from typing import IO, TYPE_CHECKING, Any

from ..analysis.pickle_scanner import GETATTR, OWNER, GlobalRef, PickleScan
from ..errors import ArchiveError, MalformedArchiveError, MissingModuleError, UnsafeGlobalError
from ..importer import Importer, _lookup_qualname
from .checked_calls import SafeLoad
from .safe_globals import GlobalPolicy, OwnerToken, Refused

if TYPE_CHECKING:
    from ..package_importer import PackageImporter

_GETATTR = ("builtins", "getattr")


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
    """``safe=True``: hands the unpickler only what ``policy`` admits for each global, judged
    on the resolved object and on what the pickle does with it (``scan``, made beforehand).

    The C unpickler calls ``find_class`` once per global opcode, in stream order: the scan's
    references, in the same order, say what each one is used for.
    """

    def __init__(
        self,
        importer: PackageImporter,
        file: IO[bytes],
        *,
        record: str,
        policy: GlobalPolicy,
        scan: PickleScan,
        load: SafeLoad,
    ) -> None:
        super().__init__(importer, file, record=record)
        self._package = importer
        self._policy = policy
        self._references = iter(scan.references)
        self._getattrs = iter(scan.getattrs)
        self._old_names = scan.protocol < 3
        self._load = load

    def find_class(self, module_name: str, name: str) -> Any:
        ref = next(self._references, None)
        self._expect(ref, module_name, name)
        if self._old_names:  # what fix_imports does for protocol 0-2 (Python 2 names)
            if (module_name, name) in _compat_pickle.NAME_MAPPING:
                module_name, name = _compat_pickle.NAME_MAPPING[(module_name, name)]
            elif module_name in _compat_pickle.IMPORT_MAPPING:
                module_name = _compat_pickle.IMPORT_MAPPING[module_name]
        assert ref is not None
        return self._admit(module_name, name, ref.use_flags())

    def _expect(self, ref: GlobalRef | None, module_name: str, name: str) -> None:
        """The scan and the unpickler must agree, or the scan's verdicts mean nothing."""
        if ref is None or (ref.module, ref.name) != (module_name, name):
            raise MalformedArchiveError(
                self._archive_name,
                f"the unpickler resolves {module_name}.{name} where the scan found "
                f"{ref.full_name if ref else 'nothing'}; refusing the pickle",
                self._record,
            )

    def _admit(self, module_name: str, name: str, uses: int) -> Any:
        full_name = f"{module_name}.{name}"
        policy = self._policy
        try:
            if policy.allows_exactly(full_name):
                return self._resolve(module_name, name)
            if (module_name, name) == _GETATTR:
                if uses != GETATTR:
                    raise Refused(
                        "the pickle calls getattr on something other than a global and a "
                        "literal name, or uses it otherwise"
                    )
                return self._getattr
            if uses == OWNER:
                # Only the object of getattr calls: what they reach is judged instead.
                return OwnerToken(full_name)
            packaged = self._package._is_packaged(module_name)
            if not (packaged or policy.may_resolve(module_name, full_name)):
                raise Refused(
                    "it is not defined in the package's own modules nor a known-harmless "
                    "reconstruction function"
                )
            obj = self._resolve(module_name, name)
            in_package = packaged and self._package._defines(obj)
            return policy.admit(obj, full_name, uses, self._load, in_package)
        except Refused as refused:
            raise UnsafeGlobalError(
                self._archive_name, self._record, full_name, str(refused)
            ) from None

    def _getattr(self, owner: Any, attribute: Any) -> Any:
        """``getattr(global, "name")`` as protocol 3 writes nested names: the dotted global."""
        ref = next(self._getattrs, None)
        if ref is None or not (isinstance(attribute, str) and ref.name.endswith("." + attribute)):
            self._expect(None, "getattr", repr(attribute))
        assert ref is not None
        if isinstance(owner, OwnerToken) and owner.name != ref.full_name[: -len(attribute) - 1]:
            self._expect(ref, owner.name, attribute)
        return self._admit(ref.module, ref.name, ref.use_flags())
