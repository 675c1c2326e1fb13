"""Labels come back through __reduce_package__ from their own text resource."""

from torchpack.bazel.package_test import check_recorded_example, open_package

if __name__ == "__main__":
    importer = open_package()
    model = check_recorded_example(importer)
    example = importer.load_pickle("model", "example.pkl")
    assert importer.load_text("labels", "0.txt") == "cat\ndog\nbird\n"
    assert model.labels.names == ["cat", "dog", "bird"]
    assert model.predict(example["inputs"][0]) == example["predictions"]
