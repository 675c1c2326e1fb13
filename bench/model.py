"""The benchmark's model: blocks of Linear + LayerNorm, about ``size_mib`` of float32 weights."""

from __future__ import annotations

import math

import torch
from torch import nn

BLOCKS = 16


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.relu(self.linear(x)))


def width_for(size_mib: float) -> int:
    """The block width that gives about ``size_mib`` of weights (4096 for 1 GiB)."""
    return max(8, round(math.sqrt(size_mib * 2**20 / 4 / BLOCKS)))


def make_empty_model(width: int) -> nn.Sequential:
    """The model on the meta device: its structure, no memory (weights are assigned later)."""
    with torch.device("meta"):
        return nn.Sequential(*(Block(width) for _ in range(BLOCKS))).eval()


def make_model(width: int) -> nn.Sequential:
    """Filled with cheap pseudo-random values: default init of 1 GiB takes longer than an export."""
    model = make_empty_model(width).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.uniform_(-1 / math.sqrt(width), 1 / math.sqrt(width), generator=generator)
    return model.eval()


def weight_bytes(width: int) -> int:
    """What :func:`make_model` holds: per block a Linear's weight and bias, a LayerNorm's two."""
    return BLOCKS * (width * width + 3 * width) * 4


def model_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


# Bytes a token_table entry takes pickled (protocol 3): vocabulary, half a merge, one score.
_BYTES_PER_ENTRY = 58


def token_table(size_mib: float) -> dict:
    """A tokenizer's tables, about ``size_mib`` pickled: what makes a model's pickle big
    without tensors (a vocabulary, merge pairs, scores), and dense in opcodes to scan."""
    count = max(16, int(size_mib * 2**20 / _BYTES_PER_ENTRY))
    return {
        "vocab": {f"tok{i:07d}": i for i in range(count)},
        "merges": [(f"a{i}", f"b{i}") for i in range(count // 2)],
        "scores": [i / count for i in range(count)],
    }
