"""Names of modules loaded from a package: ``<torch_package_N>.real.name``.

Every :class:`~torchpack.PackageImporter` owns one prefix, so the same module loaded from two
packages gives two distinct module objects with distinct names, and ``pickle`` (or a human reading
a traceback) can tell where an object came from.
"""

from __future__ import annotations

import re
import sys

_MANGLED = re.compile(r"<torch_package_\d+>")
_mangle_index = 0


def _claim_index() -> int:
    global _mangle_index
    index = _mangle_index
    # torch.package numbers its importers from a counter of its own; when it is loaded in the
    # same process, skip past its numbers (and advance its counter) so that the two never hand
    # out the same prefix. (Where torch.package is an alias of torchpack, it is this module.)
    theirs = sys.modules.get("torch.package._mangling")
    if theirs is not None and theirs is not sys.modules[__name__]:
        index = max(index, getattr(theirs, "_mangle_index", 0))
        theirs._mangle_index = index + 1
    _mangle_index = index + 1
    return index


class PackageMangler:
    """Adds and strips one importer's ``<torch_package_N>`` prefix."""

    def __init__(self) -> None:
        self.index = _claim_index()
        self.prefix = f"<torch_package_{self.index}>"

    def mangle(self, name: str) -> str:
        if not name:
            # torch.package's type: callers catch it.
            raise AssertionError("name must not be empty")
        return f"{self.prefix}.{name}"

    def parent_name(self) -> str:
        """This importer's prefix, ``<torch_package_N>``."""
        return self.prefix

    def demangle(self, name: str) -> str:
        """Strip this importer's prefix; names from other importers pass through unchanged."""
        if name.startswith(self.prefix + "."):
            return name[len(self.prefix) + 1 :]
        return name


def is_mangled(name: str) -> bool:
    return _MANGLED.match(name) is not None


def demangle(name: str) -> str:
    """Strip any importer's prefix (``<torch_package_3>`` alone demangles to ``""``)."""
    if not is_mangled(name):
        return name
    return name.partition(".")[2]


def get_mangle_prefix(name: str) -> str:
    return name.partition(".")[0] if is_mangled(name) else name
