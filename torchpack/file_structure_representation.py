"""``Directory``: the file tree of a package, as :meth:`PackageImporter.file_structure` shows it."""

from __future__ import annotations

from collections.abc import Iterable

from .analysis.glob_group import GlobGroup, GlobPattern

_TEE = "├── "
_LAST = "└── "
_BRANCH = "│   "
_SPACE = "    "
_ROOT = "─── "


class Directory:
    """A folder (``is_dir``) or file of a package; folders hold ``children`` by name."""

    def __init__(self, name: str, is_dir: bool) -> None:
        self.name = name
        self.is_dir = is_dir
        self.children: dict[str, Directory] = {}

    def _add_file(self, path: str) -> None:
        *folders, file_name = path.split("/")
        node = self
        for folder in folders:
            node = node.children.setdefault(folder, Directory(folder, True))
        node.children[file_name] = Directory(file_name, False)

    def has_file(self, filename: str) -> bool:
        """True if ``filename`` (a ``/``-separated path below this folder) exists here."""
        node = self
        for part in filename.split("/"):
            if part not in node.children:
                return False
            node = node.children[part]
        return True

    def __str__(self) -> str:
        lines: list[str] = []
        # An explicit stack: deep package trees must not hit the recursion limit.
        stack: list[tuple[Directory, str, str]] = [(self, "", _ROOT)]
        while stack:
            node, preamble, pointer = stack.pop()
            lines.append(f"{preamble}{pointer}{node.name}\n")
            if not node.is_dir:
                continue
            inner = preamble + (_BRANCH if pointer == _TEE else _SPACE)
            folders = sorted(k for k, v in node.children.items() if v.is_dir)
            files = sorted(k for k, v in node.children.items() if not v.is_dir)
            ordered = [node.children[k] for k in folders + files]
            entries = [
                (child, inner, _LAST if i == len(ordered) - 1 else _TEE)
                for i, child in enumerate(ordered)
            ]
            stack.extend(reversed(entries))
        return "".join(lines)

    def __repr__(self) -> str:
        return f"Directory({self.name!r}, is_dir={self.is_dir}, children={len(self.children)})"


def directory_from_paths(
    name: str,
    paths: Iterable[str],
    include: GlobPattern = "**",
    exclude: GlobPattern = (),
) -> Directory:
    """Build the tree of the ``paths`` that match ``include`` and not ``exclude`` (``/`` globs)."""
    selected = GlobGroup(include, exclude=exclude, separator="/")
    root = Directory(name, True)
    for path in paths:
        if selected.matches(path):
            root._add_file(path)
    return root
