"""Models for the conformance tests. The file name matches pytest's ``test_*.py``, so pytest's
assertion-rewriting loader imports it (a loader without ``get_source``), as it imports the
modules of torch's own test/package suite."""

import torch
import torch.fx
from torch import nn


def doubled(x: torch.Tensor) -> torch.Tensor:
    # Data-dependent branch: symbolic tracing must treat it as a leaf (torch.fx.wrap below).
    if x.sum() > 0:
        return x * 2
    return x


torch.fx.wrap("doubled")


class Gate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class TwoLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 8)
        self.gate = Gate()
        self.second = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(doubled(self.gate(self.first(x))))


class GateIsALeaf(torch.fx.Tracer):
    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, Gate) or super().is_leaf_module(module, qualified_name)
