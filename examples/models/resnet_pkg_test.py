"""The packaged ResNet-18 loads without its source and reproduces its recorded output."""

from torchpack.bazel.package_test import check_recorded_example, open_package

if __name__ == "__main__":
    importer = open_package()
    model = check_recorded_example(importer)
    assert type(model).__module__.endswith("examples.models.resnet"), type(model).__module__
    assert sum(p.numel() for p in model.parameters()) == 11_689_512  # ResNet-18
