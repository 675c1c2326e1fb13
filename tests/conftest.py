"""Shared fixtures: throw-away Python source trees on sys.path, and fresh Python processes."""

from __future__ import annotations

import importlib
import importlib.util
import os
import resource
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from examples.real_libraries import CASES

REPO_ROOT = Path(__file__).resolve().parent.parent
# Real models are built from configs: nothing may be fetched from a hub.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _available(case: str) -> bool:
    library = CASES[case].library
    needs = {library, "torchvision"} if library == "timm" else {library}
    return all(importlib.util.find_spec(name) is not None for name in needs)


# The cases of examples/real_libraries.py whose libraries this venv has.
AVAILABLE = [case for case in CASES if _available(case)]


@pytest.fixture(scope="session")
def real_library_exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Every available real-library case exported once per test run, in one fresh process (each
    library imported once): the folder of packages, and what the exports printed on stderr.
    Shared by the tests that load them and those that look inside them (the CLI's)."""
    folder = tmp_path_factory.mktemp("real_libraries")
    result = run_python(
        "import runpy; runpy.run_module('examples.real_libraries', run_name='__main__')",
        args=(str(folder), *AVAILABLE),
        cwd=REPO_ROOT,
        env=OFFLINE,
        timeout=600,
    )
    return folder, result.stderr


@pytest.fixture
def source_tree(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Path]]:
    """Write ``{"pkg/mod.py": "source"}`` files into a folder that is put on ``sys.path``.

    Modules imported from it are dropped from ``sys.modules`` afterwards, so every test
    can reuse names like ``pkg`` with different contents.
    """
    root = tmp_path / "src"
    root.mkdir()
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()

    def write(files: dict[str, str]) -> Path:
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        importlib.invalidate_caches()
        return root

    yield write

    sys.path.remove(str(root))
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        try:
            paths = [str(p) for p in getattr(module, "__path__", [])]
        except Exception:  # torch.classes has a __path__ that is not a list of folders
            paths = []
        if str(origin).startswith(str(root)) or any(str(p).startswith(str(root)) for p in paths):
            del sys.modules[name]


def _limit_memory(limit_mib: int | None) -> Callable[[], None] | None:
    """For subprocesses that read hostile input: a blow-up fails them, not the test run."""
    if limit_mib is None:
        return None

    def limit() -> None:
        size = limit_mib << 20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    return limit


def run_python(
    code: str | Path,
    *,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    extra_path: list[Path] | None = None,
    timeout: float = 300,
    args: tuple[str, ...] = (),
    memory_limit_mib: int | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (or the script at a ``Path``, with ``args``) in a fresh interpreter (the
    test's own), failing loudly on error unless ``check=False``; ``memory_limit_mib`` caps its
    address space."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    python_path = [str(REPO_ROOT), *(str(p) for p in extra_path or [])]
    full_env["PYTHONPATH"] = os.pathsep.join(python_path)
    program = [str(code)] if isinstance(code, Path) else ["-c", textwrap.dedent(code)]
    result = subprocess.run(
        [sys.executable, *program, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit_memory(memory_limit_mib),
    )
    if check:
        assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    return result


def run_cli(
    *args: str, timeout: float = 120, memory_limit_mib: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m torchpack ARGS`` in a fresh interpreter; the caller checks the outcome."""
    return subprocess.run(
        [sys.executable, "-m", "torchpack", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        preexec_fn=_limit_memory(memory_limit_mib),
    )


def records_of(archive: Path) -> set[str]:
    """Record names of a package archive, without its top-level folder."""
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert len(tops) == 1, f"archive should have one top-level folder, has {tops}"
    return {name.split("/", 1)[1] for name in names}


def read_record(archive: Path, record: str) -> bytes:
    """The bytes of ``record`` (named without the archive's top-level folder)."""
    with zipfile.ZipFile(archive) as zf:
        (name,) = [n for n in zf.namelist() if n.split("/", 1)[1] == record]
        return zf.read(name)


def read_text_record(archive: Path, record: str) -> str:
    return read_record(archive, record).decode("utf-8")


@pytest.fixture
def parse_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the modules whose source is scanned for imports during the test.

    Counted where analyses are made, whether the scanner reads compiled code or parses.
    """
    from torchpack.analysis import module_analysis

    calls: list[str] = []
    real_find_imports = module_analysis.find_imports

    def counting_find_imports(source: bytes, module_name: str, *args, **kwargs) -> object:
        calls.append(module_name)
        return real_find_imports(source, module_name, *args, **kwargs)

    monkeypatch.setattr(module_analysis, "find_imports", counting_find_imports)
    return calls


def refuse_imports(*top_level_names: str) -> str:
    """Python code that makes the real ``top_level_names`` unimportable in the process that
    runs it (a ``sys.meta_path`` finder refusing them), so that a package proves it carries
    its own copy. Modules already imported are dropped first."""
    return textwrap.dedent(
        f"""
        import sys as _sys

        class _RefuseImports:
            names = {set(top_level_names)!r}

            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in self.names:
                    raise ImportError(f"{{name}} must come from the package, not from sys.path")
                return None

        for _name in list(_sys.modules):
            if _name.partition(".")[0] in _RefuseImports.names:
                del _sys.modules[_name]
        _sys.meta_path.insert(0, _RefuseImports())
        """
    )
