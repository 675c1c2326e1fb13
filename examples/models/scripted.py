"""A model with a TorchScript submodule: the scripted part is saved as TorchScript code."""

from __future__ import annotations

import torch
from torch import nn

from examples.models.recorded import model_with_example


class Gate(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.sum() > 0):
            return torch.sigmoid(self.linear(x)) * x
        return x


class GatedModel(nn.Module):
    def __init__(self, width: int = 12) -> None:
        super().__init__()
        self.encoder = nn.Linear(width, width)
        self.gate = torch.jit.script(Gate(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(torch.relu(self.encoder(x)))


def build(data: dict[str, object]) -> dict[str, object]:
    """Entry of ``//examples/models:scripted_pkg``."""
    torch.manual_seed(0)
    model = GatedModel().eval()
    return model_with_example(model, torch.randn(3, 12))
