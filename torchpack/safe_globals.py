"""Which globals a pickle may name when a package is loaded with ``safe=True``.

Unpickling calls whatever a pickle names, so a package could run ``os.system`` the moment it is
loaded. Safe loading resolves only:

- classes and functions defined in the package's own (interned) modules: that code runs on
  import anyway, and ``torchpack audit`` lists it;
- the reconstruction functions and classes in :data:`HARMLESS_GLOBALS` (tensors, parameters,
  storages, plain containers) and torch's dtypes, layouts, memory formats, storage classes;
- ``torch.nn`` module classes (``torch.nn.modules.*``): unpickling one only fills its
  ``__dict__``;
- whatever the caller allows with ``allow_globals`` (``"module.name"`` or globs: ``"numpy.**"``).

Everything else (``builtins.exec``, ``builtins.getattr``, ``os.system``, ``subprocess.Popen``,
``torch.hub.load``, ``runpy``, ``importlib.import_module``, ...) raises
:class:`~torchpack.errors.UnsafeGlobalError` naming the global and the record.
"""

from __future__ import annotations

from typing import Any

import torch

from .analysis.glob_group import GlobGroup, GlobPattern

HARMLESS_GLOBALS = frozenset(
    {
        # Plain containers and values, and what protocol 2 uses to rebuild objects and bytes.
        "builtins.set",
        "builtins.frozenset",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.complex",
        "builtins.bool",
        "builtins.slice",
        "builtins.range",
        "builtins.object",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
        "collections.Counter",
        "copyreg._reconstructor",
        "_codecs.encode",
        # torch's tensor, parameter and storage rebuild functions.
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_sparse_tensor",
        "torch._utils._rebuild_nested_tensor",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "torch._utils._rebuild_wrapper_subclass",
        "torch._utils._rebuild_device_tensor_from_cpu_tensor",
        "torch._tensor._rebuild_from_type_v2",
        "torch.serialization._get_layout",
        "torch.nn.parameter.Parameter",
        "torch.nn.parameter.Buffer",
        "torch.Tensor",
        "torch.Size",
        "torch.device",
        "torch.UntypedStorage",
    }
)

_NN_MODULES = GlobGroup("torch.nn.modules.**")
_TORCH_VALUE_TYPES = (torch.dtype, torch.layout, torch.memory_format, torch.qscheme)


class GlobalPolicy:
    """Decides which ``(module, name)`` globals safe loading resolves."""

    def __init__(self, allow_globals: GlobPattern = ()) -> None:
        self._allowed = GlobGroup(allow_globals) if allow_globals else None

    def allows_name(self, module: str, name: str) -> bool:
        """Allowed by name alone: the allow list or the caller's ``allow_globals``."""
        full_name = f"{module}.{name}"
        if full_name in HARMLESS_GLOBALS:
            return True
        return self._allowed is not None and self._allowed.matches(full_name)

    def allows_torch_object(self, module: str, name: str, obj: Any) -> bool:
        """``torch.float32``, ``torch.FloatStorage``, ``torch.nn.modules.conv.Conv2d``..."""
        if "." in name:
            return False
        if module == "torch":
            return isinstance(obj, _TORCH_VALUE_TYPES) or (
                isinstance(obj, type) and issubclass(obj, torch.storage._LegacyStorage)
            )
        return (
            _NN_MODULES.matches(module)
            and isinstance(obj, type)
            and issubclass(obj, torch.nn.Module)
        )

    @staticmethod
    def might_be_torch_object(module: str) -> bool:
        return module == "torch" or _NN_MODULES.matches(module)
