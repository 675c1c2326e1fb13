"""Which globals a pickle may name when a package is loaded with ``safe=True``, and as what.

Unpickling calls whatever a pickle names, so a package could run ``os.system`` the moment it
is loaded. Safe loading resolves a global only when its module is the package's own, torch's,
one of the plain-container modules, or matched by ``allow_globals``, and then judges the
*resolved object* (where it is defined, never the dotted name alone: ``victim.os.system`` and
``torch.nn.functional.torch.os.system`` are ``os.system``) together with what the pickle does
with it (:mod:`torchpack.analysis.pickle_scanner` tells: called, instantiated with ``NEWOBJ``,
its result changed by ``BUILD``, or only held as a value):

- classes and functions defined in the package's own modules: that code runs on import
  anyway, and ``torchpack audit`` lists it;
- torch's tensor rebuild functions, ``torch.Size`` and the constructors of plain containers,
  called through :class:`~torchpack.loading.checked_calls.CheckedCall` (arguments checked,
  memory charged to a budget);
- plain values and harmless constructors: dtypes, layouts, memory formats, devices,
  ``Parameter``, ``int``, ``str``, ...;
- held as values only, never called: ``torch.Tensor``, storage classes, torch operator
  functions (a module holding ``torch._C._nn.gelu`` or ``torch.nn.functional.relu``), and the
  package reducers of TorchScript and ``torch.fx`` (called by the importer itself) with
  torch's fx tracer classes;
- ``torch.nn`` module classes, instantiated without their constructor (``NEWOBJ``) and filled
  in by ``BUILD``, as every pickle of a module does; calling one (``Linear(10**5, 10**5)``) is
  refused;
- ``allow_globals``: an exact name admits that global as it is; a glob admits classes and
  functions *defined* under it.

Everything else raises :class:`~torchpack.errors.UnsafeGlobalError` naming the global, the
record and the reason.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import torch

from .._mangling import demangle
from ..analysis.glob_group import GlobGroup, GlobPattern
from ..analysis.global_rules import DANGEROUS_GLOBALS
from ..analysis.pickle_scanner import BUILT, CALL, NEW
from .checked_calls import CHECKED_BUILTINS, PLAIN_BUILTINS, CheckedCall, SafeLoad
from .checked_tensors import CHECKED_TENSOR_CALLS

# By identity: a package object with a forged __hash__ and __eq__ must not pass for one.
_CHECKED = {
    id(real): (real, entry) for real, entry in {**CHECKED_BUILTINS, **CHECKED_TENSOR_CALLS}.items()
}
# What calling these returns may then get its state from BUILD (an OrderedDict's _metadata,
# the instance copyreg._reconstructor makes); torch's rebuilt tensors get theirs from the
# rebuild call itself.
_BUILD_RESULT_OK = frozenset(
    {dict, list, set, bytearray}
    | {k for k in CHECKED_BUILTINS if getattr(k, "__module__", "") in ("collections", "copyreg")}
)
_PLAIN_TORCH = frozenset(
    {torch.device, torch.nn.Parameter, torch.nn.Buffer, torch.serialization._get_layout}
)
# Instantiated without their constructor, these are tensors: BUILD would hand the state to
# torch.Tensor.__setstate__, whose set_() grows storages to any size unchecked.
_NEVER_NEW = frozenset({torch.nn.Parameter, torch.nn.Buffer})
_TORCH_VALUES = (torch.dtype, torch.layout, torch.memory_format, torch.qscheme)
_STORAGE_CLASSES = (torch.storage._LegacyStorage, torch.storage.TypedStorage, torch.UntypedStorage)
# Where torch's operators are defined: a builtin is an operator if its namespace holds it
# under its own name. Private ones and from_file (it reads a file) are not held as values.
_OPERATOR_NAMESPACES = (
    torch._C._VariableFunctionsClass,
    torch._C._nn,
    torch._C._fft,
    torch._C._linalg,
    torch._C._special,
    torch._C._nested,
    torch._C._sparse,
)
_NOT_OPERATORS = frozenset({"from_file"})
# Modules whose globals safe loading looks at without an allow_globals entry.
_KNOWN_MODULES = frozenset({"builtins", "collections", "copyreg", "_codecs", "torch"})
# Called by the importer (persistent_load) for TorchScript and torch.fx, with the package.
_PACKAGE_REDUCERS = (
    ("torch.jit._script", "unpackage_script_module"),
    ("torch.fx.graph_module", "reduce_package_graph_module"),
)


class Refused(Exception):
    """A global safe loading does not admit for what the pickle does with it; why."""


class OwnerToken:
    """The object of a folded ``getattr(owner, "name")``: never resolved, only named."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def is_package_reducer(obj: object) -> bool:
    """TorchScript's or torch.fx's ``__reduce_package__`` loader, which needs the importer."""
    return any(
        obj is getattr(sys.modules.get(module), name, None) for module, name in _PACKAGE_REDUCERS
    )


