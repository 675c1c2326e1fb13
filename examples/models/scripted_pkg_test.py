"""The TorchScript submodule is restored as a ScriptModule and computes the recorded output."""

import torch

from torchpack.bazel.package_test import check_recorded_example, open_package

if __name__ == "__main__":
    importer = open_package()
    model = check_recorded_example(importer)
    assert isinstance(model.gate, torch.jit.ScriptModule), type(model.gate)
    assert "sigmoid" in model.gate.code
