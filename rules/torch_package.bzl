"""The rules: `torch_package`, `torch_package_test`, and their providers.

    load("@torchpack//rules:torch_package.bzl", "torch_package", "torch_package_test")

The implementation lives in `rules/private/`, which users never load.
"""

load("//rules/private:providers.bzl", _ModuleAnalysisInfo = "ModuleAnalysisInfo", _TorchPackageInfo = "TorchPackageInfo")
load("//rules/private:torch_package.bzl", _torch_package = "torch_package")
load("//rules/private:torch_package_test.bzl", _torch_package_test = "torch_package_test")

torch_package = _torch_package
torch_package_test = _torch_package_test
TorchPackageInfo = _TorchPackageInfo
ModuleAnalysisInfo = _ModuleAnalysisInfo
