"""Package the example ResNet-18 with its expected output.

Usage: ``python -m examples.package_resnet OUT``.
"""

from __future__ import annotations

import argparse

import torch

from examples.models.recorded import model_with_example
from examples.models.resnet import resnet18
from torchpack import PackageExporter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", help="archive to write, e.g. out/resnet18.pt")
    args = parser.parse_args()

    model = resnet18()
    torch.manual_seed(1)
    objects = model_with_example(model, torch.randn(1, 3, 224, 224))

    with PackageExporter(args.output) as exporter:
        exporter.intern("examples.models.**")
        for key, obj in objects.items():
            package, _, resource = key.partition("/")
            exporter.save_pickle(package, resource, obj)
    print(f"wrote {args.output}: interned {', '.join(exporter.interned_modules())}")


if __name__ == "__main__":
    main()
