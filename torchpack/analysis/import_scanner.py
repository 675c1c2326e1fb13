"""Static discovery of the modules a piece of Python source imports.

Covers ``import`` / ``from ... import`` statements anywhere in the module
(function bodies, ``try`` blocks, ``if TYPE_CHECKING:`` ...), plus calls to
``__import__`` and ``importlib.import_module`` with literal arguments.
"""

from __future__ import annotations

import ast
import io
import tokenize
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from .bytecode_imports import (
    ImportStatement,
    UnrecognizedCode,
    calls_may_import,
    import_statements,
    module_code,
)
from .package_init import loads_submodules_only

__all__ = ["ImportAnalysisError", "ImportRef", "ImportScan", "find_imports"]


class ImportAnalysisError(Exception):
    """The imports of a module's source cannot be determined."""

    def __init__(self, reason: str, module_name: str, filename: str, lineno: int | None) -> None:
        where = filename if lineno is None else f"{filename}, line {lineno}"
        super().__init__(f"cannot analyze imports of module {module_name!r} ({where}): {reason}")
        self.reason = reason
        self.module_name = module_name
        self.filename = filename
        self.lineno = lineno


@dataclass(frozen=True, slots=True)
class ImportRef:
    """``module`` is imported; ``name`` is the imported attribute or submodule, if any."""

    module: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ImportScan:
    """Result of :func:`find_imports`."""

    imports: tuple[ImportRef, ...]
    warnings: tuple[str, ...]
    # A package's __init__ that only imports its own submodules (see package_init).
    loads_submodules_only: bool = False


# Node types that cannot contain an import or a call; skipping them keeps the
# walk over large generated files (sympy, mpmath) cheap.
_LEAF_TYPES = frozenset(
    {ast.Name, ast.Constant, ast.alias, ast.Load, ast.Store, ast.Del}
    | {
        cls
        for base in (ast.operator, ast.unaryop, ast.cmpop, ast.boolop)
        for cls in base.__subclasses__()
    }
)

# Field values that are never nodes (identifiers, flags, missing children).
_NON_NODE_TYPES = frozenset({str, int, bool, type(None)})
# The only fields holding statement lists (Module/def/class/if/for/while/
# with/try bodies, except handlers, match cases).
_STATEMENT_LIST_FIELDS = frozenset({"body", "orelse", "finalbody", "handlers", "cases"})

_DUNDER_IMPORT_PARAMS = ("name", "globals", "locals", "fromlist", "level")
_IMPORT_MODULE_PARAMS = ("name", "package")


class _Dynamic(Exception):
    """An argument of an import call is not a literal we can evaluate."""


def _decode(source: str | bytes, module_name: str, filename: str) -> str:
    if isinstance(source, str):
        return source
    data = bytes(source)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as e:
        raise ImportAnalysisError(
            f"cannot determine source encoding: {e}", module_name, filename, None
        ) from e
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as e:
        raise ImportAnalysisError(
            f"source is not valid {encoding}: {e}", module_name, filename, None
        ) from e


def _parse(text: str, module_name: str, filename: str) -> ast.Module:
    try:
        # Invalid escape sequences etc. in third-party code are not ours to
        # report, and under -W error they would turn into SyntaxErrors.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text, filename=filename)
    except SyntaxError as e:
        raise ImportAnalysisError(f"syntax error: {e.msg}", module_name, filename, e.lineno) from e
    except (ValueError, RecursionError, MemoryError) as e:
        # ValueError: NUL bytes (3.11); the others: pathologically nested code.
        raise ImportAnalysisError(f"cannot parse source: {e}", module_name, filename, None) from e


def _literal_str(node: ast.expr) -> str:
    if type(node) is ast.Constant and type(node.value) is str:
        return node.value
    raise _Dynamic


def _bind(call: ast.Call, params: tuple[str, ...]) -> dict[str, ast.expr]:
    bound: dict[str, ast.expr] = {}
    for param, arg in zip(params, call.args, strict=False):  # extra args: TypeError at runtime
        if type(arg) is ast.Starred:
            raise _Dynamic
        bound[param] = arg
    for kw in call.keywords:
        if kw.arg is None:  # **kwargs
            raise _Dynamic
        if kw.arg in params:
            bound[kw.arg] = kw.value
    return bound


def _from_refs(module: str, names: Iterable[str]) -> list[ImportRef]:
    """``from module import names``: each name may be a submodule; ``*`` is the module."""
    return [ImportRef(module, None if name == "*" else name) for name in names]


