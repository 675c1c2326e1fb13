"""``DiGraph``: the dependency graph an export builds (torch.package's ``_digraph``)."""

from .analysis.digraph import DiGraph

__all__ = ["DiGraph"]
