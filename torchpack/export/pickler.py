"""A pickler that names classes and functions through an :class:`~torchpack.Importer`.

The standard pickler writes ``obj.__module__`` as it is. Objects loaded from a package live in
mangled modules (``<torch_package_0>.models``), and must be written under their real name
(``models``) so that the new package can provide that module. The importer chain decides the
name, and checks that the name leads back to the very same object.

Every global goes through :meth:`PackagePickler.save_global`, so the pickler also keeps the
``(module, name)`` pairs it wrote: the pickle's dependencies, without decoding it again.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from copyreg import _extension_registry  # type: ignore[attr-defined]
from struct import pack
from types import FunctionType
from typing import IO, Any

from ..importer import Importer, ObjMismatchError, ObjNotFoundError, _lookup_qualname

# The pure-Python pickler is the one whose global-writing step can be replaced.
_BasePickler = pickle._Pickler  # type: ignore[attr-defined]


class PackagePickler(_BasePickler):
    """Writes globals under the name ``importer`` gives them (torch.package's argument order)."""

    def __init__(
        self,
        importer: Importer,
        file: IO[bytes],
        *,
        protocol: int = 3,
        persistent_id: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(file, protocol=protocol)
        self.importer = importer
        # The globals written, in order of first appearance (a dict as an ordered set).
        self.globals_written: dict[tuple[str, str], None] = {}
        if persistent_id is not None:
            # In place of the base class's method (which returns None), as torch.package's
            # callers assign it: no extra call for each of the many objects a model pickles.
            self.persistent_id = persistent_id
        # The base class maps functions straight to its own save_global; route them to ours.
        self.dispatch = dict(_BasePickler.dispatch)
        self.dispatch[FunctionType] = PackagePickler.save_global
        self.dispatch[set] = PackagePickler._save_set
        self.dispatch[frozenset] = PackagePickler._save_frozenset

    def save_global(self, obj: Any, name: str | None = None) -> None:
        try:
            module_name, name = self.importer.get_name(obj, name)
        except (ObjNotFoundError, ObjMismatchError) as err:
            raise pickle.PicklingError(f"Can't pickle {obj!r}: {err}") from None
        module = self.importer.import_module(module_name)
        owner_path, _, last_name = name.rpartition(".")
        parent = _lookup_qualname(module, owner_path) if owner_path else module

        if self.proto >= 2:
            code = _extension_registry.get((module_name, name))
            if code:
                self.globals_written[module_name, name] = None
                if code <= 0xFF:
                    self.write(pickle.EXT1 + pack("<B", code))
                elif code <= 0xFFFF:
                    self.write(pickle.EXT2 + pack("<H", code))
                else:
                    self.write(pickle.EXT4 + pack("<i", code))
                return

        if self.proto >= 4:
            self.save(module_name)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
            self.globals_written[module_name, name] = None
        elif parent is not module:
            # Protocols below 4 cannot name a nested class directly.
            self.save_reduce(getattr, (parent, last_name))
        else:
            encoding = "utf-8" if self.proto >= 3 else "ascii"
            try:
                line = module_name.encode(encoding) + b"\n" + name.encode(encoding) + b"\n"
            except UnicodeEncodeError:
                raise pickle.PicklingError(
                    f"can't pickle global identifier '{module_name}.{name}' using pickle "
                    f"protocol {self.proto}"
                ) from None
            self.write(pickle.GLOBAL + line)
            self.globals_written[module_name, name] = None
        self.memoize(obj)

    # Sets iterate in hash order, and str hashes change with PYTHONHASHSEED: write the items
    # in a canonical order so that the same objects always give the same bytes.

    def _save_set(self, obj: set) -> None:
        items = _canonical_order(obj)
        if self.proto < 4:
            self.save_reduce(set, (items,), obj=obj)
            return
        self.write(pickle.EMPTY_SET)
        self.memoize(obj)
        for start in range(0, len(items), self._BATCHSIZE):
            self.write(pickle.MARK)
            for item in items[start : start + self._BATCHSIZE]:
                self.save(item)
            self.write(pickle.ADDITEMS)

    def _save_frozenset(self, obj: frozenset) -> None:
        items = _canonical_order(obj)
        if self.proto < 4:
            self.save_reduce(frozenset, (items,), obj=obj)
            return
        self.write(pickle.MARK)
        for item in items:
            self.save(item)
        if id(obj) in self.memo:
            # The frozenset contained itself through its items: refer to the memoized copy.
            self.write(pickle.POP_MARK + self.get(self.memo[id(obj)][0]))
            return
        self.write(pickle.FROZENSET)
        self.memoize(obj)


def _canonical_order(items: set | frozenset) -> list:
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=lambda item: (type(item).__qualname__, repr(item)))


def dumps(
    obj: Any,
    importer: Importer,
    *,
    protocol: int,
    persistent_id: Callable[[Any], Any] | None = None,
) -> tuple[bytes, list[tuple[str, str]]]:
    """The pickle of ``obj``, and the ``(module, name)`` globals it references."""
    buffer = io.BytesIO()
    pickler = PackagePickler(importer, buffer, protocol=protocol, persistent_id=persistent_id)
    pickler.dump(obj)
    return buffer.getvalue(), list(pickler.globals_written)


def create_pickler(data_buf: IO[bytes], importer: Importer, protocol: int = 4) -> PackagePickler:
    """A pickler writing to ``data_buf`` through ``importer`` (torch.package's factory)."""
    return PackagePickler(importer, data_buf, protocol=protocol)