class _Scanner:
    def __init__(self, module_name: str, package: str, filename: str) -> None:
        self.module_name = module_name
        self.package = package
        self.filename = filename
        # (line, column, message), sorted into source order at the end.
        self.warnings: list[tuple[int, int, str]] = []

    def error(self, reason: str, node: ast.AST | None) -> ImportAnalysisError:
        return ImportAnalysisError(
            reason, self.module_name, self.filename, getattr(node, "lineno", None)
        )

    def resolve(self, name: str, level: int, package: str, node: ast.AST | None) -> str:
        """Absolute name of ``name`` imported ``level`` packages up from ``package``."""
        if level == 0:
            return name
        bits = package.rsplit(".", level - 1) if package else []
        if len(bits) < level:
            # Python's own words, which torch.package reports too.
            raise self.error("attempted relative import beyond top-level package", node)
        return f"{bits[0]}.{name}" if name else bits[0]

    def warn_dynamic(self, call: ast.Call) -> None:
        try:
            text = ast.unparse(call)
        except Exception:  # unparse recurses; never let a warning cost the scan
            text = "call"
        if len(text) > 100:
            text = text[:97] + "..."
        self.warnings.append(
            (
                call.lineno,
                call.col_offset,
                f"{self.module_name} ({self.filename}, line {call.lineno}): dynamic import "
                f"{text} cannot be resolved statically; intern/extern its target explicitly",
            )
        )

    def import_from(self, node: ast.ImportFrom) -> list[ImportRef]:
        module = node.module or ""
        if node.level:
            module = self.resolve(module, node.level, self.package, node)
        return _from_refs(module, [a.name for a in node.names])

    def statement_refs(self, statement: ImportStatement) -> list[ImportRef]:
        """What a compiled import statement imports (raises for a relative one gone too far)."""
        if statement.fromlist is None:
            return [ImportRef(statement.name, None)]

        module = self.resolve(statement.name, statement.level, self.package, None)
        return _from_refs(module, statement.fromlist)

    def dunder_import(self, call: ast.Call) -> list[ImportRef]:
        try:
            args = _bind(call, _DUNDER_IMPORT_PARAMS)
            name = _literal_str(args["name"]) if "name" in args else None
        except _Dynamic:
            name = None
        if name is None:
            self.warn_dynamic(call)
            return []
        try:
            level_node = args.get("level")
            level = 0
            if level_node is not None:
                if type(level_node) is not ast.Constant or type(level_node.value) is not int:
                    raise _Dynamic
                level = level_node.value
            if level < 0 or (level == 0 and not name):
                raise _Dynamic  # fails at runtime; nothing to resolve
        except _Dynamic:
            self.warn_dynamic(call)
            return []

        module = self.resolve(name, level, self.package, call)
        fromlist_node = args.get("fromlist")
        fromlist: list[str] = []
        if fromlist_node is not None and not (
            type(fromlist_node) is ast.Constant and fromlist_node.value is None
        ):
            if type(fromlist_node) not in (ast.List, ast.Tuple, ast.Set):
                # The named module is imported whatever the fromlist holds.
                self.warn_dynamic(call)
                return [ImportRef(module, None)]
            try:
                fromlist = [_literal_str(e) for e in fromlist_node.elts]
            except _Dynamic:
                self.warn_dynamic(call)
                return [ImportRef(module, None)]
        if fromlist:
            return [ImportRef(module, None if x == "*" else x) for x in fromlist]
        # Without a fromlist __import__ returns the top-level package (or, for
        # relative imports, the first component below the anchor), which the
        # caller then uses, so that is a dependency too.
        refs = [ImportRef(module, None)]
        head = name.partition(".")[0]
        top = self.resolve(head, level, self.package, call) if head else module
        if top != module:
            refs.append(ImportRef(top, None))
        return refs

    def import_module(self, call: ast.Call) -> list[ImportRef]:
        try:
            args = _bind(call, _IMPORT_MODULE_PARAMS)
            name = _literal_str(args["name"]) if "name" in args else None
            if name is None:
                raise _Dynamic
            level = len(name) - len(name.lstrip("."))
            if level == 0:
                return [ImportRef(name, None)]
            package = self.package_arg(args.get("package"))
        except _Dynamic:
            self.warn_dynamic(call)
            return []

        return [ImportRef(self.resolve(name[level:], level, package, call), None)]

    def package_arg(self, node: ast.expr | None) -> str:
        if node is None:
            raise _Dynamic
        # These two are module constants we know statically; they are the
        # idiomatic anchors for relative import_module calls.
        if type(node) is ast.Name and node.id == "__package__":
            return self.package
        if type(node) is ast.Name and node.id == "__name__":
            return self.module_name
        return _literal_str(node)

    def call(self, call: ast.Call) -> list[ImportRef] | None:
        func = call.func
        if type(func) is ast.Name:
            if func.id == "__import__":
                return self.dunder_import(call)
        elif (
            type(func) is ast.Attribute
            and func.attr == "import_module"
            and type(func.value) is ast.Name
            and func.value.id == "importlib"
        ):
            return self.import_module(call)
        return None


