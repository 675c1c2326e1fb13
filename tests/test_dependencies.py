"""Dependency resolution: from source imports, from pickles, and on a big real package (sympy)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from conftest import records_of, run_python

from torchpack import PackageExporter, PackageImporter

DEP_TREE = {
    "dep/__init__.py": "def func():\n    return 'func'\n",
    "dep/b.py": "VALUE = 'b'\n",
    "host/__init__.py": "",
    "host/p.py": "def y():\n    return 'y'\n",
    "host/sub/__init__.py": "",
    "host/sub/x.py": "X = 'x'\n",
}

# (consumer source, modules it must pull in, unrelated modules it must not pull in, its RESULT).
# Whether `import dep.b` also packages dep/__init__.py is left open here (Python runs it);
# test_from_package_import_submodule_needs_only_the_submodule pins the no-pattern case.
IMPORT_FORMS = {
    "import a.b": ("import dep.b\nRESULT = dep.b.VALUE\n", {"dep.b"}, {"host.p"}, "b"),
    "import a.b as c": ("import dep.b as c\nRESULT = c.VALUE\n", {"dep.b"}, {"host.p"}, "b"),
    "from a import submodule": (
        "from dep import b\nRESULT = b.VALUE\n",
        {"dep.b"},
        {"host.p"},
        "b",
    ),
    "from a import func": ("from dep import func\nRESULT = func()\n", {"dep"}, {"dep.b"}, "func"),
    "from . import x": ("from . import x\nRESULT = x.X\n", {"host.sub.x"}, {"host.p"}, "x"),
    "from ..p import y": ("from ..p import y\nRESULT = y()\n", {"host.p"}, {"host.sub.x"}, "y"),
    "__import__ literal": (
        "m = __import__('dep.b')\nRESULT = m.b.VALUE\n",
        {"dep", "dep.b"},
        set(),
        "b",
    ),
    "importlib.import_module literal": (
        "import importlib\nRESULT = importlib.import_module('dep.b').VALUE\n",
        {"dep.b"},
        {"host.p"},
        "b",
    ),
    "import inside function": (
        "def get():\n    from dep import b\n    return b.VALUE\nRESULT = get()\n",
        {"dep.b"},
        {"host.p"},
        "b",
    ),
}


def with_parents(names: set[str]) -> set[str]:
    parts = (name.split(".") for name in names)
    return {".".join(p[:i]) for p in parts for i in range(1, len(p) + 1)}


def has_module(importer: PackageImporter, module: str) -> bool:
    path = module.replace(".", "/")
    structure = importer.file_structure()
    return structure.has_file(f"{path}.py") or structure.has_file(f"{path}/__init__.py")


# -- from source ----------------------------------------------------------------------------


@pytest.mark.parametrize("form", list(IMPORT_FORMS))
def test_import_form_interned(tmp_path: Path, source_tree, form: str) -> None:
    source, needed, not_needed, result = IMPORT_FORMS[form]
    source_tree({**DEP_TREE, "host/sub/m.py": source})
    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.intern(["dep.**", "host.**"])
        exporter.save_module("host.sub.m")

    importer = PackageImporter(target)
    for name in needed:
        assert has_module(importer, name), f"{form}: {name} missing"
        assert name not in importer.extern_modules
    for name in not_needed:
        assert not has_module(importer, name), f"{form}: {name} should not be packaged"
    interned = set(exporter.interned_modules())
    assert needed | {"host.sub.m"} <= interned
    # Nothing beyond what was imported, and at most the packages that contain it.
    assert interned <= with_parents(needed | {"host.sub.m"})
    module = importer.import_module("host.sub.m")
    assert module.RESULT == result
    assert module.__name__.startswith("<torch_package_")


@pytest.mark.parametrize("form", list(IMPORT_FORMS))
def test_import_form_externed(tmp_path: Path, source_tree, form: str) -> None:
    source, needed, not_needed, result = IMPORT_FORMS[form]
    source_tree({**DEP_TREE, "host/sub/m.py": source})
    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.extern(["dep.**", "host.**"])
        exporter.save_module("host.sub.m")

    importer = PackageImporter(target)
    externs = set(importer.extern_modules)
    assert needed <= externs, form
    assert not (not_needed & externs), form
    assert records_of(target) & {"dep/__init__.py", "dep/b.py", "host/p.py"} == set()
    assert importer.import_module("host.sub.m").RESULT == result


def test_from_package_import_submodule_needs_only_the_submodule(
    tmp_path: Path, source_tree
) -> None:
    source_tree({**DEP_TREE, "consumer.py": "from dep import b\nRESULT = b.VALUE\n"})
    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("dep.b")  # nothing at all for `dep` itself
        exporter.save_module("consumer")

    records = {r for r in records_of(target) if r.endswith(".py")}
    assert records == {"consumer.py", "dep/b.py"}
    importer = PackageImporter(target)
    assert "dep" not in importer.extern_modules
    assert importer.import_module("consumer").RESULT == "b"

    # torch.package writes the same modules for the same export.
    from torch.package import PackageExporter as TorchExporter

    oracle = tmp_path / "oracle.pt"
    with TorchExporter(oracle) as torch_exporter:
        torch_exporter.intern("dep.b")
        torch_exporter.save_module("consumer")
    assert {r for r in records_of(oracle) if r.endswith(".py")} == records


REGISTRY_TREE = {
    "plugins/__init__.py": "",
    # Loads its submodules for their side effects, as mpmath.functions does.
    "plugins/ops/__init__.py": "from . import table, doubling\n",
    "plugins/ops/table.py": (
        "OPS = {}\n\n\nclass Lookup:\n    def apply(self, name, x):\n        return OPS[name](x)\n"
    ),
    "plugins/ops/doubling.py": "from .table import OPS\n\nOPS['double'] = lambda x: 2 * x\n",
    # Code of its own (like torchvision's __init__): only a placeholder is needed.
    "plugins/config/__init__.py": "import sys\nLOADED = True\n",
    "plugins/config/values.py": "class Limit:\n    def __init__(self, n):\n        self.n = n\n",
}


def test_parent_that_loads_its_submodules_is_interned(tmp_path: Path, source_tree) -> None:
    source_tree(REGISTRY_TREE)
    from plugins.ops.table import Lookup

    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("plugins.**")
        exporter.save_pickle("model", "lookup.pkl", Lookup())
    assert exporter.interned_modules() == [
        "plugins.ops",
        "plugins.ops.doubling",
        "plugins.ops.table",
    ]
    lookup = PackageImporter(target).load_pickle("model", "lookup.pkl")
    assert lookup.apply("double", 21) == 42

    # torch.package leaves a placeholder there: the registration never runs.
    from torch.package import PackageExporter as TorchExporter
    from torch.package import PackageImporter as TorchImporter

    oracle = tmp_path / "oracle.pt"
    with TorchExporter(str(oracle)) as torch_exporter:
        torch_exporter.intern("plugins.**")
        torch_exporter.save_pickle("model", "lookup.pkl", Lookup())
    with pytest.raises(KeyError):
        TorchImporter(str(oracle)).load_pickle("model", "lookup.pkl").apply("double", 21)


def test_parent_with_code_of_its_own_is_a_placeholder(tmp_path: Path, source_tree) -> None:
    source_tree(REGISTRY_TREE)
    from plugins.config.values import Limit

    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("plugins.**")
        exporter.save_pickle("model", "limit.pkl", Limit(3))
    assert exporter.interned_modules() == ["plugins.config.values"]
    importer = PackageImporter(target)
    assert importer.load_pickle("model", "limit.pkl").n == 3
    assert not hasattr(importer.import_module("plugins.config"), "LOADED")


def test_transitive_imports_are_followed(tmp_path: Path, source_tree) -> None:
    source_tree(
        {
            "chain1.py": "import chain2\nRESULT = chain2.RESULT\n",
            "chain2.py": "from chain3 import VALUE as RESULT\n",
            "chain3.py": "import chain4\nVALUE = chain4.VALUE\n",
            "chain4.py": "import json\nVALUE = json.dumps([4])\n",
            "chain_unused.py": "",
        }
    )
    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("chain*")
        exporter.save_module("chain1")
    assert {"chain1.py", "chain2.py", "chain3.py", "chain4.py"} <= records_of(target)
    assert "chain_unused.py" not in records_of(target)
    importer = PackageImporter(target)
    assert importer.import_module("chain1").RESULT == "[4]"
    assert "json" in importer.extern_modules


def test_circular_imports_are_resolved(tmp_path: Path, source_tree) -> None:
    source_tree(
        {
            "circ/__init__.py": "",
            "circ/one.py": "from circ import two\n\ndef f():\n    return two.g() + 1\n",
            "circ/two.py": "from circ import one\n\ndef g():\n    return 41\n",
        }
    )
    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("circ.**")
        exporter.save_module("circ.one")
    assert {"circ/one.py", "circ/two.py"} <= records_of(target)
    assert PackageImporter(target).import_module("circ.one").f() == 42


def test_optional_import_of_missing_module_is_skipped(tmp_path: Path, source_tree) -> None:
    source_tree(
        {
            "optional_user.py": (
                "try:\n"
                "    import not_installed_anywhere_xyz\n"
                "except ImportError:\n"
                "    not_installed_anywhere_xyz = None\n"
                "try:\n"
                "    from also_missing_xyz.sub import thing\n"
                "except ImportError:\n"
                "    thing = None\n"
                "RESULT = (not_installed_anywhere_xyz, thing)\n"
            )
        }
    )
    target = tmp_path / "out.pt"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with PackageExporter(target) as exporter:
            exporter.save_module("optional_user")
    assert [str(w.message) for w in caught] == []
    importer = PackageImporter(target)
    assert not any("missing" in m or "not_installed" in m for m in importer.extern_modules)
    assert not any("missing" in r or "not_installed" in r for r in records_of(target))
    assert importer.import_module("optional_user").RESULT == (None, None)


def test_dynamic_import_warns_but_does_not_crash(tmp_path: Path, source_tree) -> None:
    source_tree(
        {"dyn_user.py": ("name = 'json'\nmod = __import__(name)\nRESULT = mod.dumps({'a': 1})\n")}
    )
    target = tmp_path / "out.pt"
    with pytest.warns(UserWarning, match="dyn_user") as record:
        with PackageExporter(target) as exporter:
            exporter.save_module("dyn_user")
            # What the warning asks for: name the dynamic import's target explicitly.
            exporter.add_dependency("json")
    assert any("__import__(name)" in str(w.message) for w in record)
    assert target.is_file()
    importer = PackageImporter(target)
    assert "json" in importer.extern_modules
    assert importer.import_module("dyn_user").RESULT == '{"a": 1}'


# -- from pickles ---------------------------------------------------------------------------

OBJ_TREE = {
    "objs/__init__.py": "",
    "objs/m1.py": (
        "class Point:\n"
        "    def __init__(self, x, y):\n"
        "        self.x, self.y = x, y\n"
        "    def __eq__(self, other):\n"
        "        return (self.x, self.y) == (other.x, other.y)\n"
    ),
    "objs/m2.py": "def scale(v):\n    return v * 3\n",
    "objs/m3.py": (
        "class Outer:\n    class Inner:\n        def __init__(self, n):\n            self.n = n\n"
    ),
    "objs/m4.py": (
        "import torch\n\n\n"
        "class Model(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.lin = torch.nn.Linear(2, 2)\n\n"
        "    def forward(self, x):\n"
        "        return self.lin(x)\n"
    ),
    "objs/unused.py": "",
}


def make_objects():
    from objs import m1, m2, m3, m4

    point = m1.Point(1, 2)
    return {
        "point": point,
        "again": point,
        "points": [point, m1.Point(3, 4)],
        "func": m2.scale,
        "inner": m3.Outer.Inner(5),
        "inner_class": m3.Outer.Inner,
        "model": m4.Model(),
        "tensor": torch.arange(6).reshape(2, 3),
    }


@pytest.mark.parametrize("protocol", [3, 4])
def test_pickle_pulls_in_modules_interned(tmp_path: Path, source_tree, protocol: int) -> None:
    source_tree(OBJ_TREE)
    objects = make_objects()
    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("objs.**")
        exporter.save_pickle("data", "objs.pkl", objects, pickle_protocol=protocol)

    records = records_of(target)
    assert {"objs/m1.py", "objs/m2.py", "objs/m3.py", "objs/m4.py"} <= records
    assert "objs/unused.py" not in records
    importer = PackageImporter(target)
    assert not any(m.startswith("objs") for m in importer.extern_modules)

    loaded = importer.load_pickle("data", "objs.pkl")
    assert loaded["point"] is loaded["again"] is loaded["points"][0]
    assert type(loaded["point"]).__module__ == f"{importer.id()}.objs.m1"
    assert (loaded["point"].x, loaded["point"].y) == (1, 2)
    assert loaded["func"](2) == 6
    assert loaded["func"].__module__ == f"{importer.id()}.objs.m2"
    assert type(loaded["inner"]).__qualname__ == "Outer.Inner"
    assert type(loaded["inner"]) is loaded["inner_class"]
    assert loaded["inner"].n == 5
    assert type(loaded["model"]).__module__ == f"{importer.id()}.objs.m4"
    x = torch.randn(3, 2)
    assert torch.equal(loaded["model"](x), objects["model"](x))
    assert torch.equal(loaded["tensor"], objects["tensor"])


@pytest.mark.parametrize("protocol", [3, 4])
def test_pickle_pulls_in_modules_externed(tmp_path: Path, source_tree, protocol: int) -> None:
    source_tree(OBJ_TREE)
    objects = make_objects()
    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.extern("objs.**")
        exporter.save_pickle("data", "objs.pkl", objects, pickle_protocol=protocol)

    importer = PackageImporter(target)
    assert {"objs.m1", "objs.m2", "objs.m3", "objs.m4"} <= set(importer.extern_modules)
    assert "objs.unused" not in importer.extern_modules
    assert not any(r.startswith("objs/") for r in records_of(target))
    loaded = importer.load_pickle("data", "objs.pkl")
    from objs import m1, m2, m3

    assert type(loaded["point"]) is m1.Point
    assert loaded["func"] is m2.scale
    assert loaded["inner_class"] is m3.Outer.Inner
    assert loaded["points"] == objects["points"]


def test_pickle_without_dependencies_does_not_scan(tmp_path: Path, source_tree) -> None:
    source_tree(OBJ_TREE)
    from objs import m1

    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        # No pattern matches objs.m1: with dependencies=False that is not an error.
        exporter.save_pickle("data", "p.pkl", m1.Point(0, 0), dependencies=False)
    assert not any(r.startswith("objs/") for r in records_of(target))
    assert "objs.m1" not in PackageImporter(target).extern_modules


def test_pickle_dependencies_are_followed_into_source(tmp_path: Path, source_tree) -> None:
    source_tree(
        {
            "wrap/__init__.py": "",
            "wrap/holder.py": "from wrap.helper import HELP\n\n\nclass Holder:\n    pass\n",
            "wrap/helper.py": "import collections\nHELP = collections.OrderedDict(a=1)\n",
        }
    )
    from wrap.holder import Holder

    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("wrap.**")
        exporter.save_pickle("data", "h.pkl", Holder())
    assert {"wrap/holder.py", "wrap/helper.py"} <= records_of(target)
    assert "collections" in PackageImporter(target).extern_modules


# -- sympy: a large, real package -----------------------------------------------------------

SYMPY_EXPORT = """
import json, sys, warnings, zipfile
from torchpack import PackageExporter

