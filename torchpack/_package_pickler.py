"""The pickler that names globals through an importer (torch.package's ``_package_pickler``)."""

from .export.pickler import PackagePickler, create_pickler

__all__ = ["PackagePickler", "create_pickler"]
