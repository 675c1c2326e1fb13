"""A classifier whose label names pack themselves as a text resource (``__reduce_package__``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from examples.models.recorded import model_with_example


class LabelMap:
    """Class names; packaged as ``labels/<id>.txt`` instead of inside the pickle."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)

    def __reduce_package__(self, exporter: Any) -> tuple[Any, tuple[str]]:
        resource = f"{exporter.get_unique_id()}.txt"
        exporter.save_text("labels", resource, "\n".join(self.names) + "\n")
        return (load_label_map, (resource,))


def load_label_map(importer: Any, resource: str) -> LabelMap:
    return LabelMap(importer.load_text("labels", resource).split("\n")[:-1])


class LabelledClassifier(nn.Module):
    def __init__(self, labels: LabelMap) -> None:
        super().__init__()
        self.labels = labels
        self.linear = nn.Linear(8, len(labels.names))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def predict(self, x: torch.Tensor) -> list[str]:
        return [self.labels.names[i] for i in self(x).argmax(-1).tolist()]


def build(data: dict[str, object]) -> dict[str, object]:
    """Entry of ``//examples/models:labelled_pkg``."""
    torch.manual_seed(0)
    model = LabelledClassifier(LabelMap(["cat", "dog", "bird"])).eval()
    example_input = torch.randn(5, 8)
    return model_with_example(model, example_input, predictions=model.predict(example_input))
