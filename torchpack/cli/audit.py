"""``torchpack audit PKG``: every global the pickles name and every module that runs on import.

Exits 1 when a pickle names a global outside the package's own modules, the known-harmless
reconstruction helpers and ``--allow``, or cannot be scanned.
"""

from __future__ import annotations

import argparse
import json

from ..analysis.glob_group import GlobGroup
from ..analysis.global_rules import DANGEROUS_GLOBALS, is_harmless
from ..analysis.import_scanner import ImportAnalysisError, find_imports
from ..archive.zip_index import ZipIndex
from .package_contents import PackageContents, inspect_package


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", help="package archive (.pt) to audit")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="PATTERN",
        help="globals to accept, as module.name globs (numpy.core.**); repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def classify(contents: PackageContents, module: str, name: str, allowed: GlobGroup | None) -> str:
    """``package``, ``harmless``, ``allowed``, ``dangerous`` or ``unknown``."""
    own = module in contents.interned_modules or module in contents.mocked_modules
    # A dotted name reaches through attributes (`models.os.system`): judged like any other.
    if own and "." not in name:
        return "package"
    if is_harmless(module, name):
        return "harmless"
    global_name = f"{module}.{name}"
    if allowed is not None and allowed.matches(global_name):
        return "allowed"
    if DANGEROUS_GLOBALS.matches(global_name):
        return "dangerous"
    return "unknown"


def run(args: argparse.Namespace) -> int:
    index = ZipIndex(args.package)
    contents = inspect_package(index)
    allowed = GlobGroup(args.allow) if args.allow else None
    pickles = {
        pickle.record: {
            "error": pickle.error,
            "globals": {
                f"{module}.{name}": classify(contents, module, name, allowed)
                for module, name in pickle.globals
            },
        }
        for pickle in contents.pickles
    }
    modules = {
        module: _risky_imports(index, module, record)
        for module, record in contents.interned_modules.items()
    }
    failed = any(
        entry["error"] or any(v in ("dangerous", "unknown") for v in entry["globals"].values())
        for entry in pickles.values()
    )
    if args.json:
        print(json.dumps({"pickles": pickles, "interned_modules": modules, "ok": not failed}))
        return 1 if failed else 0
    print("interned modules (their code runs when the package imports them):")
    for module, risky in modules.items():
        note = f"   imports {', '.join(risky)}" if risky else ""
        print(f"  {module}{note}")
    for record, entry in pickles.items():
        print(f"pickle {record}:")
        if entry["error"]:
            print(f"  CANNOT BE SCANNED: {entry['error']}")
        for name, verdict in entry["globals"].items():
            print(
                f"  {verdict.upper() if verdict in ('dangerous', 'unknown') else verdict:9} {name}"
            )
    print(
        "FAIL: globals outside the package and the allow list (pass --allow to accept them)"
        if failed
        else "OK: every global is the package's own, a harmless helper, or allowed"
    )
    return 1 if failed else 0


def _risky_imports(index: ZipIndex, module: str, record: str) -> list[str]:
    """The module's imports that match the known-dangerous list (reported, not failed)."""
    try:
        scan = find_imports(index.read(record), module, record.endswith("/__init__.py"), record)
    except ImportAnalysisError as err:
        return [f"<cannot be analyzed: {err.reason}>"]
    risky = {ref.module for ref in scan.imports if DANGEROUS_GLOBALS.matches(ref.module + ".x")}
    return sorted(risky)
