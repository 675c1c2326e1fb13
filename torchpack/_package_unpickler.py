"""The unpickler that finds globals through an importer (torch.package's ``_package_unpickler``)."""

from .loading.unpickler import PackageUnpickler

__all__ = ["PackageUnpickler"]
