"""``torchpack inspect PKG``: what a package holds, without running anything in it.

By default a summary that fits on a screen (a package interning transformers has thousands of
modules): versions, what is interned by top-level package, what the loading environment must
provide, what is mocked, resources, tensor storages, and the pickles with the modules their
globals come from. ``--full`` adds the file tree and every list in full; ``--json`` has it all.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict

from ..analysis.stdlib import is_stdlib_module
from ..archive.zip_index import ZipIndex
from ..file_structure_representation import directory_from_paths
from .package_contents import PackageContents, human_size, inspect_package

_WIDTH = 100
# Top-level packages listed one per line before the rest are counted.
_MOST_TOP_LEVEL = 10
# Resources named in the summary before the rest are counted.
_MOST_RESOURCES = 5
_HINT = "--full adds the file tree and lists everything; --json prints it all as JSON\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", help="package archive (.pt) to look into")
    parser.add_argument(
        "--full", action="store_true", help="also print the file tree and every list in full"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (everything)")


def run(args: argparse.Namespace) -> int:
    contents = inspect_package(ZipIndex(args.package))
    if args.json:
        report = asdict(contents)
        report["resources"] = contents.resources
        report["distributions"] = contents.distributions
        print(json.dumps(report, indent=2))
    elif args.full:
        print(_summary(contents) + _full_lists(contents), end="")
    else:
        print(_summary(contents) + _HINT, end="")
    return 0


def _summary(contents: PackageContents) -> str:
    sizes = contents.sizes
    interned_size = sum(sizes[record] for record in contents.interned_modules.values())
    resources = contents.resources
    externs = contents.extern_modules
    outside_stdlib = [m for m in externs if not is_stdlib_module(m)]
    lines = [
        f"package:          {contents.archive}",
        f"format version:   {contents.format_version}",
        f"python version:   {contents.python_version or 'unknown'}",
        "integrity:        "
        + (
            "manifest present (torchpack verify checks it)"
            if contents.has_manifest
            else "no manifest: changes to the package cannot be detected"
        ),
        "distributions:    "
        + (", ".join(f"{n} {v}" for n, v in contents.distributions.items()) or "(none)"),
        f"interned modules: {len(contents.interned_modules)}, {human_size(interned_size)} "
        "of source (their code runs when imported)",
        *_top_level_lines(contents),
        _listed(
            f"mocked modules:   {len(contents.mocked_modules)} (stubs that raise when used):",
            _counted(contents.mocked_modules),
        ),
        f"extern modules:   {len(externs)} (the loading environment provides them)",
        _listed("  outside the standard library:", _counted(outside_stdlib)),
        f"  standard library: {len(externs) - len(outside_stdlib)} modules",
        _listed(
            f"resources:        {len(resources)}, {human_size(sum(sizes[r] for r in resources))}:",
            _first(resources, _MOST_RESOURCES),
        ),
        f"tensor storages:  {len(contents.storages)}, "
        f"{human_size(sum(contents.storages.values()))}",
        f"pickles:          {len(contents.pickles)}",
    ]
    for pickle in contents.pickles:
        if pickle.error:
            lines.append(f"  {pickle.record}: CANNOT BE SCANNED: {pickle.error}")
        modules = [module for module, _ in pickle.globals]
        lines.append(
            _listed(f"  {pickle.record}: {len(pickle.globals)} globals from", _counted(modules))
        )
    return "\n".join(lines) + "\n"


def _top_level_lines(contents: PackageContents) -> list[str]:
    """Interned modules by top-level package, largest first: what the package carries."""
    counts = Counter(module.partition(".")[0] for module in contents.interned_modules)
    sizes: Counter[str] = Counter()
    for module, record in contents.interned_modules.items():
        sizes[module.partition(".")[0]] += contents.sizes[record]
    ranked = counts.most_common()
    lines = [
        f"  {name:<22} {count:>5} modules, {human_size(sizes[name])}"
        for name, count in ranked[:_MOST_TOP_LEVEL]
    ]
    rest = ranked[_MOST_TOP_LEVEL:]
    if rest:
        lines.append(
            f"  and {len(rest)} more top-level names, {sum(c for _, c in rest)} modules (--full)"
        )
    return lines


def _counted(modules: Iterable[str]) -> list[str]:
    """``modules`` by top-level name with their number, or the module itself if alone."""
    by_top: dict[str, list[str]] = {}
    for module in modules:
        by_top.setdefault(module.partition(".")[0], []).append(module)
    return [
        f"{top} ({len(group)})" if len(group) > 1 else group[0]
        for top, group in sorted(by_top.items())
    ]


def _first(names: list[str], most: int) -> list[str]:
    return names[:most] + ([f"and {len(names) - most} more (--full)"] if len(names) > most else [])


def _listed(heading: str, items: list[str], indent: int = 4) -> str:
    """``heading`` followed by ``items`` comma-separated, wrapped (never inside an item)."""
    lines = [heading + (" none" if not items else "")]
    for position, item in enumerate(items):
        item += "," if position < len(items) - 1 else ""
        if len(lines[-1]) + 1 + len(item) > _WIDTH:
            lines.append(" " * (indent - 1))
        lines[-1] += " " + item
    return "\n".join(lines)


def _full_lists(contents: PackageContents) -> str:
    lines = [
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


def _section(title: str, items: Iterable[str]) -> str:
    body = "".join(f"\n  {name}" for name in items) or "\n  (none)"
    return f"{title}:{body}"
