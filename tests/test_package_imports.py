"""Imports that packaged code makes outside the ``import`` statement: modules that replace
themselves in ``sys.modules``, ``importlib.import_module`` with real or mangled names, and a
package's file run by path under its real name (transformers' ``direct_transformers_import``)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
from conftest import refuse_imports, run_python

from torchpack import PackageExporter, PackageImporter

# A small copy of transformers' _LazyModule: the package's __init__ replaces itself with it,
# and it imports submodules on first use through importlib, relative to its mangled name.
LAZY = {
    "lazylib/__init__.py": """
        import importlib
        import os
        import sys
        import types


        class LazyModule(types.ModuleType):
            def __init__(self, name, file, spec):
                super().__init__(name)
                self.__file__ = file
                self.__spec__ = spec
                self.__path__ = [os.path.dirname(file)]

            def __getattr__(self, attribute):
                if attribute.startswith("__"):
                    raise AttributeError(attribute)
                module = importlib.import_module("." + attribute, self.__name__)
                setattr(self, attribute, module)
                return module


        sys.modules[__name__] = LazyModule(__name__, __file__, __spec__)
    """,
    "lazylib/layers.py": """
        import torch


        class Scale(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = torch.nn.Parameter(torch.arange(4.0))

            def forward(self, x):
                return x * self.weight
    """,
    "lazylib/auto.py": """
        import importlib


        def layer_class(name):
            # transformers' auto classes: a real name, looked up at run time.
            return getattr(importlib.import_module(".layers", "lazylib"), name)
    """,
    "lazyuser.py": """
        import lazylib


        def build():
            return lazylib.layers.Scale()


        def build_by_name():
            return lazylib.auto.layer_class("Scale")()
    """,
}


@pytest.fixture
def lazy_package(tmp_path: Path, source_tree) -> Path:
    source_tree(LAZY)
    import lazyuser

    target = tmp_path / "lazy.pt"
    with PackageExporter(target) as exporter:
        exporter.intern(["lazylib.**", "lazyuser"])
        exporter.extern("sys")
        exporter.save_module("lazyuser")
        exporter.save_module("lazylib.auto")
        exporter.save_pickle("model", "model.pkl", lazyuser.build())
    return target


def test_module_that_replaces_itself_in_sys_modules_is_honoured(lazy_package: Path) -> None:
    code = (
        refuse_imports("lazylib", "lazyuser")
        + f"""
import sys
import torch
from torchpack import PackageImporter

importer = PackageImporter({str(lazy_package)!r})
lazylib = importer.import_module("lazylib")
# What the package's __init__ put in sys.modules, as Python's import gives it.
assert type(lazylib).__name__ == "LazyModule", type(lazylib)
assert sys.modules[lazylib.__name__] is lazylib
model = importer.load_pickle("model", "model.pkl")
assert type(model).__module__ == importer.id() + ".lazylib.layers"
user = importer.import_module("lazyuser")
# Submodules on first use, through importlib with the mangled name, and with a real name.
assert type(user.build()) is type(model)
assert type(user.build_by_name()) is type(model)
assert torch.equal(model(torch.ones(4)), torch.arange(4.0))
assert not [name for name in sys.modules if name.startswith("lazy")]
print("ok")
"""
    )
    assert run_python(code).stdout.strip() == "ok"


def test_import_machinery_serves_mangled_names_to_their_own_package(
    tmp_path: Path, source_tree
) -> None:
    source_tree(
        {
            "machinery.py": """
                import importlib


                def import_by_name(name):
                    # Python's own import machinery, as code that does not use importlib's
                    # import_module reaches it.
                    return importlib._bootstrap._gcd_import(name)
            """,
            "target/__init__.py": "",
            "target/deep.py": "VALUE = 1\n",
        }
    )
    archive = tmp_path / "machinery.pt"
    with PackageExporter(archive) as exporter:
        exporter.intern(["machinery", "target.**"])
        exporter.save_module("machinery")
        exporter.save_module("target.deep")
    first, second = PackageImporter(archive), PackageImporter(archive)
    machinery = first.import_module("machinery")
    deep = machinery.import_by_name(f"{first.id()}.target.deep")
    assert deep is first.import_module("target.deep")
    # Not another package's names, nor names of packages that no longer exist.
    with pytest.raises(ModuleNotFoundError):
        machinery.import_by_name(f"{second.id()}.target.deep")
    with pytest.raises(ModuleNotFoundError):
        machinery.import_by_name("<torch_package_999999>.target.deep")
    # Nor code outside any package (torch.package's exporter probes names this way).
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"{second.id()}.target.deep")


def test_packaged_importlib_falls_back_to_the_environment(tmp_path: Path, source_tree) -> None:
    # Modules the package does not declare still come from the environment, as before.
    source_tree(
        {
            "dynamic.py": """
                import importlib


                def load(name):
                    return importlib.import_module(name)
            """
        }
    )
    target = tmp_path / "dynamic.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("dynamic")
        exporter.save_module("dynamic")
    dynamic = PackageImporter(target).import_module("dynamic")
    assert dynamic.load("json") is sys.modules["json"]
    assert dynamic.load("dynamic") is dynamic
    assert dynamic.importlib.util is importlib.util


SELF_IMPORT = {
    "selfload/__init__.py": """
        from . import part

        TOTAL = part.VALUE + 1
    """,
    "selfload/part.py": "VALUE = 41\n",
    "selfload/loader.py": """
        import importlib.util
        import os

        import selfload


        def load_by_path():
            # transformers' direct_transformers_import: its own __init__ under its real name.
            folder = os.path.dirname(__file__)
            spec = importlib.util.spec_from_file_location(
                "selfload", os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
            )
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module


        MODULE = load_by_path()
    """,
}


def test_package_file_run_under_its_real_name_imports_from_the_package(
    tmp_path: Path, source_tree
) -> None:
    source_tree(SELF_IMPORT)
    target = tmp_path / "selfload.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("selfload.**")
        exporter.save_module("selfload.loader")
    code = (
        refuse_imports("selfload")
        + f"""
import sys
from torchpack import PackageImporter

importer = PackageImporter({str(target)!r}, cache_dir=sys.argv[1])
loader = importer.import_module("selfload.loader")
assert loader.MODULE.TOTAL == 42
assert loader.MODULE.part is importer.import_module("selfload.part")
# The real names it needed while it ran are the environment's again.
assert not [name for name in sys.modules if name.startswith("selfload")], sys.modules.keys()
print("ok")
"""
    )
    assert run_python(code, args=(str(tmp_path / "cache"),)).stdout.strip() == "ok"


def test_importers_of_one_archive_stay_isolated_through_importlib(lazy_package: Path) -> None:
    first, second = PackageImporter(lazy_package), PackageImporter(lazy_package)
    one = first.import_module("lazyuser").build()
    two = second.import_module("lazyuser").build_by_name()
    assert type(one) is not type(two)
    assert type(one).__module__.startswith(first.id())
    assert type(two).__module__.startswith(second.id())
    assert torch.equal(one.weight, two.weight)
