"""Real models from pip-installed libraries, packaged with the library interned, load in a
fresh process where the library itself cannot be imported, and give bit-identical outputs.

The cases and their patterns are ``examples/real_libraries.py``. transformers and diffusers
are installed by ``scripts/setup.sh``; timm and torchvision only by the torch 2.14.1 run
(``scripts/test_torch214.sh``), where torchvision's compiled operators load.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import AVAILABLE, OFFLINE, refuse_imports, run_python

from examples.real_libraries import CASES

MISSING = [case for case in CASES if case not in AVAILABLE]


@pytest.fixture(scope="module")
def packages(real_library_exports: tuple[Path, str]) -> Path:
    return real_library_exports[0]


@pytest.mark.parametrize(
    ("case", "safe"),
    [(case, safe) for case in AVAILABLE for safe in (False, True)],
)
def test_model_loads_hermetically_with_equal_outputs(packages: Path, case: str, safe: bool) -> None:
    library = CASES[case].library
    archive = packages / f"{case}.pt"
    code = (
        refuse_imports(library)
        + f"""
import sys
from torchpack import PackageImporter
from examples.real_libraries import check

cache = {str(packages / "cache")!r}
importer = PackageImporter({str(archive)!r}, safe={safe}, cache_dir=cache)
assert check(importer, {case!r}), "outputs differ"
# Every module of the library came from the package; none is left under its real name.
leaked = [name for name in sys.modules if name.partition(".")[0] == {library!r}]
assert not leaked, leaked
print("equal")
"""
    )
    assert run_python(code, env=OFFLINE).stdout.strip() == "equal"


@pytest.mark.skipif("torchvision_resnet18" not in AVAILABLE, reason="needs torchvision")
def test_export_names_torchvisions_compiled_operators(
    real_library_exports: tuple[Path, str],
) -> None:
    # torchvision loads its operators (_C_stable.so in 0.29) from beside its own file: missing
    # in the package (resnet does not need them), and the export says which extern helps.
    stderr = real_library_exports[1]
    assert "torchvision._internally_replaced_utils looks for files beside its own" in stderr
    assert "_C_stable.so" in stderr
    assert 'extern("torchvision._internally_replaced_utils")' in stderr


@pytest.mark.skipif(not MISSING, reason="every library is installed")
def test_libraries_that_are_not_installed_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    # timm and torchvision run only on torch 2.14.1 (scripts/test_torch214.sh); say so.
    assert all(CASES[case].library in ("timm", "torchvision") for case in MISSING), MISSING
