"""torch.package's module paths exist in torchpack with the same names, so code written for
torch.package (and torch's own internals) can import them from torchpack unchanged."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch.package
from conftest import run_cli, run_python

TORCH_MODULES = sorted(
    info.name.removeprefix("torch.package")
    for info in pkgutil.walk_packages(torch.package.__path__, "torch.package.")
)
# Classes and functions torch.package defines as implementation details, with no counterpart.
NOT_MIRRORED = {
    "._mock": {"install_method"},  # how torch builds its MockedObject
}
# Private names that torch's code or its tests import.
PRIVATE_NAMES = {
    ".package_exporter": {"_gate_torchscript_serialization"},
    "._mangling": {"_mangle_index"},
    "._importlib": {"_resolve_name", "_calc___package__", "_normalize_line_endings"},
}


def _public_definitions(module_name: str) -> set[str]:
    module = importlib.import_module(module_name)
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module_name
    }


def test_torch_package_has_modules_to_compare() -> None:
    assert {".package_exporter", ".package_importer", "._mangling", ".analyze"} <= set(
        TORCH_MODULES
    )


@pytest.mark.parametrize("subpath", TORCH_MODULES)
def test_every_torch_package_module_exists_with_its_names(subpath: str) -> None:
    ours = importlib.import_module(f"torchpack{subpath}")
    expected = _public_definitions(f"torch.package{subpath}") - NOT_MIRRORED.get(subpath, set())
    expected |= PRIVATE_NAMES.get(subpath, set())
    missing = sorted(name for name in expected if not hasattr(ours, name))
    assert not missing, f"torchpack{subpath} lacks {missing}"


def test_top_level_names_match_torch_package() -> None:
    import torchpack

    missing = [
        name
        for name in dir(torch.package)
        if not name.startswith("_")
        and not inspect.ismodule(getattr(torch.package, name))
        and not hasattr(torchpack, name)
    ]
    assert not missing


def test_analyze_functions_are_reachable_both_ways() -> None:
    import torchpack.analyze
    from torchpack.analyze.trace_dependencies import trace_dependencies

    assert torchpack.analyze.trace_dependencies is trace_dependencies
    assert torchpack.analyze.is_from_package.is_from_package(torchpack) is False


def test_importing_dunder_main_does_not_run_the_command_line() -> None:
    result = run_python(
        """
        import pkgutil, torchpack, torchpack.__main__
        names = [m.name for m in pkgutil.walk_packages(torchpack.__path__, "torchpack.")]
        print("still running", len(names) > 10)
        """
    )
    assert result.stdout.strip() == "still running True"


def test_python_dash_m_runs_the_command_line() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "usage: torchpack" in result.stdout
