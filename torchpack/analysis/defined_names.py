"""The classes and functions a module's source defines, found without running it.

``torchpack audit`` labels a global ``package`` only if the package's own code defines it under
that name: ``victim.system`` after ``from os import system`` is ``os.system``.
"""

from __future__ import annotations

import ast

from .import_scanner import _decode, _parse

# Statements whose bodies still run at module (or class) level.
_BLOCKS = (ast.If, ast.Try, ast.TryStar, ast.With, ast.AsyncWith, ast.For, ast.While)
_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def defined_names(source: bytes, module_name: str, filename: str) -> frozenset[str]:
    """Qualified names (``A``, ``A.Inner``, ``f``) of the classes and functions defined at
    module level, in blocks that run there (``if``, ``try``, ...), and nested in classes.

    Raises :class:`~torchpack.analysis.import_scanner.ImportAnalysisError` if the source cannot
    be parsed.
    """
    tree = _parse(_decode(source, module_name, filename), module_name, filename)
    names: set[str] = set()
    pending: list[tuple[list[ast.stmt], str]] = [(tree.body, "")]
    while pending:
        body, prefix = pending.pop()
        for node in body:
            if isinstance(node, _DEFINITIONS):
                names.add(prefix + node.name)
                if isinstance(node, ast.ClassDef):
                    pending.append((node.body, f"{prefix}{node.name}."))
            elif isinstance(node, _BLOCKS):
                for field in ("body", "orelse", "finalbody"):
                    pending.append((getattr(node, field, []), prefix))
                for handler in getattr(node, "handlers", []):
                    pending.append((handler.body, prefix))
    return frozenset(names)
