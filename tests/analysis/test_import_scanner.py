import importlib.util
import re
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from torchpack.analysis.import_scanner import (
    ImportAnalysisError,
    ImportRef,
    ImportScan,
    find_imports,
)


def scan(src: str, module: str = "p.q.m", is_package: bool = False) -> ImportScan:
    return find_imports(textwrap.dedent(src), module, is_package, "m.py")


def refs(src: str, module: str = "p.q.m", is_package: bool = False) -> list[tuple[str, str | None]]:
    result = scan(src, module, is_package)
    assert result.warnings == ()
    return [(r.module, r.name) for r in result.imports]


# --- import statements -------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("import a", [("a", None)]),
        ("import a.b", [("a.b", None)]),
        ("import a.b as c, d", [("a.b", None), ("d", None)]),
        ("from a import b", [("a", "b")]),
        ("from a.b import c as d, e", [("a.b", "c"), ("a.b", "e")]),
        ("from a import *", [("a", None)]),
        ("from a import (b,\n c)", [("a", "b"), ("a", "c")]),
    ],
)
def test_import_statements(src, expected):
    assert refs(src) == expected


def test_result_types():
    result = scan("import a\nfrom b import c")
    assert result.imports == (ImportRef("a", None), ImportRef("b", "c"))
    assert isinstance(result.imports, tuple) and isinstance(result.warnings, tuple)
    with pytest.raises(AttributeError):
        result.imports[0].module = "x"  # frozen


@pytest.mark.parametrize(
    ("src", "module", "is_package", "expected"),
    [
        ("from . import x", "p.q.m", False, [("p.q", "x")]),
        ("from .. import y", "p.q.m", False, [("p", "y")]),
        ("from ..r import z", "p.q.m", False, [("p.r", "z")]),
        ("from .s import *", "p.q.m", False, [("p.q.s", None)]),
        ("from .s.t import u", "p.q.m", False, [("p.q.s.t", "u")]),
        # A package's own __init__ is the anchor for its relative imports.
        ("from . import x", "p.q", True, [("p.q", "x")]),
        ("from .. import x", "p.q", True, [("p", "x")]),
        ("from .sub import x", "p", True, [("p.sub", "x")]),
    ],
)
def test_relative_imports(src, module, is_package, expected):
    assert refs(src, module, is_package) == expected


@pytest.mark.parametrize(
    ("src", "module", "is_package"),
    [
        ("from ... import x", "p.q.m", False),
        ("from ...r import x", "p.q.m", False),
        ("from ... import x", "p.q", True),
        ("from .. import x", "p", True),
        ("from . import x", "toplevel", False),  # not inside any package
    ],
)
def test_relative_import_beyond_top_level(src, module, is_package):
    with pytest.raises(
        ImportAnalysisError, match="relative import beyond top-level package"
    ) as info:
        find_imports("import ok\n\n" + src, module, is_package, "f.py")
    message = str(info.value)
    assert repr(module) in message and "f.py" in message and "line 3" in message
    assert (
        info.value.lineno == 3
        and info.value.module_name == module
        and info.value.filename == "f.py"
    )


def test_imports_anywhere():
    src = """
    import typing
    if typing.TYPE_CHECKING:
        import tc
    try:
        import fast
    except ImportError:
        import slow
    else:
        import other
    finally:
        import fin
    def f():
        import in_function
        def g():
            from deep import thing
        return lambda: __import__("in_lambda")
    class C:
        import in_class
        async def h(self):
            async with x:
                import in_async
    with ctx:
        import in_with
    while True:
        import in_while
    for _ in []:
        import in_for
    match v:
        case 1:
            import in_match
    values = [__import__("in_comprehension") for _ in range(3)]
    @decorate(__import__("in_decorator"))
    def k(a=__import__("in_default")): ...
    """
    assert [m for m, _ in refs(src)] == [
        "typing",
        "tc",
        "fast",
        "slow",
        "other",
        "fin",
        "in_function",
        "deep",
        "in_lambda",
        "in_class",
        "in_async",
        "in_with",
        "in_while",
        "in_for",
        "in_match",
        "in_comprehension",
        "in_decorator",
        "in_default",
    ]


