"""An MLP classifier whose training step uses a training-only module (mocked when packaged)."""

from __future__ import annotations

import torch
from torch import nn

from examples.models.recorded import model_with_example
from examples.models.training import augment


class Classifier(nn.Module):
    def __init__(self, features: int = 16, classes: int = 4) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def training_step(self, batch: torch.Tensor) -> torch.Tensor:
        return self(augment.jitter(batch))


def build(data: dict[str, object]) -> dict[str, object]:
    """Entry of ``//examples/models:classifier_pkg``."""
    torch.manual_seed(0)
    model = Classifier().eval()
    return model_with_example(model, torch.randn(8, 16))
