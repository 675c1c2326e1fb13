"""What the exporter does with each module: the intern / extern / mock / deny rules.

Rules are kept in the order they were declared; the first rule whose pattern matches a module
decides its action.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..analysis.glob_group import GlobGroup


class ModuleAction(enum.Enum):
    INTERN = "intern"
    EXTERN = "extern"
    MOCK = "mock"
    DENY = "deny"


@dataclass
class ActionRule:
    pattern: GlobGroup
    action: ModuleAction
    allow_empty: bool
    matched: bool = False

    def __str__(self) -> str:
        """The call that declared the rule: ``intern('models.**', exclude=['models.x'])``."""
        include = self.pattern.include_patterns
        arguments = repr(include[0]) if len(include) == 1 else repr(list(include))
        if self.pattern.exclude_patterns:
            arguments += f", exclude={list(self.pattern.exclude_patterns)!r}"
        return f"{self.action.value}({arguments})"


class ActionTable:
    """The declared rules, consulted first match first."""

    def __init__(self) -> None:
        self.rules: list[ActionRule] = []

    def add(self, pattern: GlobGroup, action: ModuleAction, allow_empty: bool) -> None:
        self.rules.append(ActionRule(pattern, action, allow_empty))

    def first_match(self, module_name: str) -> ActionRule | None:
        for rule in self.rules:
            if rule.pattern.matches(module_name):
                return rule
        return None

    def mark_matches(self, module_name: str) -> None:
        """Count ``module_name`` as a match for every rule that names it.

        Used for modules that are extern implicitly (the standard library, torch): a rule that
        asked for them got what it asked for and must not raise :class:`EmptyMatchError`.
        """
        for rule in self.rules:
            if rule.pattern.matches(module_name):
                rule.matched = True

    def unmatched(self) -> list[ActionRule]:
        return [rule for rule in self.rules if not rule.allow_empty and not rule.matched]
