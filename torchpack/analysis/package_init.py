"""Whether a package's ``__init__.py`` only loads its own submodules.

Such an ``__init__`` (``from . import factorials, bessel, zeta``, as in mpmath.functions)
exists for the side effects of those submodules (registering functions on shared objects):
code that imports one of its submodules relies on it having run. An ``__init__`` that does
anything else (defines names, loads C libraries from beside its file, as torchvision's does)
is not run for the sake of its submodules: the exporter leaves an empty placeholder, as
torch.package does.
"""

from __future__ import annotations

import ast


def loads_submodules_only(tree: ast.Module, package: str) -> bool:
    """True if every statement of ``tree`` (a package's ``__init__``) is its docstring or an
    import of the package's own submodules, and there is at least one such import."""
    imports = 0
    for index, statement in enumerate(tree.body):
        if index == 0 and _is_docstring(statement):
            continue
        if isinstance(statement, ast.ImportFrom):
            # `from . import a, b`: only submodules (or names) of the package itself.
            if statement.level != 1 or statement.module is not None:
                return False
        elif isinstance(statement, ast.Import):
            # `import package.a`, without `as` (which would bind a name instead).
            if any(
                alias.asname is not None or not alias.name.startswith(package + ".")
                for alias in statement.names
            ):
                return False
        else:
            return False
        imports += 1
    return imports > 0


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )
