"""Which modules belong to Python's standard library (torch.package's ``_stdlib``)."""

from .analysis.stdlib import is_stdlib_module

__all__ = ["is_stdlib_module"]
