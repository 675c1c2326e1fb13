"""Load a packaged model where its source is not importable.

Usage: ``python examples/load_package.py PKG``.

Prints the package's files, then runs the model on the example input saved beside it and
checks the result against the output recorded when the package was made.
"""

from __future__ import annotations

import argparse
import importlib.util

import torch

from torchpack import PackageImporter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "package", help="archive of //examples/models:resnet_pkg or examples.package_resnet"
    )
    args = parser.parse_args()

    if importlib.util.find_spec("examples") is not None:
        raise SystemExit("the model's source is importable here; run this from another folder")

    # safe: the pickles may only name the model's own classes and torch's tensor helpers;
    # verify: every record is checked against the BLAKE3 manifest written at export.
    importer = PackageImporter(args.package, safe=True, verify=True)
    print(importer.file_structure(exclude=".data/*.storage"))
    model = importer.load_pickle("model", "model.pkl")
    example = importer.load_pickle("model", "example.pkl")
    with torch.no_grad():
        output = model(*example["inputs"])
    top5 = output[0].topk(5)
    print(f"model class: {type(model).__module__}.{type(model).__name__}")
    print("top-5 classes:", top5.indices.tolist())
    print("top-5 logits: ", [round(v, 4) for v in top5.values.tolist()])
    # Not bit-exact: the build ran single-threaded, this process may use every core.
    if not torch.allclose(output, example["output"], rtol=1e-4, atol=1e-5):
        raise SystemExit("output differs from the one recorded at packaging time")
    print("output matches the one recorded at packaging time")


if __name__ == "__main__":
    main()
