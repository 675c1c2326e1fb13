"""``torchpack diff A B``: modules, resources and tensors added, removed or changed.

Exits 0 when the packages hold the same content, 1 when they differ.
"""

from __future__ import annotations

import argparse

from ..archive.format import MANIFEST_RECORDS, WRITER_TRAILER_RECORDS
from ..archive.zip_index import ZipIndex
from .package_contents import PackageContents, inspect_package, record_digests


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", help="package archive (.pt)")
    parser.add_argument("new", help="package archive (.pt) to compare with it")


def _entries(index: ZipIndex) -> dict[str, dict[str, str]]:
    """Content digests by kind: module name, resource, tensor storage, package metadata.

    Records are hashed as they are read, a few MiB at a time: archives can hold gigabytes.
    """
    contents: PackageContents = inspect_package(index)
    digests = record_digests(
        index, [*contents.interned_modules.values(), *contents.resources, *contents.storages]
    )
    kinds: dict[str, dict[str, str]] = {"module": {}, "resource": {}, "tensor storage": {}}
    for module, record in contents.interned_modules.items():
        kinds["module"][module] = digests[record]
    for module in contents.mocked_modules:
        kinds["module"][module] = "mocked"
    for module in contents.extern_modules:
        kinds["module"][module] = "extern"
    for record in contents.resources:
        kinds["resource"][record] = digests[record]
    for record in contents.storages:
        kinds["tensor storage"][record] = digests[record]
    return kinds


def run(args: argparse.Namespace) -> int:
    old, new = _entries(ZipIndex(args.old)), _entries(ZipIndex(args.new))
    differences = 0
    for kind in old:
        before, after = old[kind], new[kind]
        for name in sorted(before.keys() | after.keys()):
            if name in (*MANIFEST_RECORDS, *WRITER_TRAILER_RECORDS):
                continue
            if name not in after:
                line = f"- {kind} {name}"
            elif name not in before:
                line = f"+ {kind} {name}"
            elif before[name] != after[name]:
                change = (
                    f" ({before[name]} -> {after[name]})"
                    if {before[name], after[name]} & {"extern", "mocked"}
                    else ""
                )
                line = f"~ {kind} {name}{change}"
            else:
                continue
            differences += 1
            print(line)
    print(f"{differences} difference(s)" if differences else "no differences")
    return 1 if differences else 0