def test_imports_anywhere_without_import_calls():
    # No __import__/import_module in the text: only statement lists are walked.
    src = """
    class C:
        def f(self):
            try:
                import a
            except* ValueError:
                import b
    match v:
        case [x, *_] if x:
            async def g():
                async for _ in y:
                    import c
                else:
                    from d import e
    while x:
        pass
    else:
        import f
    x = lambda: 1
    """
    assert refs(src) == [("a", None), ("b", None), ("c", None), ("d", "e"), ("f", None)]


def test_nfkc_normalised_identifiers():
    # Python folds identifiers with NFKC, so this really calls __import__.
    assert refs('__\uff49mport__("a")\n') == [("a", None)]


def test_first_appearance_order_and_dedup():
    src = """
    import b
    def f():
        import a
        from c import x
    import b
    from c import x, y
    import a
    """
    assert refs(src) == [("b", None), ("a", None), ("c", "x"), ("c", "y")]


# --- __import__ -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ('__import__("a")', [("a", None)]),
        ('__import__("a.b")', [("a.b", None), ("a", None)]),
        ('__import__("a.b.c")', [("a.b.c", None), ("a", None)]),
        ('__import__("a", fromlist=["x", "y"])', [("a", "x"), ("a", "y")]),
        ('__import__("a.b", fromlist=("x",))', [("a.b", "x")]),
        ('__import__("a", None, None, ["x"])', [("a", "x")]),
        ('__import__("a", globals(), locals(), ["*"])', [("a", None)]),
        ('__import__("a.b", fromlist=None)', [("a.b", None), ("a", None)]),
        ('__import__("a.b", fromlist=[])', [("a.b", None), ("a", None)]),
        ('__import__(name="a", fromlist=["x"])', [("a", "x")]),
        # level, positional and keyword; anchored at the parent package p.q.
        ('__import__("x", globals(), None, ["y"], 1)', [("p.q.x", "y")]),
        ('__import__("", fromlist=["y"], level=2)', [("p", "y")]),
        ('__import__("x.y", level=1)', [("p.q.x.y", None), ("p.q.x", None)]),
        ('__import__("", level=1)', [("p.q", None)]),
        ('__import__("a", level=0)', [("a", None)]),
        # Calls nested in other calls' arguments count too.
        ('ns.update({"m": __import__("math")})', [("math", None)]),
        ('f(g(__import__("a", fromlist=["b"])))', [("a", "b")]),
    ],
)
def test_dunder_import(src, expected):
    assert refs(src) == expected


def test_dunder_import_beyond_top_level():
    with pytest.raises(ImportAnalysisError, match="relative import beyond top-level package"):
        scan('__import__("x", fromlist=["y"], level=3)')


def test_attribute_dunder_import_is_not_builtin():
    assert refs('obj.__import__("x")\nthing.importlib.import_module("y")') == []


# --- importlib.import_module ----------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "module", "is_package", "expected"),
    [
        ('importlib.import_module("a.b")', "p.q.m", False, [("a.b", None)]),
        (
            'from importlib import import_module\nimport_module("a.b")',
            "p.q.m",
            False,
            [("importlib", "import_module"), ("a.b", None)],
        ),
        ('importlib.import_module(".sub", "x.y")', "p.q.m", False, [("x.y.sub", None)]),
        ('importlib.import_module("..sub", package="x.y")', "p.q.m", False, [("x.sub", None)]),
        ('importlib.import_module(".", package="x.y")', "p.q.m", False, [("x.y", None)]),
        ('importlib.import_module(".sub", __package__)', "p.q.m", False, [("p.q.sub", None)]),
        ('importlib.import_module(".sub", __name__)', "p.q", True, [("p.q.sub", None)]),
        ('importlib.import_module("abs", package=anything)', "p.q.m", False, [("abs", None)]),
        ('importlib.import_module(name="a")', "p.q.m", False, [("a", None)]),
    ],
)
def test_import_module(src, module, is_package, expected):
    assert refs(src, module, is_package) == expected


