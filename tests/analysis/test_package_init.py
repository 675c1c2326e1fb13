"""Recognising a package ``__init__`` that only loads its own submodules."""

import ast

import pytest

from torchpack.analysis.import_scanner import find_imports
from torchpack.analysis.package_init import loads_submodules_only


@pytest.mark.parametrize(
    "source",
    [
        "from . import a\n",
        '"""Docstring."""\n# comment\nfrom . import a, b\nfrom . import c\n',
        "import pkg.a\nimport pkg.b.c\n",
    ],
)
def test_submodule_loaders(source: str) -> None:
    assert loads_submodules_only(ast.parse(source), "pkg")


@pytest.mark.parametrize(
    "source",
    [
        "",  # an empty __init__ loads nothing
        '"""Only a docstring."""\n',
        "NAME = 'x'\nfrom . import a\n",
        "from .a import thing\n",  # a name from a submodule: an API, not a loader
        "from .. import sibling\n",
        "import os\nfrom . import a\n",
        "import pkg.a as a\n",
        "import pkgextra.a\n",
        "from . import a\ndef f():\n    pass\n",
        "try:\n    from . import a\nexcept ImportError:\n    pass\n",
    ],
)
def test_anything_else_is_not(source: str) -> None:
    assert not loads_submodules_only(ast.parse(source), "pkg")


def test_the_scan_reports_it_for_packages_only() -> None:
    source = b"from . import a\n"
    assert find_imports(source, "pkg", True).loads_submodules_only
    assert not find_imports(source, "pkg.mod", False).loads_submodules_only


def test_mpmath_functions_is_a_submodule_loader() -> None:
    import mpmath.functions

    with open(mpmath.functions.__file__, "rb") as f:
        scan = find_imports(f.read(), "mpmath.functions", True)
    assert scan.loads_submodules_only
