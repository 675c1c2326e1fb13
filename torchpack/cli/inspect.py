"""``torchpack inspect PKG``: what a package holds, without running anything in it."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from ..archive.zip_index import ZipIndex
from ..file_structure_representation import directory_from_paths
from .package_contents import PackageContents, human_size, inspect_package


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", help="package archive (.pt) to look into")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    contents = inspect_package(ZipIndex(args.package))
    if args.json:
        report = asdict(contents)
        report["resources"] = contents.resources
        print(json.dumps(report, indent=2))
    else:
        print(_text(contents), end="")
    return 0


def _text(contents: PackageContents) -> str:
    lines = [
        f"package:         {contents.archive}",
        f"format version:  {contents.format_version}",
        f"python version:  {contents.python_version or 'unknown'}",
        f"integrity:       {'manifest present' if contents.has_manifest else 'no manifest'}",
        f"tensor storages: {len(contents.storages)}, {human_size(sum(contents.storages.values()))}",
        "",
        "files:",
        str(directory_from_paths(contents.archive, contents.records)).rstrip("\n"),
        "",
        _section("interned modules (their code runs when imported)", contents.interned_modules),
        _section("extern modules (taken from the loading environment)", contents.extern_modules),
        _section("mocked modules", contents.mocked_modules),
        _section("resources", contents.resources),
        "pickles:",
    ]
    for pickle in contents.pickles:
        lines.append(f"  {pickle.record}")
        if pickle.error:
            lines.append(f"    cannot be scanned: {pickle.error}")
        lines.extend(f"    {name}" for name in pickle.global_names)
    return "\n".join(lines) + "\n"


def _section(title: str, items: object) -> str:
    names = list(items)  # type: ignore[call-overload]
    body = "".join(f"\n  {name}" for name in names) or "\n  (none)"
    return f"{title}:{body}"
