"""A two-layer causal transformer language model."""

from __future__ import annotations

import torch
from torch import nn

from examples.models.recorded import model_with_example

from .tokenizer import Tokenizer


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attention(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TinyLM(nn.Module):
    def __init__(self, vocab_size: int, width: int = 32, heads: int = 2, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.position = nn.Parameter(torch.zeros(64, width))
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.head = nn.Linear(width, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[-1]
        mask = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        x = self.embed(ids) + self.position[:length]
        for block in self.blocks:
            x = block(x, mask)
        return self.head(x)


def build(data: dict[str, object]) -> dict[str, object]:
    """Entry of ``//examples/models:tinylm_pkg``."""
    tokenizer = Tokenizer()
    torch.manual_seed(0)
    model = TinyLM(len(tokenizer.tokens)).eval()
    text = "the cat sat on the mat"
    ids = torch.tensor([tokenizer.encode(text)])
    # The vocabulary the packaged tokenizer reads through importlib.resources is not returned:
    # it is a data file of the interned py_library, which torch_package saves as a resource.
    return {**model_with_example(model, ids, text=text), "model/tokenizer.pkl": tokenizer}
