"""Calls a safely loaded pickle may make, with their arguments checked before the real call runs.

A pickle calls what it names with arguments it chooses: ``bytearray(3 << 30)`` or
``list(range(2**31))`` are a few bytes of pickle and gigabytes of memory. Under ``safe=True``
the constructors of plain values only copy what the pickle itself built (lists, tuples, dicts,
strings, bytes), and every call is charged to a per-load budget of bytes, so that memory stays
bounded by the size of the archive however often a pickle repeats a call.
"""

from __future__ import annotations

import _codecs
import collections
import copyreg
import sys
from collections.abc import Callable
from typing import Any

from ..errors import MalformedArchiveError

# Containers a pickle builds itself (so their size is bounded by the pickle's) and that a
# constructor may copy; ``range`` is lazy and charged by its length.
_CONCRETE = (list, tuple, dict, set, frozenset, str, bytes, bytearray)
_POINTER = 8  # bytes per element of a copied container, for the budget


class SafeLoad:
    """One ``load_pickle`` under ``safe=True``: where errors point, and the memory budget."""

    def __init__(self, archive: str, record: str, max_bytes: int) -> None:
        self.archive = archive
        self.record = record
        self.max_bytes = max_bytes
        self.charged = 0

    def refuse(self, problem: str) -> MalformedArchiveError:
        return MalformedArchiveError(self.archive, problem, self.record)

    def charge(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` that ``what`` is about to allocate; refuse past the budget."""
        self.charged += nbytes
        if self.charged > self.max_bytes:
            raise self.refuse(
                f"rebuilding the pickle's objects would allocate more than {self.max_bytes} "
                f"bytes ({what} asks for {nbytes}); if you trust the package, raise "
                "PackageImporter(..., max_rebuild_bytes=...)"
            )


Check = Callable[..., None]


class CheckedCall:
    """Stands in for ``real`` in a safely loaded pickle: checks the arguments, then calls it
    (or ``run``, which does what ``real`` does with checked building blocks)."""

    __slots__ = ("check", "load", "name", "real", "run")

    def __init__(
        self,
        name: str,
        real: Callable[..., Any],
        check: Check,
        load: SafeLoad,
        run: Callable[..., Any] | None = None,
    ) -> None:
        self.name = name
        self.real = real
        self.check = check
        self.load = load
        self.run = run or real

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.check(self.load, self.name, *args, **kwargs)
        return self.run(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<checked {self.name}>"


def real_object(obj: Any) -> Any:
    """What a :class:`CheckedCall` stands in for (a class passed on as a value), else ``obj``."""
    return obj.real if type(obj) is CheckedCall else obj


def _no_keywords(load: SafeLoad, name: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise load.refuse(f"the pickle calls {name} with keyword arguments {sorted(kwargs)}")


def charge_copy(load: SafeLoad, name: str, value: object) -> None:
    """Refuse anything but a container the pickle built; charge what copying it allocates."""
    if isinstance(value, range):
        # list(range(...)) makes one int object per element.
        load.charge(len(value) * (_POINTER + sys.getsizeof(len(value))), f"{name}(range)")
    elif isinstance(value, _CONCRETE):
        load.charge(len(value) * _POINTER + sys.getsizeof(value), name)
    else:
        raise load.refuse(
            f"the pickle calls {name} with a {type(value).__name__}; safe loading only lets "
            "constructors copy lists, tuples, dicts, sets, strings and bytes the pickle built"
        )


def _check_container(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    """``list(x)``, ``set(x)``, ``OrderedDict(x)``, ...: at most one container to copy."""
    _no_keywords(load, name, kwargs)
    if len(args) > 1:
        raise load.refuse(f"the pickle calls {name} with {len(args)} arguments")
    if args:
        charge_copy(load, name, args[0])


def _check_bytes(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    """``bytes``/``bytearray``: a size (charged), a container, or a string and its encoding."""
    _no_keywords(load, name, kwargs)
    if not args:
        return
    if len(args) > 3 or (len(args) > 1 and not isinstance(args[0], str)):
        raise load.refuse(f"the pickle calls {name} with {len(args)} arguments")
    value = args[0]
    if type(value) is int:
        if value < 0:
            raise load.refuse(f"the pickle calls {name} with a negative size")
        load.charge(value, f"{name}({value})")
    elif isinstance(value, str):
        if not all(isinstance(arg, str) for arg in args[1:]):
            raise load.refuse(f"the pickle calls {name} with a non-text encoding")
        load.charge(4 * len(value), name)
    else:
        charge_copy(load, name, value)


def _check_deque(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    _no_keywords(load, name, kwargs)
    if len(args) > 2 or (len(args) == 2 and not (args[1] is None or type(args[1]) is int)):
        raise load.refuse(f"the pickle calls {name} with unexpected arguments")
    if args:
        charge_copy(load, name, args[0])


def _check_defaultdict(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    # The factory is called later, on a missing key, by the code that uses the dict; it passed
    # the same checks as every other global the pickle names.
    _no_keywords(load, name, kwargs)
    if len(args) > 2 or (args and args[0] is not None and not callable(args[0])):
        raise load.refuse(f"the pickle calls {name} with unexpected arguments")
    if len(args) == 2:
        charge_copy(load, name, args[1])


def _check_encode(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    """``_codecs.encode(text, "latin1")``: how protocols 0-2 write bytes, and nothing else."""
    _no_keywords(load, name, kwargs)
    if not (len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1")):
        raise load.refuse(
            f"the pickle calls {name} other than as encode(text, 'latin1'), the way pickles "
            "write bytes"
        )
    load.charge(len(args[0]), name)


# Bases copyreg._reconstructor may construct from (Python's own reduce for subclasses of them).
_RECONSTRUCTOR_BASES = frozenset(
    {object, list, dict, set, frozenset, tuple, int, float, complex, str, bytes, bytearray}
)


def _check_reconstructor(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    """``copyreg._reconstructor(cls, base, state)``: ``base.__new__(cls, state)``, then
    ``base.__init__(obj, state)``; ``base`` must be a plain built-in type."""
    _no_keywords(load, name, kwargs)
    if len(args) != 3:
        raise load.refuse(f"the pickle calls {name} with {len(args)} arguments, not 3")
    cls, base, state = real_object(args[0]), real_object(args[1]), args[2]
    if base not in _RECONSTRUCTOR_BASES:
        raise load.refuse(f"the pickle calls {name} with base {base!r}, not a plain built-in type")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise load.refuse(
            f"the pickle calls {name} with {cls!r}, which is not a subclass of {base}"
        )
    if base is object:
        if state is not None:
            raise load.refuse(f"the pickle calls {name} with object and a state")
    elif not isinstance(state, (int, float, complex)):
        charge_copy(load, name, state)


def _reconstruct(cls: type, base: type, state: Any) -> Any:
    return copyreg._reconstructor(real_object(cls), real_object(base), state)  # type: ignore[attr-defined]


# The real callable, how its arguments are checked, and (when the checked call must unwrap
# arguments) what runs instead of the real callable.
CHECKED_BUILTINS: dict[Any, tuple[Check, Callable[..., Any] | None]] = {
    list: (_check_container, None),
    tuple: (_check_container, None),
    set: (_check_container, None),
    frozenset: (_check_container, None),
    dict: (_check_container, None),
    collections.OrderedDict: (_check_container, None),
    collections.Counter: (_check_container, None),
    collections.deque: (_check_deque, None),
    collections.defaultdict: (_check_defaultdict, None),
    bytes: (_check_bytes, None),
    bytearray: (_check_bytes, None),
    copyreg._reconstructor: (_check_reconstructor, _reconstruct),  # type: ignore[attr-defined]
    _codecs.encode: (_check_encode, None),
}

# Builtins a pickle may use freely: constructing one costs at most what its arguments cost.
PLAIN_BUILTINS = frozenset({object, int, float, complex, bool, str, slice, range})
