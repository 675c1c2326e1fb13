"""Real models from pip-installed libraries, packaged with the library interned.

Each case builds a small model (random weights; nothing is downloaded), and declares the
patterns that package it: the library interned, its compiled or heavy dependencies extern,
and the rest mocked (with ``sys`` and ``io`` extern, as they must be). Used by
``tests/test_real_libraries.py`` and ``bench/models_export.py``; README's "Packaging real
libraries" explains the patterns.

    python -m examples.real_libraries OUT_DIR [CASE ...]   # exports, prints seconds per case
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Compiled or heavy dependencies the loading environment provides. (transformers uses
# torchvision when it is installed; the torchvision case interns it: the first pattern wins.)
HEAVY = [
    "numpy.**",
    "PIL.**",
    "torchvision.**",
    "tokenizers.**",
    "safetensors.**",
    "huggingface_hub.**",
    "packaging.**",
    "regex.**",
    "yaml.**",
    "tqdm.**",
    "filelock.**",
    "requests.**",
    "typing_extensions",
]
# Part of the standard library, but torch.package (and torchpack) extern them only on request.
SYSTEM = ["sys", "io"]


@dataclass(frozen=True)
class Case:
    """One model: the library that defines it, how to build and run it, how to package it."""

    library: str
    build: Callable[[], tuple[Any, Any]]
    run: Callable[[Any, Any], Any]
    extern: list[str] = field(default_factory=lambda: HEAVY + SYSTEM)
    mock: list[str] = field(default_factory=lambda: ["**"])


def _token_ids() -> Any:
    import torch

    return torch.randint(0, 100, (2, 7), generator=torch.Generator().manual_seed(1))


def _bert() -> tuple[Any, Any]:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    return BertModel(config), _token_ids()


def _gpt2() -> tuple[Any, Any]:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    return GPT2LMHeadModel(config), _token_ids()


def _t5() -> tuple[Any, Any]:
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=100,
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=2,
        decoder_start_token_id=0,
    )
    return T5ForConditionalGeneration(config), _token_ids()


def _unet() -> tuple[Any, Any]:
    import torch
    from diffusers import UNet2DModel

    model = UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=4,
    )
    return model, torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def _image() -> Any:
    import torch

    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _timm(name: str, **kwargs: Any) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=10, **kwargs), _image()

    return build


def _torchvision_resnet18() -> tuple[Any, Any]:
    from torchvision.models import resnet18

    return resnet18(weights=None, num_classes=10), _image()


def _hidden_state(model: Any, inputs: Any) -> Any:
    return model(inputs).last_hidden_state


def _logits(model: Any, inputs: Any) -> Any:
    return model(inputs).logits


def _seq2seq_logits(model: Any, inputs: Any) -> Any:
    return model(input_ids=inputs, decoder_input_ids=inputs).logits


def _denoise(model: Any, inputs: Any) -> Any:
    return model(inputs, 3).sample


def _call(model: Any, inputs: Any) -> Any:
    return model(inputs)


CASES: dict[str, Case] = {
    "bert": Case("transformers", _bert, _hidden_state),
    "gpt2": Case("transformers", _gpt2, _logits),
    "t5": Case("transformers", _t5, _seq2seq_logits),
    "unet": Case("diffusers", _unet, _denoise),
    # timm needs its torchvision (imported by timm.layers) from the environment.
    "timm_resnet18": Case("timm", _timm("resnet18"), _call, extern=["**"], mock=[]),
    "timm_vit_tiny": Case(
        "timm", _timm("vit_tiny_patch16_224", img_size=32), _call, extern=["**"], mock=[]
    ),
    "timm_vit_tiny_mocked": Case(
        "timm", _timm("vit_tiny_patch16_224", img_size=32), _call, extern=HEAVY + SYSTEM
    ),
    "torchvision_resnet18": Case("torchvision", _torchvision_resnet18, _call),
}


def export(name: str, path: str | os.PathLike[str], exporter_class: Any = None) -> float:
    """Build case ``name``, package it at ``path`` (model and ``(inputs, output)`` example),
    and return the seconds the export took. ``exporter_class`` defaults to torchpack's;
    torch.package's takes the same calls."""
    # Never reach a hub: every model here is built from a config.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    if exporter_class is None:
        from torchpack import PackageExporter as exporter_class
    case = CASES[name]
    torch.manual_seed(0)
    model, inputs = case.build()
    model.eval()
    with torch.no_grad():
        output = case.run(model, inputs)
    start = time.perf_counter()
    with exporter_class(path) as exporter:
        exporter.intern(f"{case.library}.**")
        for pattern in case.extern:
            exporter.extern(pattern)
        for pattern in case.mock:
            exporter.mock(pattern)
        exporter.save_pickle("model", "model.pkl", model)
        exporter.save_pickle("model", "example.pkl", (inputs, output))
    return time.perf_counter() - start


def check(importer: Any, name: str) -> bool:
    """Load case ``name``'s model from ``importer`` and whether it reproduces its example."""
    import torch

    model = importer.load_pickle("model", "model.pkl")
    inputs, output = importer.load_pickle("model", "example.pkl")
    with torch.no_grad():
        return torch.equal(CASES[name].run(model, inputs), output)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for case_name in sys.argv[2:] or list(CASES):
        print(f"{case_name} {export(case_name, out / f'{case_name}.pt'):.2f}")
