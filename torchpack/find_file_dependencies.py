"""What a source file imports, found without running it (torch.package's
``find_file_dependencies``)."""

from __future__ import annotations

from .analysis.import_scanner import find_imports


def find_files_source_depends_on(src: str, package: str) -> list[tuple[str, str | None]]:
    """``(module, name)`` for every import in ``src``; relative imports start at ``package``.

    ``name`` is the attribute or submodule of ``from module import name``, else None.
    """
    scan = find_imports(src, package, is_package=True)
    return [(ref.module, ref.name) for ref in scan.imports]


__all__ = ["find_files_source_depends_on"]
