"""Imports read from compiled code agree with the syntax tree, and cached bytecode is
used only when it is valid for the exact source."""

import importlib.util
import marshal
import os
import py_compile
from pathlib import Path

import pytest

from torchpack.analysis import import_scanner
from torchpack.analysis.bytecode_imports import import_statements, module_code
from torchpack.analysis.import_scanner import ImportRef, find_imports


def module_name_of(path: Path, root: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def both_ways(source: bytes, name: str, is_package: bool, filename: str):
    """(refs from compiled code or None, refs from the syntax tree), each in source order."""
    package = name if is_package else name.rpartition(".")[0]

    def refs(found):
        return None if found is None else [r for *_, rs in sorted(found) for r in rs]

    scanner = import_scanner._Scanner(name, package, filename)
    compiled = import_scanner._compiled_imports(source, filename, scanner)
    text = import_scanner._decode(source, name, filename)
    tree = import_scanner._parse(text, name, filename)
    walked = import_scanner._tree_imports(
        tree, text, import_scanner._Scanner(name, package, filename)
    )
    return refs(compiled), refs(walked)


@pytest.mark.parametrize("library", ["mpmath", "json", "email", "importlib"])
def test_compiled_code_agrees_with_the_syntax_tree(library):
    spec = importlib.util.find_spec(library)
    root = Path(spec.origin).parent
    compared = 0
    for path in sorted(root.rglob("*.py")):
        name, is_package = module_name_of(path, root.parent)
        compiled, walked = both_ways(path.read_bytes(), name, is_package, str(path))
        if compiled is not None:
            compared += 1
            assert list(dict.fromkeys(compiled)) == list(dict.fromkeys(walked)), path
    assert compared >= 5


def test_modules_that_import_by_calling_take_the_syntax_tree():
    source = b"import a\nimport importlib\nimportlib.import_module('b')\n"
    compiled, walked = both_ways(source, "m", False, "m.py")
    assert compiled is None
    assert walked == [ImportRef("a"), ImportRef("importlib"), ImportRef("b")]


def test_long_argument_indices():
    # More than 256 names and constants: the import's arguments need EXTENDED_ARG.
    filler = "".join(f"v{i} = {i}.5\n" for i in range(300))
    source = f"{filler}from .pkg import thing\nimport other.mod as alias\n".encode()
    from_import, plain_import = import_statements(module_code(source, "m.py"))
    assert (from_import.name, from_import.level, from_import.fromlist) == ("pkg", 1, ("thing",))
    assert (plain_import.name, plain_import.fromlist) == ("other.mod", None)
    scan = find_imports(source, "top.m", False, "m.py")
    assert scan.imports == (ImportRef("top.pkg", "thing"), ImportRef("other.mod"))


def test_imports_in_functions_classes_and_try_blocks():
    source = b"""
def f():
    from . import sibling
class C:
    import inside_class
try:
    import optional
except ImportError:
    from fallback import *
"""
    scan = find_imports(source, "pkg.m", False, "m.py")
    assert scan.imports == (
        ImportRef("pkg", "sibling"),
        ImportRef("inside_class"),
        ImportRef("optional"),
        ImportRef("fallback"),
    )


def test_relative_import_beyond_the_top_still_names_the_line():
    with pytest.raises(import_scanner.ImportAnalysisError, match=r"m.py, line 2"):
        find_imports(b"import os\nfrom .. import x\n", "top", False, "m.py")


def test_code_only_the_compiler_rejects_is_still_scanned():
    # ast.parse accepts `return` outside a function; compile does not.
    scan = find_imports(b"import a\nreturn\n", "m", False, "m.py")
    assert scan.imports == (ImportRef("a"),)


def write_module(folder: Path, text: str) -> Path:
    path = folder / "mod.py"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "mode", [py_compile.PycInvalidationMode.TIMESTAMP, py_compile.PycInvalidationMode.CHECKED_HASH]
)
def test_stale_cached_bytecode_is_ignored(tmp_path, mode):
    path = write_module(tmp_path, "import old_dependency\n")
    py_compile.compile(str(path), invalidation_mode=mode, doraise=True)
    path.write_text("import new_dependency, more\n")
    os.utime(path, (1, 1))  # a different mtime even on coarse-grained file systems

    scan = find_imports(path.read_bytes(), "mod", False, str(path))
    assert scan.imports == (ImportRef("new_dependency"), ImportRef("more"))


def test_valid_cached_bytecode_is_what_gets_read(tmp_path):
    # A hash-checked .pyc that is valid for the source but compiled from other code shows
    # that the cache, not the source, was read (as the import system would run it).
    path = write_module(tmp_path, "import from_source\n")
    source = path.read_bytes()
    pyc = Path(importlib.util.cache_from_source(str(path), optimization=""))
    pyc.parent.mkdir(exist_ok=True)
    code = compile("import from_cache\n", str(path), "exec")
    pyc.write_bytes(
        importlib.util.MAGIC_NUMBER
        + (0b11).to_bytes(4, "little")
        + importlib.util.source_hash(source)
        + marshal.dumps(code)
    )
    assert find_imports(source, "mod", False, str(path)).imports == (ImportRef("from_cache"),)
