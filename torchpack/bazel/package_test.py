"""Helpers for ``torch_package_test`` scripts: open the archive, check it is self-contained.

A test script receives the archive's path as its first argument (the rule passes it)::

    from torchpack.bazel.package_test import check_recorded_example, open_package

    importer = open_package()
    model = check_recorded_example(importer)
"""

from __future__ import annotations

import importlib.util
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

RECORDED_EXAMPLE = ("model", "example.pkl")
MODEL = ("model", "model.pkl")


def packaged_modules(archive: str | Path) -> list[str]:
    """The modules (not packages: folders may exist anywhere) whose source the archive holds."""
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    modules = []
    for name in names:
        _, _, record = name.partition("/")
        if record.endswith(".py") and not record.startswith(".data/"):
            parts = record[: -len(".py")].split("/")
            if parts[-1] != "__init__":
                modules.append(".".join(parts))
    return sorted(modules)


def _findable(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(module_name) is not None
    except ImportError:  # a parent package is missing
        return False


def assert_source_not_visible(archive: str | Path) -> None:
    """Fail if this process could import the packaged code from anywhere but the package.

    If it could, a package that forgot a module would still pass the test.
    """
    visible = [name for name in packaged_modules(archive) if _findable(name)]
    if visible:
        raise AssertionError(
            f"the test can import {', '.join(visible)} outside {archive}; a torch_package_test "
            "must not depend on the model's code (remove it from deps and data)"
        )


def import_from_runfiles_only() -> None:
    """Replace the test script's source folder on ``sys.path`` with its runfiles folder.

    Python puts the script's folder first on ``sys.path`` after resolving symlinks, and Bazel's
    runfiles are symlinks into the source tree: a test beside or above the model's code would
    import that code from the source tree. The runfiles folder holds only what the test
    declares, and still lets the script import the files beside it that it lists in ``srcs``.
    """
    script = sys.argv[0] if sys.argv else ""
    if not script.endswith(".py"):
        return
    runfiles_folder = os.path.dirname(os.path.abspath(script))
    source_folder = os.path.dirname(os.path.realpath(script))
    if source_folder != runfiles_folder:
        sys.path[:] = [runfiles_folder if entry == source_folder else entry for entry in sys.path]


def open_package(argv: list[str] | None = None) -> Any:
    """The ``PackageImporter`` of the archive named by the first argument."""
    from torchpack import PackageImporter

    arguments = sys.argv[1:] if argv is None else argv
    if not arguments:
        raise SystemExit("usage: TEST ARCHIVE (torch_package_test passes the archive)")
    import_from_runfiles_only()
    assert_source_not_visible(arguments[0])
    return PackageImporter(arguments[0])


def check_recorded_example(importer: Any, rtol: float = 1e-4, atol: float = 1e-5) -> Any:
    """Run ``model/model.pkl`` on the recorded ``inputs``; compare with the recorded ``output``.

    Returns the loaded model. The tolerance allows for other thread counts than at build time.
    """
    import torch

    model = importer.load_pickle(*MODEL)
    example = importer.load_pickle(*RECORDED_EXAMPLE)
    with torch.no_grad():
        output = model(*example["inputs"])
    torch.testing.assert_close(output, example["output"], rtol=rtol, atol=atol)
    return model
