"""Tools that explain what a package needs: ``torch.package.analyze``'s counterparts.

As in torch.package, ``is_from_package`` is reached as ``torchpack.is_from_package`` or
``torchpack.analyze.is_from_package.is_from_package``.
"""

from .find_first_use_of_broken_modules import find_first_use_of_broken_modules
from .trace_dependencies import trace_dependencies

__all__ = ["find_first_use_of_broken_modules", "trace_dependencies"]
