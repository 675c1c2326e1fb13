"""What every example entry returns: the model, and an input with the output it gave."""

from __future__ import annotations

import torch


def model_with_example(model: torch.nn.Module, *inputs: torch.Tensor, **extra: object) -> dict:
    """``{"model/model.pkl": model, "model/example.pkl": {...}}`` for ``torch_package``.

    The example holds ``inputs``, the ``output`` the model gives for them here and now, and
    ``extra`` entries; tests load the package elsewhere and compare.
    """
    with torch.no_grad():
        output = model(*inputs)
    return {
        "model/model.pkl": model,
        "model/example.pkl": {"inputs": inputs, "output": output, **extra},
    }
