"""Which globals a pickle may name when a package is loaded with ``safe=True``.

Unpickling calls whatever a pickle names, so a package could run ``os.system`` the moment it is
loaded. Safe loading resolves only:

- classes and functions defined in the package's own (interned) modules: that code runs on
  import anyway, and ``torchpack audit`` lists it;
- the reconstruction helpers of :data:`~torchpack.analysis.global_rules.HARMLESS_GLOBALS`
  (tensors, parameters, storages, plain containers), torch's dtypes, layouts, memory formats
  and storage classes, and ``torch.nn`` module classes (unpickling one only fills its
  ``__dict__``), each checked on the resolved object too;
- whatever the caller allows with ``allow_globals`` (``"module.name"`` or globs: ``"numpy.**"``).

Everything else (``builtins.exec``, ``builtins.getattr``, ``os.system``, ``subprocess.Popen``,
``torch.hub.load``, ``runpy``, ``importlib.import_module``, ...) raises
:class:`~torchpack.errors.UnsafeGlobalError` naming the global and the record.
"""

from __future__ import annotations

from typing import Any

import torch

from ..analysis.glob_group import GlobGroup, GlobPattern
from ..analysis.global_rules import HARMLESS_GLOBALS, is_harmless

_TORCH_VALUE_TYPES = (torch.dtype, torch.layout, torch.memory_format, torch.qscheme)


class GlobalPolicy:
    """Decides which ``(module, name)`` globals safe loading resolves."""

    def __init__(self, allow_globals: GlobPattern = ()) -> None:
        self._allowed = GlobGroup(allow_globals) if allow_globals else None

    def allows_name(self, module: str, name: str) -> bool:
        """Allowed by name alone: the reconstruction helpers or the caller's ``allow_globals``."""
        full_name = f"{module}.{name}"
        if full_name in HARMLESS_GLOBALS:
            return True
        return self._allowed is not None and self._allowed.matches(full_name)

    @staticmethod
    def might_be_torch_value(module: str, name: str) -> bool:
        """Named like a torch value or ``torch.nn`` class; :meth:`allows_torch_value` decides."""
        return is_harmless(module, name)

    @staticmethod
    def allows_torch_value(obj: Any) -> bool:
        """The resolved object really is a torch dtype, layout, storage class or nn.Module class."""
        if isinstance(obj, _TORCH_VALUE_TYPES):
            return True
        return isinstance(obj, type) and issubclass(
            obj, (torch.storage._LegacyStorage, torch.nn.Module)
        )