def find_imports(
    source: str | bytes,
    module_name: str,
    is_package: bool,
    filename: str = "<unknown>",
    *,
    source_file: str | None = None,
) -> ImportScan:
    """Statically find what ``source`` (module ``module_name``) imports.

    Relative imports are resolved against the module itself if ``is_package``
    else against its parent package.  Raises :class:`ImportAnalysisError` for
    undecodable or syntactically invalid source and for relative imports that
    escape the top-level package.  Non-literal ``__import__`` /
    ``import_module`` calls produce warnings instead of references.

    ``source_file`` is the file ``source`` was read from (``filename`` if not given, which
    may be just a name for messages): Python's cached bytecode for it is read instead of
    compiling, when it is valid for ``source``.
    """
    package = module_name if is_package else module_name.rpartition(".")[0]
    scanner = _Scanner(module_name, package, filename)
    found = _compiled_imports(source, source_file or filename, scanner)
    tree = None
    if found is None:
        text = _decode(source, module_name, filename)
        tree = _parse(text, module_name, filename)
        found = _tree_imports(tree, text, scanner)
    found.sort(key=lambda item: item[:3])
    imports = dict.fromkeys(ref for *_, refs in found for ref in refs)
    scanner.warnings.sort(key=lambda item: item[:2])
    submodules_only = False
    if is_package:
        if tree is None:
            tree = _parse(_decode(source, module_name, filename), module_name, filename)
        submodules_only = loads_submodules_only(tree, module_name)
    return ImportScan(
        imports=tuple(imports),
        warnings=tuple(w for *_, w in scanner.warnings),
        loads_submodules_only=submodules_only,
    )


# (line, column, discovery index, refs) of each import, sorted into source order at the end.
_Found = list[tuple[int, int, int, list[ImportRef]]]


def _compiled_imports(source: str | bytes, source_file: str, scanner: _Scanner) -> _Found | None:
    """The imports of a module that makes no import calls, read from its compiled code.

    None where the syntax tree must decide: the module may import by calling, does not
    compile (the tree walk reports why), or its code has a shape we do not recognise.
    """
    data = source.encode("utf-8") if isinstance(source, str) else bytes(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as in _parse
            code = module_code(data, source_file)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if calls_may_import(code):
        return None
    found: _Found = []
    try:
        for statement in import_statements(code):
            found.append(
                (
                    statement.lineno,
                    statement.col_offset,
                    len(found),
                    scanner.statement_refs(statement),
                )
            )
    except (UnrecognizedCode, ImportAnalysisError):
        return None
    return found


def _tree_imports(tree: ast.Module, text: str, scanner: _Scanner) -> _Found:
    # Import statements can only sit in statement lists, so unless the source
    # can contain a call we care about, expressions need not be visited at
    # all.  Non-ASCII source takes the full walk because identifiers are
    # NFKC-normalised (a fullwidth "__ｉmport__" is "__import__").
    calls = not text.isascii() or "__import__" in text or "import_module" in text
    child_fields: dict[type, tuple[str, ...]] = {}

    def fields_of(t: type) -> tuple[str, ...]:
        if t in _LEAF_TYPES:
            return ()
        names = getattr(t, "_fields", ())
        if calls:
            return tuple(f for f in names if f != "ctx")
        return tuple(f for f in names if f in _STATEMENT_LIST_FIELDS)

    found: _Found = []
    Import, ImportFrom, Call = ast.Import, ast.ImportFrom, ast.Call
    skip = _LEAF_TYPES | _NON_NODE_TYPES
    # An explicit stack, not recursion: generated files such as
    # sympy.polys.numberfields.resolvent_lookup nest expressions deeper than
    # the interpreter's recursion limit.
    stack: list[object] = [tree]
    pop, push = stack.pop, stack.append
    # A bare `import_module(...)` is importlib's only if the module imported it from there;
    # libraries have functions of that name with other meanings (sympy.external.import_module).
    bare_import_module_calls: list[ast.Call] = []
    while stack:
        node = pop()
        t = type(node)
        if t is Import:
            found.append(
                (
                    node.lineno,
                    node.col_offset,
                    len(found),
                    [ImportRef(a.name, None) for a in node.names],
                )
            )
            continue
        if t is ImportFrom:
            found.append((node.lineno, node.col_offset, len(found), scanner.import_from(node)))
            continue
        if t is Call:
            if type(node.func) is ast.Name and node.func.id == "import_module":
                bare_import_module_calls.append(node)
            else:
                refs = scanner.call(node)
                if refs:
                    found.append((node.lineno, node.col_offset, len(found), refs))
        fields = child_fields.get(t)
        if fields is None:
            fields = child_fields[t] = fields_of(t)
        for field in fields:
            value = getattr(node, field, None)
            if type(value) is list:
                for item in value:
                    if type(item) not in skip:
                        push(item)
            elif type(value) not in skip:
                push(value)

    if any(ImportRef("importlib", "import_module") in refs for *_, refs in found):
        for node in bare_import_module_calls:
            refs = scanner.import_module(node)
            if refs:
                found.append((node.lineno, node.col_offset, len(found), refs))
    return found