def is_operator(obj: object) -> bool:
    """A torch operator function: builtin ops of torch's C extension, torch.nn.functional's."""
    name = getattr(obj, "__name__", None)
    if type(obj) is types.BuiltinFunctionType and name and name not in _NOT_OPERATORS:
        if name.startswith("_") and obj is getattr(torch._C._VariableFunctionsClass, name, None):
            return False
        return any(getattr(space, name, None) is obj for space in _OPERATOR_NAMESPACES)
    return (
        type(obj) is types.FunctionType
        and obj.__module__ == "torch.nn.functional"
        and getattr(torch.nn.functional, obj.__name__, None) is obj
    )


def _is_torch_module_class(obj: object) -> bool:
    return (
        isinstance(obj, type)
        and issubclass(obj, torch.nn.Module)
        and obj.__module__.startswith(("torch.nn.", "torch.ao.nn."))
    )


def _definition(obj: object) -> str | None:
    """``module.qualname`` where a class or function is defined (None for anything else)."""
    if not isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
        return None
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    return f"{demangle(module)}.{qualname}"


def _checked_entry(obj: object) -> tuple[Any, Any] | None:
    real, entry = _CHECKED.get(id(obj), (None, None))
    return entry if real is obj else None


def _is_one_of(obj: object, items: frozenset[Any]) -> bool:
    return any(obj is item for item in items)


class GlobalPolicy:
    """Decides what safe loading hands the unpickler for a global and its uses."""

    def __init__(self, allow_globals: GlobPattern = ()) -> None:
        patterns = [allow_globals] if isinstance(allow_globals, str) else list(allow_globals)
        self._exact = frozenset(p for p in patterns if "*" not in p)
        globs = [p for p in patterns if "*" in p]
        self._globs = GlobGroup(globs) if globs else None

    def allows_exactly(self, full_name: str) -> bool:
        """Named in ``allow_globals`` without a glob: admitted as it is, for any use."""
        return full_name in self._exact

    def may_resolve(self, module: str, full_name: str) -> bool:
        """Whether looking the global up (importing its module) is worth it at all: not for
        what is known to run code whatever it turns out to be, nor outside the known modules
        and ``allow_globals``."""
        if DANGEROUS_GLOBALS.matches(full_name):
            return False
        return (
            module in _KNOWN_MODULES
            or module.startswith("torch.")
            or (self._globs is not None and self._globs.matches(full_name))
        )

    def admit(self, obj: Any, full_name: str, uses: int, load: SafeLoad, in_package: bool) -> Any:
        """What the unpickler gets for ``obj`` (named ``full_name``); raises :class:`Refused`."""
        entry = _checked_entry(obj)
        if entry is not None:
            return self._checked(obj, uses, load, entry)
        if _is_one_of(obj, PLAIN_BUILTINS | _PLAIN_TORCH) or isinstance(obj, _TORCH_VALUES):
            if uses & BUILT or (uses & NEW and _is_one_of(obj, _NEVER_NEW)):
                raise Refused(
                    f"the pickle instantiates it without its constructor or changes the state of "
                    f"what it returned (BUILD), which Python's pickler never writes for "
                    f"{_definition(obj) or 'it'}"
                )
            return obj
        value_only = _value_only(obj)
        if value_only is not None:
            if uses & (CALL | NEW | BUILT):
                raise Refused(f"{value_only} may be held as a value, but the pickle calls it")
            return obj
        if _is_torch_module_class(obj):
            if uses & CALL:
                raise Refused(
                    "pickles rebuild torch.nn modules without calling their constructor, but "
                    "this one calls it (a constructor can allocate any amount of memory)"
                )
            return obj
        if in_package:
            return obj
        definition = _definition(obj)
        if self._globs is not None and definition and self._globs.matches(definition):
            return obj
        if definition and definition != full_name:
            raise Refused(f"it is {definition}, reached through another name")
        raise Refused(
            "it is not defined in the package's own modules nor a known-harmless "
            "reconstruction function"
        )

    @staticmethod
    def _checked(obj: Any, uses: int, load: SafeLoad, entry: tuple[Any, Any]) -> Any:
        name = _definition(obj) or repr(obj)
        if uses & BUILT and not _is_one_of(obj, _BUILD_RESULT_OK):
            raise Refused(
                f"the pickle changes the state of what {name} returned (BUILD), which Python's "
                "pickler never writes"
            )
        if uses & NEW:
            raise Refused(f"the pickle instantiates {name} without calling it (NEWOBJ)")
        if uses & CALL or not isinstance(obj, type):
            check, run = entry
            return CheckedCall(name, obj, check, load, run)
        return obj  # a class held as a value: copyreg._reconstructor's base, a dict factory


def _value_only(obj: object) -> str | None:
    """Why ``obj`` may be held but not called, or None if that is not its category."""
    if obj is torch.Tensor:
        return "torch.Tensor"
    if isinstance(obj, type) and issubclass(obj, _STORAGE_CLASSES):
        return "a storage class"
    if is_operator(obj):
        return "a torch operator function"
    if is_package_reducer(obj):
        return "a package reducer the importer calls itself"
    fx = sys.modules.get("torch.fx")
    if (
        fx is not None
        and isinstance(obj, type)
        and issubclass(obj, fx.Tracer)
        and obj.__module__.startswith("torch.")
    ):
        # torch.fx's reducer traces the package's own forward with the tracer it names.
        return "a torch.fx tracer class"
    return None