def test_import_module_beyond_top_level():
    with pytest.raises(ImportAnalysisError, match="relative import beyond top-level package"):
        scan('importlib.import_module("..x", package="p")')


# --- dynamic imports ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("__import__(name)", []),
        ('__import__("a" + b)', []),
        ("__import__(*args)", []),
        ('__import__("a", **kw)', []),
        ('__import__("a", level=lvl)', []),
        ('__import__("a", fromlist=names)', [("a", None)]),
        ('__import__("a", fromlist=["x", y])', [("a", None)]),
        ("importlib.import_module(name)", []),
        ('importlib.import_module(f"plugins.{name}")', []),
        ('importlib.import_module(".x")', []),  # relative without package
        ('importlib.import_module(".x", package=pkg)', []),
    ],
)
def test_dynamic_imports_warn(src, expected):
    result = find_imports("import os\n\n" + src + "\n", "p.q.m", False, "/src/p/q/m.py")
    assert [(r.module, r.name) for r in result.imports] == [("os", None), *expected]
    (warning,) = result.warnings
    assert "p.q.m" in warning and "/src/p/q/m.py" in warning and "line 3" in warning
    assert "cannot be resolved statically" in warning and "intern/extern" in warning


def test_bare_import_module_counts_only_when_imported_from_importlib():
    sympy_style = "from sympy.external import import_module\nnp = import_module('numpy')\n"
    assert refs(sympy_style) == [("sympy.external", "import_module")]
    aliased_later = "np = import_module('numpy')\nfrom importlib import import_module\n"
    assert refs(aliased_later) == [("numpy", None), ("importlib", "import_module")]
    result = scan("from importlib import import_module\nimport_module(name)\n")
    assert len(result.warnings) == 1 and "line 2" in result.warnings[0]


def test_warnings_in_source_order():
    result = scan("def f():\n    __import__(a)\n__import__(b)\nimportlib.import_module(c)\n")
    assert [re.search(r"line (\d+)", w).group(1) for w in result.warnings] == ["2", "3", "4"]


# --- errors and encodings -------------------------------------------------------------


def test_syntax_error():
    with pytest.raises(ImportAnalysisError) as info:
        find_imports("import ok\ndef f(:\n    pass\n", "p.bad", False, "bad.py")
    message = str(info.value)
    assert "'p.bad'" in message and "bad.py" in message and "line 2" in message
    assert "syntax" in message
    assert info.value.lineno == 2


def test_indentation_error():
    with pytest.raises(ImportAnalysisError, match="line 3"):
        find_imports("if x:\n    a = 1\n  b = 2\n", "m", False, "m.py")


def test_null_bytes():
    with pytest.raises(ImportAnalysisError, match="'m'"):
        find_imports("import a\x00\n", "m", False, "m.py")


def test_coding_cookie_is_honoured():
    src = "# -*- coding: latin-1 -*-\nimport caf\xe9\n".encode("latin-1")
    assert [(r.module, r.name) for r in find_imports(src, "m", False).imports] == [
        ("caf\xe9", None)
    ]


def test_utf8_default_and_bom():
    src = "import caf\xe9\n".encode()
    assert find_imports(src, "m", False).imports == (ImportRef("caf\xe9"),)
    assert find_imports(b"\xef\xbb\xbf" + src, "m", False).imports == (ImportRef("caf\xe9"),)


def test_bytearray_source():
    assert find_imports(bytearray(b"import a\n"), "m", False).imports == (ImportRef("a"),)


