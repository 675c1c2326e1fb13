"""Standard-library module detection."""

from __future__ import annotations

import sys

__all__ = ["is_stdlib_module"]


def is_stdlib_module(name: str) -> bool:
    """Return True if ``name`` (or its top-level package) is in the stdlib."""
    return name.partition(".")[0] in sys.stdlib_module_names
