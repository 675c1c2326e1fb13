"""Which modules a package provides, and how: the archive's folders seen as Python packages.

Built once per importer from the record names and ``.data/extern_modules``; answers "is
``a.b`` packaged source, a placeholder package, extern, or absent?" without reading a record.
Torch-free: ``torchpack audit`` asks it which record runs for each module, as the importer does.
"""

from __future__ import annotations

from ..archive.format import module_for_record


class PackageNode:
    """A folder of the archive: a package, with source if it has an ``__init__.py``."""

    def __init__(self, source_record: str | None = None) -> None:
        self.source_record = source_record
        self.children: dict[str, PackageNode | ModuleNode | ExternNode] = {}


class ModuleNode:
    """A plain module: one ``.py`` record."""

    def __init__(self, source_record: str) -> None:
        self.source_record = source_record


class ExternNode:
    """A module (and everything below it) that the running Python provides."""


Node = PackageNode | ModuleNode | ExternNode


class ModuleTree:
    """The modules of one package, by dotted name."""

    def __init__(self, records: list[str], extern_modules: list[str]) -> None:
        self.root = PackageNode()
        # The top-level names the package's own sources live under.
        self.top_level_names: set[str] = set()
        self._init_folders = {
            record[: -len("/__init__.py")] for record in records if record.endswith("/__init__.py")
        }
        for module_name in extern_modules:
            self._add_extern(module_name)
        for record in records:
            self._add_record(record)

    def find(self, name: str) -> Node | None:
        """The node that provides ``name``: an extern ancestor provides everything below it."""
        node: Node = self.root
        for atom in name.split("."):
            if isinstance(node, ExternNode):
                return node
            child = node.children.get(atom) if isinstance(node, PackageNode) else None
            if child is None:
                return None
            node = child
        return node

    def sources(self) -> dict[str, str]:
        """Every module the package provides as source, with the record the importer runs."""
        found: dict[str, str] = {}
        stack: list[tuple[str, Node]] = [("", self.root)]
        while stack:
            name, node = stack.pop()
            if isinstance(node, (PackageNode, ModuleNode)) and node.source_record and name:
                found[name] = node.source_record
            if isinstance(node, PackageNode):
                stack.extend((f"{name}.{atom}" if name else atom, child)
                             for atom, child in node.children.items())  # fmt: skip
        return dict(sorted(found.items()))

    def is_packaged(self, name: str) -> bool:
        """True if ``name`` is one of the package's own modules (interned or mocked source)."""
        node = self.find(name)
        return isinstance(node, (PackageNode, ModuleNode)) and node.source_record is not None

    def _package_node(self, folders: list[str]) -> PackageNode | ExternNode | None:
        """The package for a folder path; None if a module of that name shadows the folder."""
        node: PackageNode | ExternNode = self.root
        for depth, atom in enumerate(folders):
            if isinstance(node, ExternNode):
                return node
            child = node.children.get(atom)
            if isinstance(child, ModuleNode):
                # As in Python: a folder with __init__.py beats a.py, which beats a plain folder.
                if "/".join(folders[: depth + 1]) not in self._init_folders:
                    return None
                child = None
            if child is None:
                child = node.children[atom] = PackageNode()
            node = child
        return node

    def _add_extern(self, module_name: str) -> None:
        *parents, last = module_name.split(".")
        package = self._package_node(parents)
        if isinstance(package, PackageNode):
            package.children[last] = ExternNode()

    def _add_record(self, record: str) -> None:
        if record.startswith(".data/"):
            return
        *folders, file_name = record.split("/")
        package = self._package_node(folders)
        if not isinstance(package, PackageNode):
            return
        if file_name.endswith(".py"):
            self.top_level_names.add(record.split("/")[0].removesuffix(".py"))
        if file_name == "__init__.py":
            package.source_record = record
        elif file_name.endswith(".py") and module_for_record(record) is not None:
            name = file_name[:-3]
            existing = package.children.get(name)
            folder = "/".join([*folders, name])
            if not isinstance(existing, ExternNode) and folder not in self._init_folders:
                package.children[name] = ModuleNode(record)
