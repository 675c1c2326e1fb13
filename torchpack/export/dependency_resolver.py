"""Turning "save these objects and modules" into the set of modules a package must provide.

Every module reached from a pickle's globals or an interned module's imports gets exactly one
decision: extern (left to the loading environment), intern (its source goes in the package),
mock (a stub goes in), or a problem that stops the export. Problems are collected, not raised
on sight, so that one :class:`PackagingError` can list them all.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass

from .._mangling import demangle
from .._mock import MOCKED_MODULE_SOURCE
from ..analysis.digraph import DiGraph
from ..analysis.import_scanner import ImportAnalysisError
from ..analysis.module_analysis import ModuleAnalyzer, analyze_module
from ..analysis.stdlib import is_stdlib_module
from ..archive.format import IMPORTER_MODULE, MOCK_SUPPORT_MODULE
from ..errors import DISALLOWED_MODULES, EmptyMatchError, PackagingError, PackagingErrorReason
from ..importer import Importer
from .module_actions import ActionTable, ModuleAction
from .module_source import ModuleLocator, ModuleSource, libraries_beside

_MOCK_STUB = MOCKED_MODULE_SOURCE.encode("utf-8")


def _guards_main(source: bytes) -> bool:
    return b"__name__" in source and b"__main__" in source


@dataclass(slots=True)
class ModuleDecision:
    action: ModuleAction | None = None
    source: ModuleSource | None = None
    problem: PackagingErrorReason | None = None
    context: str | None = None


class DependencyResolver:
    """Decides, for every module a package needs, how the package provides it."""

    def __init__(self, importer: Importer, analyzer: ModuleAnalyzer | None = None) -> None:
        """``analyzer`` supplies each interned module's imports (a cache, or analyses made
        elsewhere); without one every module's source is parsed here."""
        self.locator = ModuleLocator(importer)
        self.analyze = analyze_module if analyzer is None else analyzer.analyze
        self.actions = ActionTable()
        self.graph = DiGraph()
        self.decisions: dict[str, ModuleDecision] = {}
        self._uses_mock_support = False
        self._dynamic_import_warnings: list[str] = []
        self._library_warnings: list[str] = []
        self._exists: dict[str, bool] = {}
        self._submodule_loaders: dict[str, bool] = {}

    # -- requests -------------------------------------------------------------------------

    def require(
        self, module_name: str, requested_by: str | None = None, scan_dependencies: bool = True
    ) -> None:
        """``requested_by`` (a module or ``<pickle>`` node) needs ``module_name``.

        With ``scan_dependencies=False`` an interned ``module_name`` is packaged without
        following its own imports.
        """
        module_name = demangle(module_name)
        pending = deque([(module_name, requested_by)])
        while pending:
            name, parent = pending.popleft()
            if parent is not None:
                self.graph.add_edge(parent, name)
            else:
                self.graph.add_node(name)
            if name in self.decisions:
                continue
            decision = self._decide(name)
            self.decisions[name] = decision
            if decision.action is not ModuleAction.INTERN or decision.problem is not None:
                continue
            if scan_dependencies or name != module_name:
                pending.extend((dep, name) for dep in self._dependencies_of(decision.source))
            pending.extend((parent, name) for parent in self._parents_to_intern(name))

    def intern_source(self, source: ModuleSource, scan_dependencies: bool) -> None:
        """Intern ``source`` whatever the patterns say (save_source_string, save_source_file)."""
        decision = self._source_decision(ModuleAction.INTERN, source)
        self._force_intern(source.name, decision, scan_dependencies)

    def intern_module(self, module_name: str, scan_dependencies: bool) -> None:
        """Intern ``module_name``, found through the importer, whatever the patterns say.

        A name from a loaded package (mangled) is saved under its real name; a module that
        does not exist raises ``ModuleNotFoundError`` at once, as torch.package does.
        """
        module_name = demangle(module_name)
        if not self._module_exists(module_name):
            raise ModuleNotFoundError(f"No module named '{module_name}'", name=module_name)
        decision = self._located_decision(ModuleAction.INTERN, module_name)
        self._force_intern(module_name, decision, scan_dependencies)

    def _force_intern(self, name: str, decision: ModuleDecision, scan_dependencies: bool) -> None:
        self.graph.add_node(name)
        self.decisions[name] = decision
        if decision.problem is None and scan_dependencies:
            for dep in self._dependencies_of(decision.source):
                self.require(dep, name)
        for parent in self._parents_to_intern(name):
            self.require(parent, name)

    def require_from_pickle(
        self, package: str, resource: str, references: list[tuple[str, str]]
    ) -> None:
        """The pickle ``package/resource`` references ``(module, name)`` globals: each module
        must be loadable."""
        pickle_node = f"<{package}.{resource}>"
        self.graph.add_node(pickle_node)
        fields_by_module: dict[str, list[str]] = {}
        for module_name, field in references:
            fields_by_module.setdefault(demangle(module_name), []).append(field)
        for module_name, fields in fields_by_module.items():
            self.require(module_name, pickle_node)
            decision = self.decisions[module_name]
            if decision.action is ModuleAction.MOCK:
                decision.problem = PackagingErrorReason.MOCKED_BUT_STILL_USED
                decision.context = (
                    f"Object(s) '{list(dict.fromkeys(fields))}' from module `{module_name}` was "
                    "mocked out during packaging but is being used in resource - "
                    f"`{resource}` in package `{package}`. "
                )

    # -- decisions ------------------------------------------------------------------------

    def _decide(self, name: str) -> ModuleDecision:
        if name == IMPORTER_MODULE:
            return ModuleDecision()
        if name == MOCK_SUPPORT_MODULE:
            # Re-packaging a package that already mocks something: write our _mock once.
            self._uses_mock_support = True
            return ModuleDecision()
        if self._implicitly_extern(name):
            self.actions.mark_matches(name)
            return ModuleDecision(ModuleAction.EXTERN)
        if name == "__main__":
            decision = self._located_decision(ModuleAction.INTERN, name)
            if decision.source is not None and not _guards_main(decision.source.source or b""):
                warnings.warn(
                    f"__main__ ({decision.source.origin}) is saved in the package, and loading "
                    "it runs all of its top-level code: put the script's work under "
                    '`if __name__ == "__main__":` (as multiprocessing requires)',
                    stacklevel=5,
                )
            return decision
        rule = self.actions.first_match(name)
        if rule is None:
            return ModuleDecision(problem=PackagingErrorReason.NO_ACTION)
        rule.matched = True
        if rule.action is ModuleAction.DENY:
            return ModuleDecision(ModuleAction.DENY, problem=PackagingErrorReason.DENIED)
        if rule.action is ModuleAction.EXTERN:
            return ModuleDecision(ModuleAction.EXTERN)
        if rule.action is ModuleAction.MOCK:
            if name.partition(".")[0] in DISALLOWED_MODULES:
                # torch.package mocks them and the package breaks at load; its note below the
                # reason says to extern them.
                return ModuleDecision(ModuleAction.MOCK, problem=PackagingErrorReason.STDLIB_MOCKED)
            self._uses_mock_support = True
        return self._located_decision(rule.action, name)

    def _located_decision(self, action: ModuleAction, name: str) -> ModuleDecision:
        try:
            source = self.locator.locate(name)
        except Exception as err:  # reported with the other broken modules, not fatal
            if action is ModuleAction.MOCK:
                # Mocking a module that does not exist here is fine: the stub stands in for it.
                return ModuleDecision(action, ModuleSource(name, False))
            return ModuleDecision(
                action,
                problem=PackagingErrorReason.NOT_FOUND,
                context=f"{type(err).__name__}: {err}",
            )
        if action is ModuleAction.MOCK:
            return ModuleDecision(action, source)
        if action is ModuleAction.INTERN and source.source == _MOCK_STUB:
            # A stub from a package being re-exported: it stays a mock, whatever the patterns.
            self._uses_mock_support = True
            return ModuleDecision(ModuleAction.MOCK, source)
        return self._source_decision(action, source)

    @staticmethod
    def _source_decision(action: ModuleAction, source: ModuleSource) -> ModuleDecision:
        if source.problem is PackagingErrorReason.SOURCE_FILE_NOT_FOUND:
            return ModuleDecision(action, source, source.problem, f"filename: {source.origin}")
        return ModuleDecision(action, source, source.problem)

    def _parents_to_intern(self, name: str) -> list[str]:
        """The parent packages of ``name`` whose ``__init__`` an interned ``name`` needs.

        Parents are empty placeholders in the package, as in torch.package, unless an intern
        pattern claims one whose ``__init__`` only imports its own submodules: that one runs
        for its submodules' side effects (mpmath.functions), so it is interned. A parent that
        is needed in its own right is interned anyway, as a dependency. Parents that do not
        exist (``save_source_string("fx-generated._0", ...)``) are implicit.
        """
        parents = []
        while "." in name:
            name = name.rpartition(".")[0]
            if name in self.decisions or self._implicitly_extern(name):
                continue
            rule = self.actions.first_match(name)
            if rule is None or rule.action is not ModuleAction.INTERN:
                continue
            if self._module_exists(name) and self._loads_submodules_only(name):
                parents.append(name)
        return parents

    def _loads_submodules_only(self, package: str) -> bool:
        known = self._submodule_loaders.get(package)
        if known is None:
            known = self._submodule_loaders[package] = self._analyze_loads_submodules_only(package)
        return known

    def _analyze_loads_submodules_only(self, package: str) -> bool:
        try:
            source = self.locator.locate(package)
        except Exception:  # it exists, yet cannot be located: a placeholder will do
            return False
        if not source.is_package or source.source is None:
            return False
        try:
            analysis = self.analyze(source.source, package, True, source.origin or package)
        except ImportAnalysisError:
            return False
        return analysis.loads_submodules_only

    @staticmethod
    def _implicitly_extern(name: str) -> bool:
        top = name.partition(".")[0]
        # torchpack too: a script that saves its own model imports it, and whatever loads the
        # package (torchpack, or torch.package with torchpack installed) provides it.
        return top in ("torch", "torchpack") or (
            top not in DISALLOWED_MODULES and is_stdlib_module(top)
        )

    def _module_exists(self, name: str) -> bool:
        known = self._exists.get(name)
        if known is None:
            known = self._exists[name] = self.locator.exists(name)
        return known

    def _dependencies_of(self, source: ModuleSource | None) -> list[str]:
        if source is None or source.source is None:
            return []
        try:
            scan = self.analyze(
                source.source, source.name, source.is_package, source.origin or source.name
            )
        except ImportAnalysisError as err:
            decision = self.decisions.setdefault(source.name, ModuleDecision(ModuleAction.INTERN))
            decision.problem = PackagingErrorReason.DEPENDENCY_RESOLUTION_FAILED
            decision.context = err.reason
            return []
        self._dynamic_import_warnings.extend(scan.warnings)
        libraries = libraries_beside(source)
        if libraries:
            self._library_warnings.append(
                f"{source.name} looks for files beside its own ({source.origin}), where "
                f"compiled libraries lie that a package cannot hold: {', '.join(libraries)}. "
                "Loaded from the package, it will not find them. If the model needs them, "
                f'extern("{source.name}") so that the installed library provides it.'
            )
        dependencies: dict[str, None] = {}
        for ref in scan.imports:
            # `from pkg import sub` needs only pkg.sub when sub is a submodule.
            if ref.name is not None and self._module_exists(f"{ref.module}.{ref.name}"):
                dependencies[f"{ref.module}.{ref.name}"] = None
            elif self._module_exists(ref.module):
                dependencies[ref.module] = None
        dependencies.pop(source.name, None)
        return list(dependencies)

    # -- results --------------------------------------------------------------------------

    def modules_with(self, action: ModuleAction) -> list[str]:
        return sorted(
            name
            for name, decision in self.decisions.items()
            if decision.action is action and decision.problem is None
        )

    def module_actions(self) -> list[tuple[str, ModuleAction]]:
        """Every module the package provides or leaves to its environment, sorted by name."""
        return sorted(
            (name, decision.action)
            for name, decision in self.decisions.items()
            if decision.action is not None and decision.problem is None
        )

    @property
    def uses_mock_support(self) -> bool:
        return self._uses_mock_support

    def check(self, debug: bool = False) -> None:
        """Raise the export's problems: first broken modules, then patterns that matched nothing.

        ``debug`` adds the chain of imports behind each broken module to the message.
        """
        if self._dynamic_import_warnings:
            shown = "\n  ".join(self._dynamic_import_warnings[:10])
            more = len(self._dynamic_import_warnings) - 10
            warnings.warn(
                f"{len(self._dynamic_import_warnings)} dynamic import(s) could not be resolved "
                f"statically:\n  {shown}" + (f"\n  ... and {more} more" if more > 0 else ""),
                stacklevel=3,
            )
            self._dynamic_import_warnings.clear()
        for message in self._library_warnings:
            warnings.warn(message, stacklevel=3)
        self._library_warnings.clear()
        broken = False
        for name, decision in self.decisions.items():
            if decision.problem is not None:
                broken = True
                attrs = {"error": decision.problem}
                if decision.context is not None:
                    attrs["error_context"] = decision.context
                self.graph.add_node(name, **attrs)
        if broken:
            raise PackagingError(self.graph, debug)
        unmatched = self.actions.unmatched()
        if unmatched:
            listed = ", ".join(str(rule) for rule in unmatched)
            raise EmptyMatchError(
                f"Exporter did not match any modules to {listed}, which was marked as "
                "allow_empty=False. Fix the pattern or pass allow_empty=True."
            )
