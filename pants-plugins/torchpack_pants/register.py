"""The entry point Pants loads for `backend_packages = ["torchpack_pants"]`."""

from pants.engine.target import Target

from torchpack_pants import archive_tests, package
from torchpack_pants.target_types import TorchPackageTarget, TorchPackageTestTarget


def target_types() -> list[type[Target]]:
    return [TorchPackageTarget, TorchPackageTestTarget]


def rules() -> list:
    return [*package.rules(), *archive_tests.rules()]
