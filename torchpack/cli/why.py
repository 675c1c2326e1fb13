"""``torchpack why PKG MODULE``: the chain of imports that pulled a module into a package."""

from __future__ import annotations

import argparse
import sys

from ..archive.zip_index import ZipIndex
from .import_chain import ImportGraph, shortest_chain
from .package_contents import inspect_package


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", help="package archive (.pt)")
    parser.add_argument("module", help="dotted module name, e.g. numpy.linalg")


def run(args: argparse.Namespace) -> int:
    module = args.module
    if not all(part.isidentifier() for part in module.split(".")):
        print(f"torchpack why: {module!r} is not a dotted module name", file=sys.stderr)
        return 2
    index = ZipIndex(args.package)
    contents = inspect_package(index)
    if module in contents.interned_modules:
        role = "interned"
    elif module in contents.mocked_modules:
        role = "mocked"
    elif any(module == e or module.startswith(e + ".") for e in contents.extern_modules):
        role = "extern"
    else:
        role = None
    chain = shortest_chain(ImportGraph(index, contents), module)
    if chain is None:
        where = f"is {role} in the package" if role else "is not in the package"
        print(f"{module} {where}, and no pickle or interned module imports it")
        return 1
    print(f"{module} is {role or 'imported but not provided by the package'}; pulled in by:")
    print("  " + "\n  -> ".join(chain))
    return 0