@pytest.mark.parametrize(
    "src",
    [
        b"import caf\xe9\n",  # latin-1 bytes without a cookie
        b"# coding: utf-8\nx = '\xff'\n",
        b"# coding: no-such-codec\nimport a\n",
    ],
)
def test_undecodable_source(src):
    with pytest.raises(ImportAnalysisError) as info:
        find_imports(src, "p.enc", False, "enc.py")
    assert "'p.enc'" in str(info.value) and "enc.py" in str(info.value)


def test_deeply_nested_expression_does_not_recurse(default_recursion_limit):
    # A left-deep BinOp chain: the C parser copes, a recursive visitor
    # (three Python frames per level) would not.
    src = "x = " + " + ".join(["a"] * 900) + " + __import__('deep')\n"
    assert refs(src) == [("deep", None)]


# --- real packages -------------------------------------------------------------------


def _package_files(top: str) -> list[tuple[str, bool, Path]]:
    """(module name, is_package, path) of every .py file of ``top``, without importing it."""
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{top} is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    result = []
    for path in sorted(root.rglob("*.py")):
        parts = (top, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            result.append((".".join(parts[:-1]), True, path))
        else:
            result.append((".".join(parts), False, path))
    return result


@pytest.fixture(scope="module")
def sympy_files():
    return _package_files("sympy")


@pytest.fixture
def default_recursion_limit():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(old)


def test_all_of_sympy_and_mpmath(sympy_files, default_recursion_limit):
    files = sympy_files + _package_files("mpmath")
    assert len(files) > 1000
    total = 0
    for module, is_package, path in files:
        result = find_imports(path.read_bytes(), module, is_package, str(path))
        total += len(result.imports)
    assert total > 5000


RESOLVENT = "sympy.polys.numberfields.resolvent_lookup"


def test_resolvent_lookup(sympy_files, default_recursion_limit):
    (path,) = [p for m, _, p in sympy_files if m == RESOLVENT]
    src = path.read_text(encoding="utf-8")
    assert find_imports(src, RESOLVENT, False, str(path)).imports == ()  # it has no imports

    oracle = pytest.importorskip("torch.package.find_file_dependencies")
    with pytest.raises(RecursionError):
        oracle.find_files_source_depends_on(src, "sympy.polys.numberfields")


def _quoted_literal_prefix(src: str, name: str) -> bool:
    return any(q + name in src for q in ("'", '"'))


def test_matches_torch_package_on_sympy(sympy_files):
    """Compare with torch.package's scanner on every 3rd sympy file.

    Where the file has no ``__import__``/``import_module`` calls the sets must be
    equal.  Known, intended differences otherwise:
      * torch does not scan ``importlib.import_module``;
      * torch does not look inside call arguments, so it misses e.g.
        ``namespace.update({"math": __import__("math")})``;
      * for ``__import__("a.b.c")`` torch adds the parent ``a.b``; we add the
        top-level package ``a``, which is what ``__import__`` returns;
      * for a non-literal ``__import__(obj.attr)`` torch reports the AST node
        object itself as a module name; we emit a warning instead.
    """
    oracle = pytest.importorskip(
        "torch.package.find_file_dependencies"
    ).find_files_source_depends_on
    checked = exact = 0
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # invalid escapes in sympy sources, seen by torch's ast.parse
        for module, is_package, path in sympy_files[::3]:
            if module == RESOLVENT:
                continue
            src = path.read_text(encoding="utf-8")
            ours = {
                (r.module, r.name) for r in find_imports(src, module, is_package, str(path)).imports
            }
            theirs = set(oracle(src, module if is_package else module.rpartition(".")[0]))
            checked += 1
            if "__import__" not in src and "import_module" not in src:
                assert ours == theirs, module
                exact += 1
                continue
            for mod, _ in theirs - ours:
                assert not isinstance(mod, str), (module, mod)  # torch's AST-node artefact
            for mod, name in ours - theirs:
                assert _quoted_literal_prefix(src, mod) or _quoted_literal_prefix(
                    src, name or "\0"
                ), (
                    module,
                    mod,
                    name,
                )
    assert checked > 300 and exact > 250
