"""The pickler's record of the globals it wrote is what the exporter resolves dependencies
from, in place of decoding the pickle again: it must name exactly what the bytes name."""

from __future__ import annotations

import collections
import copyreg
import functools
import io

import pytest
import torch
import torch.fx

from torchpack.analysis.pickle_scanner import find_globals
from torchpack.export.pickler import PackagePickler
from torchpack.importer import sys_importer


class Outer:
    class Inner:
        pass


def square(x: torch.Tensor) -> torch.Tensor:
    return x * x


def _pickled(obj: object, protocol: int) -> tuple[bytes, list[tuple[str, str]]]:
    buffer = io.BytesIO()
    pickler = PackagePickler(sys_importer, buffer, protocol=protocol)
    pickler.dump(obj)
    return buffer.getvalue(), list(pickler.globals_written)


@pytest.fixture
def extension_code():
    """``collections.OrderedDict`` registered as a copyreg extension, so it is written as
    EXT1 instead of by name."""
    copyreg.add_extension("collections", "OrderedDict", 240)
    yield
    copyreg.remove_extension("collections", "OrderedDict", 240)


@pytest.mark.parametrize("protocol", [3, 4])
def test_globals_written_are_the_globals_in_the_bytes(protocol: int, extension_code) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.LayerNorm(3))
    traced = torch.fx.symbolic_trace(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh()))
    obj = {
        "model": model,
        "traced": traced,
        # A nested class: below protocol 4 written as getattr(Outer, "Inner").
        "nested": [Outer.Inner, Outer.Inner()],
        "functions": [square, len, functools.partial(square), type(None)],
        "dtypes": (torch.float32, torch.int8, model.state_dict()),
        "sets": ({1, 2}, frozenset({"a"})),
        "ordered": collections.OrderedDict(a=1),
        "again": [square, Outer.Inner],
    }
    data, written = _pickled(obj, protocol)
    assert written == find_globals(data)
    assert ("torch.nn.modules.linear", "Linear") in written
    assert ("collections", "OrderedDict") in written
    nested = ("test_package_pickler", "Outer.Inner" if protocol >= 4 else "Outer")
    assert nested in written
