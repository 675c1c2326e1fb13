"""The Python code of some targets, as a process sees it: files, and the names Python gives them.

Each file's source root is the one Pants strips from that file's path (as its import
inference does), whatever folder the BUILD file owning it sits in: a `python_sources` in
`vision/BUILD` owning `vision/src/tinyvision/model.py` names it `tinyvision.model`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pants.backend.python.util_rules import python_sources
from pants.backend.python.util_rules.python_sources import (
    PythonSourceFiles,
    PythonSourceFilesRequest,
)
from pants.engine.fs import Digest
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import Target
from pants.source.source_root import SourceRootsRequest, SourceRootsResult
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel


@dataclass(frozen=True)
class PythonModule:
    """A source file and the module Python imports it as."""

    path: str  # from the build root
    name: str
    is_package: bool


@dataclass(frozen=True)
class PythonCodeRequest:
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class PythonCode:
    """Python sources (with the `__init__.py` files above them), resources and `file`s, at their
    paths from the build root, and the source root of each but the `file`s."""

    digest: Digest
    source_roots: FrozenDict[str, str]  # file -> its source root, "." for the build root

    @property
    def python_path(self) -> tuple[str, ...]:
        """The source roots, for PYTHONPATH."""
        return tuple(sorted(set(self.source_roots.values())))

    def name(self, path: str) -> str:
        """`path` below its source root: what Python and `importlib.resources` call it."""
        return os.path.relpath(path, self.source_roots[path])

    def modules(self) -> tuple[PythonModule, ...]:
        """The module of each `.py` file."""
        modules = []
        for path in sorted(self.source_roots):
            if not path.endswith(".py"):
                continue
            parts = self.name(path)[: -len(".py")].split("/")
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            if parts:  # a source root's own __init__.py is no module
                modules.append(PythonModule(path, ".".join(parts), is_package))
        return tuple(modules)

    def resources(self) -> tuple[str, ...]:
        """The data files that sit beside the modules (`resource` targets), by path."""
        return tuple(
            path for path in sorted(self.source_roots) if not path.endswith((".py", ".pyi"))
        )


@rule(desc="Find the source roots of Python code", level=LogLevel.DEBUG)
async def python_code(request: PythonCodeRequest) -> PythonCode:
    sources = await Get(
        PythonSourceFiles,
        PythonSourceFilesRequest(request.targets, include_resources=True, include_files=True),
    )
    rooted = set(sources.source_files.files) - set(sources.source_files.unrooted_files)
    roots = await Get(SourceRootsResult, SourceRootsRequest.for_files(rooted))
    return PythonCode(
        sources.source_files.snapshot.digest,
        FrozenDict({str(path): root.path for path, root in sorted(roots.path_to_root.items())}),
    )


def rules() -> list:
    return [*collect_rules(), *python_sources.rules()]
