"""The pieces of Python's import machinery a package importer reimplements (torch.package's
``_importlib``): relative names, ``__package__``, and source line endings."""

from __future__ import annotations

from typing import Any

from ._mangling import demangle


def _resolve_name(name: str, package: str | None, level: int) -> str:
    """The absolute name of ``from <level dots><name> import ...`` inside ``package``."""
    if not package:
        raise ImportError("attempted relative import with no known parent package")
    bits = package.rsplit(".", level - 1)
    if len(bits) < level:
        raise ImportError("attempted relative import beyond top-level package")
    return f"{bits[0]}.{name}" if name else bits[0]


def _calc___package__(globals: dict[str, Any] | None) -> str | None:
    """The package a module's relative imports start from (``__package__`` semantics)."""
    if not globals:
        return None
    package = globals.get("__package__")
    if package is not None:
        return package
    spec = globals.get("__spec__")
    if spec is not None:
        return spec.parent
    name = demangle(globals.get("__name__", ""))
    return name if "__path__" in globals else name.rpartition(".")[0]


def _normalize_line_endings(source: bytes) -> bytes:
    """``\\r\\n`` and ``\\r`` as ``\\n``, as Python's own source loader reads them."""
    return source.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
