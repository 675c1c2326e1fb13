"""ResNet-18 (He et al., 2015), written out so that the examples need nothing beyond torch."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from examples.models.recorded import model_with_example


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(
        self, layers: tuple[int, int, int, int] = (2, 2, 2, 2), num_classes: int = 1000
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        in_channels = 64
        for index, (blocks, channels) in enumerate(zip(layers, (64, 128, 256, 512), strict=True)):
            stride = 1 if index == 0 else 2
            stage = [BasicBlock(in_channels, channels, stride)]
            stage += [BasicBlock(channels, channels) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            in_channels = channels
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet18(num_classes: int = 1000, seed: int = 0) -> ResNet:
    """A ResNet-18 with deterministic random weights (no download: the machine is offline)."""
    torch.manual_seed(seed)
    return ResNet((2, 2, 2, 2), num_classes).eval()


def build(data: dict[str, Path]) -> dict[str, object]:
    """Entry of ``//examples/models:resnet_pkg``: the model with its checkpoint, and an example."""
    model = ResNet().eval()
    state = torch.load(data["examples/models/resnet18.ckpt"], weights_only=True)
    model.load_state_dict(state)
    torch.manual_seed(1)
    return model_with_example(model, torch.randn(1, 3, 224, 224))
