"""``torchpack audit PKG``: every global the pickles name and every module that runs on import.

Analyses what the importer would run: the source it picks for each module (an extern module
shadows a shipped one; a package's ``__init__.py`` beats a module of the same name), a
``_mock.py`` other than torchpack's as code, every record ``load_pickle`` could read as a
pickle (by content, whatever its name), and each global together with what the pickle does with
it, as safe loading judges it. Exits 1 when a pickle names a global outside the package's own
definitions, the known-harmless helpers used as such, and ``--allow``, or cannot be scanned.
"""

from __future__ import annotations

import argparse
import json

from ..analysis.defined_names import defined_names
from ..analysis.glob_group import GlobGroup
from ..analysis.global_rules import DANGEROUS_GLOBALS, judge
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


class _Definitions:
    """What each of the package's modules defines, parsed once per module when asked."""

    def __init__(self, index: ZipIndex, contents: PackageContents) -> None:
        self._index = index
        self._contents = contents
        self._parsed: dict[str, frozenset[str]] = {}

    def defines(self, module: str, name: str) -> bool:
        if module in self._contents.mocked_modules:
            return "." not in name  # a stub: every name raises when used
        record = self._contents.interned_modules.get(module)
        if record is None:
            return False
        if module not in self._parsed:
            try:
                source = self._index.read(record)
                self._parsed[module] = defined_names(source, module, record)
            except ImportAnalysisError:
                self._parsed[module] = frozenset()
        return name in self._parsed[module]


def classify(
    definitions: _Definitions, module: str, name: str, uses: int, allowed: GlobGroup | None
) -> str:
    """``package``, ``harmless``, ``allowed``, ``dangerous`` or ``unknown``."""
    if definitions.defines(module, name):
        return "package"
    verdict = judge(module, name, uses)
    if verdict == "harmless":
        return verdict
    if allowed is not None and allowed.matches(f"{module}.{name}"):
        return "allowed"
    return verdict or "unknown"


def run(args: argparse.Namespace) -> int:
    index = ZipIndex(args.package)
    contents = inspect_package(index)
    definitions = _Definitions(index, contents)
    allowed = GlobGroup(args.allow) if args.allow else None
    pickles = {
        pickle.record: {
            "error": pickle.error,
            "globals": {
                f"{module}.{name}": classify(
                    definitions, module, name, pickle.uses[f"{module}.{name}"], allowed
                )
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
