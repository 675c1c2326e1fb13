"""Callbacks that run once per module when an exporter closes (``register_*_hook``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from .module_actions import ModuleAction

# hook(exporter, module_name)
ActionHook = Callable[[Any, str], None]


class HookHandle:
    """Returned by ``register_*_hook``; ``remove()`` unregisters the hook (also as ``with``)."""

    def __init__(self, hooks: dict[int, ActionHook], key: int) -> None:
        self._hooks = hooks
        self._key = key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


class ActionHooks:
    """The hooks registered for intern, extern and mock, called in registration order."""

    def __init__(self) -> None:
        self._hooks: dict[ModuleAction, dict[int, ActionHook]] = {
            ModuleAction.INTERN: {},
            ModuleAction.EXTERN: {},
            ModuleAction.MOCK: {},
        }
        self._keys = itertools.count()

    def register(self, action: ModuleAction, hook: ActionHook) -> HookHandle:
        hooks = self._hooks[action]
        key = next(self._keys)
        hooks[key] = hook
        return HookHandle(hooks, key)

    def call(self, exporter: Any, modules: Iterable[tuple[str, ModuleAction]]) -> None:
        """Call each module's hooks; ``modules`` pairs each module with its action."""
        for module_name, action in modules:
            for hook in list(self._hooks.get(action, {}).values()):
                hook(exporter, module_name)
