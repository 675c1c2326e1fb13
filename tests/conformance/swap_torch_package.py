"""A pytest plugin that swaps torch.package for torchpack, as a user switching would.

Loaded with ``-p swap_torch_package`` (before anything imports torch): every import of
``torch.package`` or ``torch.package.<sub>`` (torch's own, such as ``torch.fx``'s and
``torch._jit_internal``'s, included) gets the module ``torchpack`` or ``torchpack.<sub>``,
the very same object. A name torchpack lacks fails to import; nothing falls back to the real
torch.package.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

_ALIAS = "torch.package"


class _ExistingModuleLoader(importlib.abc.Loader):
    def __init__(self, module: types.ModuleType) -> None:
        self._module = module
        self._spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self._module

    def exec_module(self, module: types.ModuleType) -> None:
        # The import system set the alias's spec on it; the module stays torchpack's.
        module.__spec__ = self._spec


class TorchPackageToTorchpack(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _ALIAS and not fullname.startswith(_ALIAS + "."):
            return None
        ours = "torchpack" + fullname[len(_ALIAS) :]
        try:
            module = importlib.import_module(ours)
        except ModuleNotFoundError as err:
            raise ModuleNotFoundError(
                f"torch.package is swapped for torchpack, which has no module {ours!r}",
                name=fullname,
            ) from err
        is_package = hasattr(module, "__path__")
        return importlib.machinery.ModuleSpec(
            fullname, _ExistingModuleLoader(module), is_package=is_package
        )


if "torch" in sys.modules:
    raise RuntimeError("swap_torch_package must be loaded before torch is imported (-p)")
sys.meta_path.insert(0, TorchPackageToTorchpack())
