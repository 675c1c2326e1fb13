"""What a module's code can do beyond computing: reach the network, start processes, load
native libraries. Found in its source without running it (and without torch).

``torchpack audit`` reports every use of the APIs below that interned code makes: imports of
them, and names reached through imports (``os.system``, ``subprocess.run`` after ``from
subprocess import run``, ``ctypes.cdll.LoadLibrary``). A call made by module-level code runs
when the package imports the module, that is when a pickle is loaded: that is the risky kind.
Static reading has limits: a name built at run time (``getattr(os, name)``, ``exec``) or a
method of an object (``loop.subprocess_exec``, ``ffi.dlopen``) is not seen by name, which is
why importing ``cffi``, ``multiprocessing`` or ``asyncio.subprocess`` counts as a use.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass

from .glob_group import GlobGroup
from .import_scanner import _decode, _parse
from .source_names import may_import_by_calling

__all__ = ["CAPABILITIES", "CapabilityUse", "capability_uses", "may_use_capabilities"]

_OS_PROCESS_CALLS = (
    "system",
    "popen",
    *(f"exec{suffix}" for suffix in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")),
    *(f"spawn{suffix}" for suffix in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")),
    "posix_spawn",
    "posix_spawnp",
    "fork",
    "forkpty",
    "startfile",
)
# Capability -> the module-qualified names (globs) that give it.
_PATTERNS: dict[str, list[str]] = {
    "network": [
        "socket.**",
        "ssl.**",
        "http.client.**",
        "http.server.**",
        "urllib.request.**",
        "ftplib.**",
        "smtplib.**",
        "poplib.**",
        "imaplib.**",
        "telnetlib.**",
        "socketserver.**",
        "xmlrpc.client.**",
        "xmlrpc.server.**",
        "asyncio.open_connection",
        "asyncio.open_unix_connection",
        "asyncio.start_server",
        "asyncio.start_unix_server",
        "asyncio.streams.**",
        "requests.**",
        "httpx.**",
        "urllib3.**",
        "aiohttp.**",
        "torch.hub.**",
        # huggingface_hub's calls that download or upload (its constants, errors and cache
        # helpers do not), wherever the library defines them.
        "huggingface_hub.**.hf_hub_download",
        "huggingface_hub.**.snapshot_download",
        "huggingface_hub.**.cached_download",
        "huggingface_hub.**.get_hf_file_metadata",
        "huggingface_hub.**.HfApi",
        "huggingface_hub.**.HfFileSystem",
        "huggingface_hub.**.InferenceClient",
        "huggingface_hub.**.AsyncInferenceClient",
        "huggingface_hub.**.upload_file",
        "huggingface_hub.**.upload_folder",
        "huggingface_hub.**.create_repo",
        "huggingface_hub.**.create_commit",
        "huggingface_hub.**.model_info",
        "huggingface_hub.**.list_repo_files",
        "huggingface_hub.**.file_exists",
        "huggingface_hub.**.repo_exists",
        "huggingface_hub.**.whoami",
        "huggingface_hub.**.login",
        "huggingface_hub.**.get_session",
    ],
    "process": [
        "subprocess.**",
        *(f"{os}.{call}" for os in ("os", "posix") for call in _OS_PROCESS_CALLS),
        "pty.**",
        "multiprocessing.**",
        "concurrent.futures.ProcessPoolExecutor",
        "concurrent.futures.process.**",
        "asyncio.create_subprocess_exec",
        "asyncio.create_subprocess_shell",
        "asyncio.subprocess.**",
        "torch.multiprocessing.spawn",
        "torch.multiprocessing.start_processes",
        "torch.multiprocessing.Process",
    ],
    "native library": [
        "ctypes.CDLL",
        "ctypes.PyDLL",
        "ctypes.WinDLL",
        "ctypes.OleDLL",
        "ctypes.LibraryLoader",
        "ctypes.cdll.**",
        "ctypes.pydll.**",
        "ctypes.windll.**",
        "ctypes.oledll.**",
        "_ctypes.dlopen",
        "cffi.**",
        "torch.ops.load_library",
        "torch.classes.load_library",
        "torch.utils.cpp_extension.load",
        "torch.utils.cpp_extension.load_inline",
        "importlib.machinery.ExtensionFileLoader",
    ],
}
CAPABILITIES: dict[str, GlobGroup] = {
    capability: GlobGroup(patterns) for capability, patterns in _PATTERNS.items()
}
# Below a module that gives a capability, but only tell about this process.
_HARMLESS = GlobGroup(["multiprocessing.cpu_count", "multiprocessing.current_process"])


def _literal_parts(pattern: str) -> tuple[str, ...]:
    return tuple(part for part in pattern.split(".") if part != "**")


_PATTERN_PARTS = frozenset(_literal_parts(p) for patterns in _PATTERNS.values() for p in patterns)
_PATTERN_TOPS = frozenset(parts[0] for parts in _PATTERN_PARTS)
_IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")


def may_use_capabilities(text: bytes, module_name: str) -> bool:
    """Whether a module, its source as :func:`~torchpack.analysis.source_names.names_text`
    gives it, may use a capability: parsing it tells (seconds for a large library), this
    word search does not rule any use out (tens of milliseconds).

    A use spells each literal part of the name it matches (``os`` and ``system``: in the
    import, or as attributes), but for the library's own modules, whose relative imports
    spell neither the library's name nor what lies between (``from .file_download import
    hf_hub_download``).
    """
    if may_import_by_calling(text):
        return True
    words = {word.decode("ascii") for word in _IDENTIFIER.findall(text)}
    top = module_name.partition(".")[0]
    for parts in _PATTERN_PARTS:
        if parts[0] == top:
            if len(parts) == 1 or parts[-1] in words:
                return True
        elif words.issuperset(parts):
            return True
    return False


@dataclass(frozen=True)
class CapabilityUse:
    """One use of an API that gives ``capability``: ``name`` as the module qualifies it,
    where, and whether module-level code calls it (it runs when the module is imported)."""

    capability: str
    name: str
    line: int
    called_on_import: bool


def capability_uses(
    source: bytes, module_name: str, is_package: bool, filename: str
) -> list[CapabilityUse]:
    """Every use of a capability's API in the module, in source order.

    Raises :class:`~torchpack.analysis.import_scanner.ImportAnalysisError` if the source cannot
    be parsed.
    """
    tree = _parse(_decode(source, module_name, filename), module_name, filename)
    package = module_name if is_package else module_name.rpartition(".")[0]
    return _Reader(package).read(tree)


class _Reader:
    def __init__(self, package: str) -> None:
        self.package = package
        # Local name -> the module or module attribute it is bound to by an import anywhere
        # in the module (a function's import binds a name other functions cannot see, but
        # telling scopes apart would let a rebinding hide a use).
        self.bound: dict[str, str] = {}
        # Modules whose every public name ``from m import *`` may have bound.
        self.starred: list[str] = []
        # (capability, name) -> its first use, or its first call on import if there is one
        self.uses: dict[tuple[str, str], CapabilityUse] = {}

    def read(self, tree: ast.Module) -> list[CapabilityUse]:
        imports, names, calls = _walk(tree)
        for node in imports:
            self._bind(node)
        for node in imports:
            for name in self._imported(node):
                self._note(name, node, called=False)
        for node in names:
            for qualified in self._qualified(node):
                self._note(qualified, node, called=False)
        for call, on_import in calls:
            self._note_call(call, on_import)
        return sorted(self.uses.values(), key=lambda use: (use.line, use.name))

    def _imported(self, node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        module = self._from_module(node)
        return [module if alias.name == "*" else f"{module}.{alias.name}" for alias in node.names]

    def _bind(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self.bound[alias.asname] = alias.name
                else:
                    top = alias.name.partition(".")[0]
                    self.bound[top] = top
            return
        module = self._from_module(node)
        for alias in node.names:
            if alias.name == "*":
                self.starred.append(module)
            else:
                self.bound[alias.asname or alias.name] = f"{module}.{alias.name}"

    def _from_module(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        bits = self.package.rsplit(".", node.level - 1) if self.package else []
        if len(bits) < node.level:
            return node.module or ""  # beyond the top-level package: Python refuses it
        return f"{bits[0]}.{node.module}" if node.module else bits[0]

    def _qualified(self, node: ast.expr) -> list[str]:
        """``os.path.join`` as the module's imports qualify it: by the import that bound its
        first name, else by each module imported with ``*``."""
        attributes = []
        while isinstance(node, ast.Attribute):
            attributes.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return []
        path = [node.id, *reversed(attributes)]
        if node.id in self.bound:
            return [".".join([self.bound[node.id], *path[1:]])]
        return [".".join([module, *path]) for module in self.starred]

    def _note_call(self, call: ast.Call, on_import: bool) -> None:
        func = call.func
        names = self._qualified(func)
        if names == ["importlib.import_module"] or (
            isinstance(func, ast.Name) and func.id == "__import__" and not names
        ):
            # A literal names the module imported: a use of it.
            first = call.args[0] if call.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                self._note(first.value, call, called=on_import)
            return
        for name in names:
            self._note(name, call, called=on_import)

    def _note(self, name: str, node: ast.AST, called: bool) -> None:
        """Note a use of ``name`` if it gives a capability: one use per capability and name,
        its first call on import if it has one, else its first use."""
        found = _capability_of(name)
        if found is not None:
            use = CapabilityUse(*found, getattr(node, "lineno", 0), called)
            kept = self.uses.get(found)
            if kept is None or _rank(use) < _rank(kept):
                self.uses[found] = use


@functools.lru_cache(maxsize=4096)
def _capability_of(name: str) -> tuple[str, str] | None:
    """The capability and the longest part of ``name`` that gives it (``subprocess.run`` of
    ``subprocess.run.__doc__``), if any."""
    parts = name.split(".")
    if parts[0] not in _PATTERN_TOPS:
        return None
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if _HARMLESS.matches(prefix):
            return None
        for capability, group in CAPABILITIES.items():
            if group.matches(prefix):
                return capability, prefix
    return None


def _walk(
    tree: ast.Module,
) -> tuple[list[ast.Import | ast.ImportFrom], list[ast.expr], list[tuple[ast.Call, bool]]]:
    """The module's imports, the outermost name chains (``a`` and ``a.b.c``, not ``a.b``),
    and its calls with whether each runs when the module is imported (not in a function body;
    decorators and defaults run where the function is defined)."""
    imports: list[ast.Import | ast.ImportFrom] = []
    names: list[ast.expr] = []
    calls: list[tuple[ast.Call, bool]] = []
    pending: list[tuple[ast.AST, bool]] = [(tree, True)]
    while pending:
        node, on_import = pending.pop()
        kind = type(node)
        if kind is ast.Import or kind is ast.ImportFrom:
            imports.append(node)  # type: ignore[arg-type]
            continue
        if kind is ast.Name or (kind is ast.Attribute and _is_name_chain(node)):
            names.append(node)  # type: ignore[arg-type]
            continue
        if kind is ast.Call:
            calls.append((node, on_import))  # type: ignore[arg-type]
        if kind in _FUNCTIONS:
            pending.extend((child, on_import) for child in _run_on_definition(node))  # type: ignore[arg-type]
            pending.extend((child, False) for child in _body(node))  # type: ignore[arg-type]
            continue
        for field in _fields(kind):
            value = getattr(node, field, None)
            if type(value) is list:
                pending.extend((item, on_import) for item in value if isinstance(item, ast.AST))
            elif isinstance(value, ast.AST) and type(value) not in _LEAVES:
                pending.append((value, on_import))
    return imports, names, calls


def _is_name_chain(node: ast.AST) -> bool:
    while type(node) is ast.Attribute:
        node = node.value  # type: ignore[attr-defined]
    return type(node) is ast.Name


@functools.cache
def _fields(kind: type) -> tuple[str, ...]:
    return tuple(field for field in kind._fields if field != "ctx")  # type: ignore[attr-defined]


def _rank(use: CapabilityUse) -> tuple[bool, int]:
    return not use.called_on_import, use.line


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
# Nodes with nothing below them worth visiting.
_LEAVES = frozenset({ast.Constant, ast.Load, ast.Store, ast.Del})


def _run_on_definition(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[ast.AST]:
    defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
    return [*getattr(node, "decorator_list", []), *defaults]


def _body(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[ast.AST]:
    return [node.body] if isinstance(node, ast.Lambda) else list(node.body)
