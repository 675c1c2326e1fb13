"""The packaged tokenizer reads its vocabulary from the package through importlib.resources."""

import torch

from torchpack.bazel.package_test import check_recorded_example, open_package

if __name__ == "__main__":
    importer = open_package()
    model = check_recorded_example(importer)
    example = importer.load_pickle("model", "example.pkl")
    tokenizer = importer.load_pickle("model", "tokenizer.pkl")  # re-reads the resource
    assert tokenizer.encode(example["text"]) == example["inputs"][0][0].tolist()
    fresh = importer.import_module("examples.models.tinylm.tokenizer").Tokenizer()
    assert fresh.tokens[:3] == ["<unk>", "<bos>", "the"]
    next_ids = model(example["inputs"][0]).argmax(-1)[0].tolist()
    print("greedy next tokens:", tokenizer.decode(next_ids))
    assert torch.equal(model(example["inputs"][0]).argmax(-1), example["output"].argmax(-1))
