"""``GlobGroup``: Bazel-style globs on dotted module names (torch.package's ``glob_group``)."""

from .analysis.glob_group import GlobGroup, GlobPattern

__all__ = ["GlobGroup", "GlobPattern"]
