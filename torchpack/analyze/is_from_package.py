"""Telling objects and modules loaded from a package from those of the running Python."""

from __future__ import annotations

import types
from typing import Any

from .._mangling import is_mangled


def is_from_package(obj: Any) -> bool:
    """True if ``obj`` is a module loaded from a package, or an object of a class defined in one."""
    if isinstance(obj, types.ModuleType):
        return is_mangled(obj.__name__)
    return is_mangled(type(obj).__module__)
