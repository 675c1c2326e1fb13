"""``torchpack audit PKG``: every global the pickles name, and what the code that runs on
import can reach.

Analyses what the importer would run: the source it picks for each module (an extern module
shadows a shipped one; a package's ``__init__.py`` beats a module of the same name), a
``_mock.py`` other than torchpack's as code, every record ``load_pickle`` could read as a
pickle (by content, whatever its name), and each global together with what the pickle does with
it, as safe loading judges it.

Interned code is read for the network, process and native-library APIs it uses
(:mod:`~torchpack.analysis.code_capabilities`). A call that module-level code makes runs when
a pickle is loaded, whoever loads it: that fails the audit. A use in a function (a library's
download helper, its ``git describe``) runs only if something calls it: reported for a person
to judge, never failed, since a user of a real library cannot remove it.

Exits 1 when a pickle names a global outside the package's own definitions, the known-harmless
helpers used as such, and ``--allow``, or cannot be scanned; or when interned code calls such an
API on import, unless ``--allow`` names it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field

from ..analysis.code_capabilities import (
    CAPABILITIES,
    CapabilityUse,
    capability_uses,
    may_use_capabilities,
)
from ..analysis.defined_names import defined_names
from ..analysis.glob_group import GlobGroup
from ..analysis.global_rules import judge
from ..analysis.import_scanner import ImportAnalysisError
from ..analysis.source_names import names_text
from ..archive.zip_index import ZipIndex
from .package_contents import PackageContents, inspect_package


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", help="package archive (.pt) to audit")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="PATTERN",
        help="globals, and APIs called on import, to accept, as module.name globs "
        "(numpy.core.**); repeatable",
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
        module: _code_uses(index, module, record)
        for module, record in contents.interned_modules.items()
    }
    failed_globals = any(
        entry["error"] or any(v in ("dangerous", "unknown") for v in entry["globals"].values())
        for entry in pickles.values()
    )
    on_import = sorted(
        {
            use.name
            for entry in modules.values()
            for use in entry.uses
            if use.called_on_import and not (allowed and allowed.matches(use.name))
        }
    )
    failed = failed_globals or bool(on_import)
    if args.json:
        report = {
            "pickles": pickles,
            "interned_modules": {module: asdict(entry) for module, entry in modules.items()},
            "ok": not failed,
        }
        print(json.dumps(report))
        return 1 if failed else 0
    print(_code_report(modules))
    for record, entry in pickles.items():
        print(f"pickle {record}:")
        if entry["error"]:
            print(f"  CANNOT BE SCANNED: {entry['error']}")
        for name, verdict in entry["globals"].items():
            print(
                f"  {verdict.upper() if verdict in ('dangerous', 'unknown') else verdict:9} {name}"
            )
    if on_import:
        print(
            f"FAIL: interned code calls {', '.join(on_import)} when imported, that is when a "
            "pickle is loaded (pass --allow NAME to accept)"
        )
    if failed_globals:
        print("FAIL: globals outside the package and the allow list (pass --allow to accept them)")
    if not failed:
        print(
            "OK: every global is the package's own, a harmless helper, or allowed, and no "
            "interned code reaches the network, starts a process or loads a native library "
            "when imported"
        )
    return 1 if failed else 0


@dataclass
class _CodeUses:
    """What one interned module's code can do beyond computing, or why it cannot be read."""

    uses: list[CapabilityUse] = field(default_factory=list)
    error: str | None = None


def _code_uses(index: ZipIndex, module: str, record: str) -> _CodeUses:
    source = index.read(record)
    text = names_text(source, module, record)
    try:
        if text is None or may_use_capabilities(text, module):
            is_package = record.endswith("/__init__.py")
            return _CodeUses(capability_uses(source, module, is_package, record))
    except ImportAnalysisError as err:
        return _CodeUses(error=err.reason)  # nor can it be imported: it runs nothing
    return _CodeUses()


def _code_report(modules: dict[str, _CodeUses]) -> str:
    """The interned modules whose code can reach the network, start processes or load native
    libraries, by capability, calls made on import (when a pickle is loaded) first."""
    lines = [f"interned modules: {len(modules)} (their code runs when the package imports them)"]
    counts = {
        capability: sum(any(u.capability == capability for u in e.uses) for e in modules.values())
        for capability in CAPABILITIES
    }
    lines.append(
        f"  can reach the network: {counts['network']}, start processes: {counts['process']}, "
        f"load native libraries: {counts['native library']} (static reading; names built at "
        "run time are not seen)"
    )
    for module, entry in modules.items():
        if entry.error:
            lines.append(f"  {module}   cannot be analyzed: {entry.error}")
        for called_on_import in (True, False):
            uses = [u for u in entry.uses if u.called_on_import == called_on_import]
            if not uses:
                continue
            by_capability: dict[str, list[str]] = {}
            for use in uses:
                by_capability.setdefault(use.capability, []).append(f"{use.name} (line {use.line})")
            what = "; ".join(f"{c}: {', '.join(names)}" for c, names in by_capability.items())
            when = "CALLED ON IMPORT" if called_on_import else "uses"
            lines.append(f"  {module}   {when} {what}")
    return "\n".join(lines)
