"""Package the example ResNet-18 with its expected output.

Usage: ``python -m examples.package_resnet OUT``.
"""

from __future__ import annotations

import argparse

import torch

from examples.models.resnet import resnet18
from torchpack import PackageExporter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", help="archive to write, e.g. out/resnet18.pt")
    args = parser.parse_args()

    model = resnet18()
    torch.manual_seed(1)
    example_input = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = model(example_input)

    with PackageExporter(args.output) as exporter:
        exporter.intern("examples.models.**")
        exporter.save_pickle("model", "model.pkl", model)
        exporter.save_pickle("model", "example.pkl", {"input": example_input, "output": expected})
    print(f"wrote {args.output}: interned {', '.join(exporter.interned_modules())}")


if __name__ == "__main__":
    main()