limit = sys.getrecursionlimit()
calls = []
real_setrecursionlimit = sys.setrecursionlimit
def spy(n):
    calls.append(n)
    real_setrecursionlimit(n)
sys.setrecursionlimit = spy

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # dynamic imports in sympy's test runner etc.
    with PackageExporter(TARGET) as exporter:
        exporter.intern(["sympy.**", "mpmath.**"])
        # Standard library but not implicitly extern: sympy really uses them.
        exporter.extern(["sys", "io"])
        exporter.mock("**")
        exporter.save_module("sympy")

with zipfile.ZipFile(TARGET) as zf:
    records = [name.split("/", 1)[1] for name in zf.namelist()]
print(json.dumps({
    "limit_before": limit,
    "limit_after": sys.getrecursionlimit(),
    "setrecursionlimit_calls": calls,
    "records": records,
    "mocked": exporter.mocked_modules(),
}))
"""


@pytest.fixture(scope="module")
def sympy_export(tmp_path_factory) -> tuple[Path, dict]:
    target = tmp_path_factory.mktemp("sympy") / "sympy_pkg.pt"
    result = run_python(SYMPY_EXPORT.replace("TARGET", repr(str(target))), timeout=240)
    return target, json.loads(result.stdout.strip().splitlines()[-1])


def test_sympy_exports_without_recursion_tricks(sympy_export) -> None:
    target, report = sympy_export
    assert target.is_file()
    assert report["setrecursionlimit_calls"] == []
    assert report["limit_after"] == report["limit_before"]
    records = set(report["records"])
    # Generated code nested deeper than the recursion limit allows a recursive AST walk.
    assert "sympy/polys/numberfields/resolvent_lookup.py" in records
    assert "sympy/__init__.py" in records
    assert "mpmath/__init__.py" in records
    assert "sympy/core/symbol.py" in records
    assert "_mock.py" in records
    assert "numpy" in report["mocked"]


def test_sympy_loads_from_the_package_alone(sympy_export) -> None:
    target, _ = sympy_export
    result = run_python(
        f"""
        import sys
        # The real sympy and mpmath cannot be imported: everything must come from the package.
        sys.modules["sympy"] = None
        sys.modules["mpmath"] = None
        from torchpack import PackageImporter

        importer = PackageImporter({str(target)!r})
        sp = importer.import_module("sympy")
        x = sp.Symbol("x")
        print(x + 1)
        print(sp.expand((x + 1) ** 2))
        print(sp.__name__.startswith("<torch_package_"), sys.modules["sympy"] is None)
        """,
        timeout=240,
    )
    assert result.stdout.splitlines() == ["x + 1", "x**2 + 2*x + 1", "True True"]


def test_torch_package_oracle_fails_on_sympy(tmp_path: Path) -> None:
    """torch.package's recursive import visitor cannot get through sympy's generated code.

    torch.package 2.13 reports it as a PackagingError ("Dependency resolution failed") whose
    context is the RecursionError message; a bare RecursionError would be the same failure.
    """
    target = tmp_path / "oracle.pt"
    result = run_python(
        f"""
        import sys
        from torch.package import PackageExporter
        try:
            with PackageExporter({str(target)!r}) as exporter:
                exporter.intern(["sympy.**", "mpmath.**"])
                exporter.extern(["sys", "io"])
                exporter.mock("**")
                exporter.save_module("sympy")
        except RecursionError as err:
            print("RecursionError:", err)
        except Exception as err:
            print(type(err).__name__ + ":", err)
        else:
            print("SUCCEEDED")
        """,
        timeout=240,
    )
    out = result.stdout
    if "SUCCEEDED" in out:
        # torch.package got through sympy after all (a newer torch may do so): nothing to
        # compare against then.
        assert target.is_file()
        return
    assert "maximum recursion depth" in out
    assert out.startswith(("RecursionError:", "PackagingError:"))
    if out.startswith("PackagingError:"):
        assert "sympy.polys.numberfields.resolvent_lookup" in out
