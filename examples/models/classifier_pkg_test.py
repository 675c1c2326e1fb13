"""The training-only module is a stub in the package: inference works, training raises."""

import torch

from torchpack.bazel.package_test import check_recorded_example, open_package

if __name__ == "__main__":
    importer = open_package()
    model = check_recorded_example(importer)
    augment = importer.import_module("examples.models.training.augment")
    for call in (
        lambda: augment.jitter(torch.zeros(1)),
        lambda: model.training_step(torch.zeros(1, 16)),
    ):
        try:
            call()
        except NotImplementedError:
            pass
        else:
            raise AssertionError("the mocked training module ran code")
    assert not importer.get_source("examples.models.training.augment").count("randn_like")
