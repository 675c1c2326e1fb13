"""``PackageImporter``: loads code and objects from a package, each package its own world.

Modules of a package live in the importer's own ``modules`` table; their names carry the
importer's ``<torch_package_N>.`` prefix, and ``sys.modules`` knows them only by that name.
Packaged code imports through the importer: its ``__import__`` replaces the builtin one in
their globals, their ``importlib.import_module`` is the importer's, and a process-wide
``sys.meta_path`` finder hands it what reaches Python's import machinery with its names.
Interned modules come from the archive, externed ones from the running Python, anything else
is an error.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import importlib.util
import io
import linecache
import os
import pickle
import struct
import sys
import types
import warnings
from collections.abc import Callable, Iterable
from importlib.metadata import Distribution
from pathlib import Path
from typing import Any

import torch

from ._importlib import _calc___package__, _normalize_line_endings, _resolve_name
from ._mangling import PackageMangler, demangle, get_mangle_prefix
from .analysis.glob_group import GlobPattern
from .analysis.pickle_scanner import PickleScanError, scan_pickle
from .archive.format import (
    EXTERN_MODULES_RECORD,
    IMPORTER_MODULE,
    PYTHON_VERSION_RECORD,
    WRITER_TRAILER_RECORDS,
    resource_record,
)
from .archive.reader import (
    ArchiveSource,
    DirectoryArchiveReader,
    ReadAhead,
    ZipArchiveReader,
    open_archive,
)
from .errors import ArchiveError, MalformedArchiveError, UnsafeGlobalError, first_line
from .file_structure_representation import Directory, directory_from_paths
from .importer import Importer
from .loading import package_finder
from .loading.checked_calls import SafeLoad
from .loading.distributions import normalize_distribution_name, packaged_distributions
from .loading.file_cache import default_cache_dir, extract_records
from .loading.module_tree import ExternNode, ModuleTree, PackageNode
from .loading.package_importlib import PackageImportlib
from .loading.persistent_ids import PersistentLoads
from .loading.resources import PackageResourceReader
from .loading.safe_globals import GlobalPolicy, is_package_reducer
from .loading.script_records import ScriptChecks
from .loading.storages import MapLocation, StorageLoader
from .loading.unpickler import PackageUnpickler, SafeUnpickler

# Python's pickler cannot nest deeper than the recursion limit (1000 by default).
_MAX_PICKLE_DEPTH = 1000
# Loadable even when a package does not list them as extern: old packages may not.
_ALWAYS_EXTERN = frozenset({"builtins"})
# What safe loading lets a pickle's constructor calls allocate beyond 4x the archive's size.
_REBUILD_ALLOWANCE = 64 << 20


class PackageImporter(Importer):
    """Opens a package (a path, a binary file object, or an unzipped folder) for loading.

    The archive's structure is checked before anything is read (a hostile or damaged archive
    raises :class:`~torchpack.errors.MalformedArchiveError`), and every record is checked as it
    is read:

    - ``verify=None`` (default): against the package's integrity manifest if it has one, else
      against the ZIP's CRCs; ``verify=True`` requires the manifest
      (:class:`~torchpack.errors.IntegrityError` names the changed record); ``verify=False``
      skips the manifest and the storages' CRCs.
    - ``safe=True``: :meth:`load_pickle` resolves only globals defined in the package's own
      modules, torch's tensor and storage reconstruction (arguments checked), ``torch.nn``
      module classes, plain containers, torch functions held as values, and
      ``allow_globals`` (``"module.name"`` patterns); anything else raises
      :class:`~torchpack.errors.UnsafeGlobalError`, and every hostile pickle an
      :class:`~torchpack.errors.ArchiveError`. What constructors called by one pickle may
      allocate is bounded by ``max_rebuild_bytes`` (default: 4 times the archive's size plus
      64 MiB). Off by default, as in torch.package. The package's interned modules still run
      when imported: ``torchpack audit`` lists them.
    - ``mmap=True``: tensor storages are mapped from the archive file (copy-on-write) instead
      of read, so loading touches only the pages tensors use; their digests and CRCs are not
      checked, since that would read every byte. Needs a path to a ZIP archive; an unzipped
      folder's storages are mapped file by file either way.
    - ``extract``: whether packaged modules get real files. ``None`` (default): when any
      interned source mentions ``__file__`` (code that reads files beside itself, as
      transformers does), every record outside ``.data/`` is written once into a
      content-addressed folder under ``cache_dir`` (default ``$TORCHPACK_CACHE_DIR``, else
      ``~/.cache/torchpack``), and ``__file__`` / ``__path__`` point there; otherwise they are
      torch.package's ``<torch_package_N>.pkg/mod.py`` names. ``True`` always extracts,
      ``False`` never does. An unzipped package's own files are used, never copied.
    """

    modules: dict[str, Any]

    def __init__(
        self,
        file_or_buffer: ArchiveSource,
        module_allowed: Callable[[str], bool] = lambda module_name: True,
        *,
        safe: bool = False,
        allow_globals: GlobPattern = (),
        verify: bool | None = None,
        mmap: bool = False,
        extract: bool | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        max_rebuild_bytes: int | None = None,
    ) -> None:
        self._archive = open_archive(file_or_buffer, verify, mmap=mmap)
        self._global_policy = GlobalPolicy(allow_globals) if safe else None
        self._max_rebuild_bytes = (
            max_rebuild_bytes
            if max_rebuild_bytes is not None
            else 4 * self._archive.size + _REBUILD_ALLOWANCE
        )
        self._script_checks = ScriptChecks(self._archive, _MAX_PICKLE_DEPTH)
        self.filename = self._archive.name
        self.zip_reader = (
            self._archive.zip_reader
            if isinstance(self._archive, ZipArchiveReader)
            else self._archive
        )
        self._records = self._archive.records()
        self._record_set = frozenset(self._records)
        self.extern_modules = self._read_extern_modules()
        for module_name in self.extern_modules:
            if not module_allowed(module_name):
                raise ImportError(
                    f"package {self.filename} needs the external module '{module_name}', "
                    "but module_allowed disallows it"
                )

        self._tree = ModuleTree(self._records, self.extern_modules)
        self._distributions = packaged_distributions(self)
        self._extract = extract
        self._cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._files_root: str | None = None
        self._files_decided = False
        # How deep in packaged module code this importer is; see _restore_real_names.
        self._exec_depth = 0

        self._mangler = PackageMangler()
        self.modules = {IMPORTER_MODULE: self}
        self._builtins = dict(builtins.__dict__)
        self._builtins["__import__"] = self.__import__
        package_finder.register(self._mangler.prefix, self)
        # Read by torch.jit and torch.fx loaders while load_pickle runs.
        self.storage_context: Any = None
        self.last_map_location: MapLocation = None

    # -- archive contents -----------------------------------------------------------------

    def _read_extern_modules(self) -> list[str]:
        if not self._archive.has_record(EXTERN_MODULES_RECORD):
            raise ArchiveError(
                self.filename, "missing; this is not a torch.package archive", EXTERN_MODULES_RECORD
            )
        try:
            text = self._archive.read(EXTERN_MODULES_RECORD).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedArchiveError(
                self.filename, "is not UTF-8", EXTERN_MODULES_RECORD
            ) from None
        return [line for line in text.splitlines() if line]

    def resource_records(self) -> list[str]:
        return self._records

    def has_record(self, name: str) -> bool:
        return name in self._record_set

    def read_record(self, name: str) -> bytes:
        return self._archive.read(name)

    def record_path(self, name: str) -> str | None:
        """The file that holds record ``name`` in an unzipped package; None in an archive."""
        return self._archive.file_path(name) if self.has_record(name) else None

    # -- public loading API ---------------------------------------------------------------

    def load_binary(self, package: str, resource: str) -> bytes:
        return self._archive.read(resource_record(package, resource))

    def load_text(
        self, package: str, resource: str, encoding: str = "utf-8", errors: str = "strict"
    ) -> str:
        return self.load_binary(package, resource).decode(encoding, errors)

    def load_pickle(self, package: str, resource: str, map_location: MapLocation = None) -> Any:
        """Unpickle ``package/resource``, importing the code it needs from this package."""
        record = resource_record(package, resource)
        data = self._archive.read(record)

        def refuse(problem: str) -> MalformedArchiveError:
            return MalformedArchiveError(self.filename, problem, record)

        scan = None
        if self._global_policy is not None:
            # Before anything in it runs: truncated, corrupt, absurdly deep, or doing what
            # Python's pickler never writes.
            try:
                scan = scan_pickle(data, record, max_depth=_MAX_PICKLE_DEPTH, strict=True)
            except PickleScanError as err:
                raise refuse(str(err)) from None
        storage_context = torch._C.DeserializationStorageContext()
        read_ahead = ReadAhead()
        storages = StorageLoader(
            self._archive.storage_reader(read_ahead), map_location, storage_context, refuse
        )
        persistent_load = PersistentLoads(
            storages,
            lambda func, args: self._call_reducer(func, args, storages, record),
            refuse,
        )
        unpickler: PackageUnpickler
        if scan is None:
            unpickler = PackageUnpickler(self, io.BytesIO(data), record=record)
        else:
            assert self._global_policy is not None
            load = SafeLoad(self.filename, record, self._max_rebuild_bytes)
            unpickler = SafeUnpickler(
                self,
                io.BytesIO(data),
                record=record,
                policy=self._global_policy,
                scan=scan,
                load=load,
            )
        unpickler.persistent_load = persistent_load
        self.storage_context = storage_context
        self.last_map_location = map_location
        try:
            with warnings.catch_warnings():
                # torch's own rebuild functions (quantized tensors) read TypedStorage
                # attributes, which warns; the storages are torch's to retire, not the user's.
                warnings.filterwarnings("ignore", "TypedStorage is deprecated", UserWarning)
                result = unpickler.load()
        except ArchiveError:
            raise
        except (pickle.UnpicklingError, EOFError, struct.error, RecursionError) as err:
            raise refuse(f"the pickle is truncated or corrupt: {err}") from err
        except Exception as err:
            if scan is None:
                raise  # torch.package's behaviour: the error of the code that failed
            # Safe loading promises a torchpack error for every hostile pickle.
            raise refuse(
                f"the pickle's objects cannot be rebuilt: {type(err).__name__}: {first_line(err)}"
            ) from err
        finally:
            read_ahead.close()
            self.storage_context = None
            self.last_map_location = None
        torch._utils._validate_loaded_sparse_tensors()
        return result

    def _call_reducer(self, func: Any, args: tuple, storages: StorageLoader, record: str) -> Any:
        """``func(self, *args)`` for a ``reduce_package`` persistent id, once it is allowed
        and, for TorchScript, once every record torch.jit will read is checked."""
        if self._global_policy is not None and not (
            self._defines(func) or is_package_reducer(func)
        ):
            raise UnsafeGlobalError(
                self.filename,
                record,
                getattr(func, "__qualname__", repr(func)),
                "a __reduce_package__ loader must be the package's own function, or "
                "TorchScript's or torch.fx's",
            )
        if func is getattr(sys.modules.get("torch.jit._script"), "unpackage_script_module", None):
            self._script_checks.check(args[0] if args else None, storages, record)
        return func(self, *args)

    def _defines(self, obj: Any) -> bool:
        """True if ``obj`` is defined in this package's own code (not merely reachable)."""
        try:
            module = getattr(obj, "__module__", None)
        except Exception:  # noqa: BLE001 - a mocked object raises on every attribute
            return False
        return isinstance(module, str) and get_mangle_prefix(module) == self.id()

    def import_module(self, name: str, package: str | None = None) -> types.ModuleType:
        """Load ``name`` from the package (or the environment, if extern) and return it."""
        return self._gcd_import(self._mangler.demangle(name))

    def file_structure(
        self, *, include: GlobPattern = "**", exclude: GlobPattern = ()
    ) -> Directory:
        """The archive's files as a :class:`Directory` tree (``/`` glob filters)."""
        return directory_from_paths(self.filename, self._records, include, exclude)

    def python_version(self) -> str | None:
        if not self._archive.has_record(PYTHON_VERSION_RECORD):
            return None
        return self._archive.read(PYTHON_VERSION_RECORD).decode("utf-8", "replace").strip()

    def id(self) -> str:
        """This importer's mangle prefix, e.g. ``<torch_package_0>``."""
        return self._mangler.prefix

    # -- module loading -------------------------------------------------------------------

    def _gcd_import(self, name: str, package: str | None = None, level: int = 0) -> Any:
        if level > 0:
            name = _resolve_name(name, package, level)
        module = self.modules.get(name)
        if module is not None:
            return module
        parent = name.rpartition(".")[0]
        if parent:
            self._gcd_import(parent)
            if name in self.modules:  # the parent's __init__ imported it
                return self.modules[name]
        # Whether `parent` can have submodules is the archive's business (an extern module
        # like `os` provides `os.path` without being a package).
        return self._load_module(name, parent)

    def _is_packaged(self, name: str) -> bool:
        """True if ``name`` is one of the package's own modules (interned or mocked source)."""
        return self._tree.is_packaged(name)

    def _load_module(self, name: str, parent: str) -> Any:
        node = self._tree.find(name)
        if node is None and name in _ALWAYS_EXTERN:
            node = ExternNode()
        if node is None:
            raise ModuleNotFoundError(
                f"No module named '{name}' in the self-contained package {self.filename!r}, "
                f"and it is not one of its extern modules {self.extern_modules}",
                name=name,
            )
        if isinstance(node, ExternNode):
            module = self.modules[name] = (
                PackageImportlib(self) if name == "importlib" else importlib.import_module(name)
            )
            if parent:
                # So that `from parent import name` finds it on a placeholder parent package.
                setattr(self.modules[parent], name.rpartition(".")[2], module)
            return module
        is_package = isinstance(node, PackageNode)
        return self._make_module(name, node.source_record, is_package, parent)

    def _make_module(
        self, name: str, source_record: str | None, is_package: bool, parent: str
    ) -> types.ModuleType:
        files_root = self._ensure_files_folder()
        if files_root is None:
            file_name = self._mangler.mangle(source_record) if source_record else None
            spec = importlib.machinery.ModuleSpec(
                name, self, origin="<package_importer>", is_package=is_package
            )  # type: ignore[arg-type]
        else:
            file_name = (
                os.path.join(files_root, *source_record.split("/")) if source_record else None
            )
            spec = importlib.machinery.ModuleSpec(
                name, self, origin=file_name, is_package=is_package
            )  # type: ignore[arg-type]
            spec.has_location = file_name is not None
            if is_package:
                spec.submodule_search_locations = [os.path.join(files_root, *name.split("."))]
        module = importlib.util.module_from_spec(spec)
        module.__name__ = self._mangler.mangle(name)
        namespace = module.__dict__
        namespace.update(
            __file__=file_name,
            __cached__=None,
            __builtins__=self._builtins,
            __torch_package__=True,
        )
        self.modules[name] = module
        # Under its mangled name only, which no real module can have. Much of Python looks
        # classes' modules up there (dataclasses with string annotations, typing.get_type_hints,
        # inspect.getfile, sympy's @public); the real name stays untouched.
        sys.modules[module.__name__] = module
        parent_module = self.modules.get(parent) if parent else None
        child_name = name.rpartition(".")[2]
        # Installed before running the code, so circular `from parent import child` works.
        if parent_module is not None:
            setattr(parent_module, child_name, module)
        if source_record is not None:
            real_names = self._real_names_in_use() if self._exec_depth == 0 else None
            self._exec_depth += 1
            try:
                source = _normalize_line_endings(self._archive.read(source_record))
                text_lines = source.decode("utf-8", errors="replace").splitlines(keepends=True)
                linecache.cache[file_name] = (len(source), None, text_lines, file_name)
                exec(self._compile(source, source_record, file_name), namespace)
            except BaseException:
                del self.modules[name]
                sys.modules.pop(module.__name__, None)
                if parent_module is not None and getattr(parent_module, child_name, None) is module:
                    delattr(parent_module, child_name)
                raise
            finally:
                self._exec_depth -= 1
                if real_names is not None:
                    self._restore_real_names(real_names)
            replacement = sys.modules.get(module.__name__)
            if replacement is not None and replacement is not module:
                # The module put something else in its place (transformers' and diffusers'
                # `sys.modules[__name__] = _LazyModule(...)`): as in Python's own import,
                # importing it gives what sys.modules holds once its code has run.
                self.modules[name] = replacement
                if parent_module is not None:
                    setattr(parent_module, child_name, replacement)
                return replacement
        return module

    def _real_names_in_use(self) -> dict[str, Any]:
        """What ``sys.modules`` holds under the real names of the package's own modules."""
        tops = self._tree.top_level_names
        return {name: module for name, module in sys.modules.items() if name.split(".")[0] in tops}

    def _restore_real_names(self, before: dict[str, Any]) -> None:
        """Give back the real names the package's code took while it ran.

        A package's file run under its real name (transformers runs its own ``__init__.py``
        by path) gets its imports registered by Python under real names, and registers
        itself and aliases there; once the package's code has finished, those names are the
        environment's again, as they were, so that another package or the user's own
        ``import`` never gets this package's modules.
        """
        tops = self._tree.top_level_names
        for name in [name for name in sys.modules if name.split(".")[0] in tops]:
            if name not in before:
                del sys.modules[name]
        for name, module in before.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module

    def _ensure_files_folder(self) -> str | None:
        """The folder where this package's records are files, or None (see ``extract``).

        Decided once, when the first packaged module is made, so that every module of the
        package agrees on where its files are.
        """
        if not self._files_decided:
            self._files_decided = True
            self._files_root = self._find_files_folder()
        return self._files_root

    def files_folder(self) -> str | None:
        """The folder where this package's sources and resources are files, once its first
        module is loaded: the extraction folder, or the unzipped package's own; None when
        its modules have torch.package's ``<torch_package_N>`` file names."""
        return self._files_root

    def provides(self, name: str) -> bool:
        """Whether ``name`` is one of the package's own modules (source or placeholder)."""
        node = self._tree.find(name)
        return node is not None and not isinstance(node, ExternNode)

    def declares(self, name: str) -> bool:
        """Whether the package holds ``name`` or lists it as extern."""
        return name in self.modules or self._tree.find(name) is not None

    def demangle(self, name: str) -> str:
        return self._mangler.demangle(name)

    def _find_files_folder(self) -> str | None:
        if self._extract is False:
            return None
        records = [
            record
            for record in self._records
            if not record.startswith(".data/") and record not in WRITER_TRAILER_RECORDS
        ]
        if self._extract is None and not any(
            record.endswith(".py") and b"__file__" in self._archive.read(record)
            for record in records
        ):
            return None
        if isinstance(self._archive, DirectoryArchiveReader):
            return os.path.abspath(self._archive.name)
        try:
            return str(extract_records(self.filename, records, self._archive.read, self._cache_dir))
        except OSError as err:
            problem = (
                f"cannot write its files into the cache folder {self._cache_dir} ({err}); "
                "pass PackageImporter(..., cache_dir=...) or set TORCHPACK_CACHE_DIR to a "
                "writable folder"
            )
            if self._extract:
                raise ArchiveError(self.filename, problem) from err
            warnings.warn(
                f"package {self.filename}: its code reads files beside itself, but it "
                f"{problem}; its modules get no real __file__",
                stacklevel=5,
            )
            return None

    def _compile(self, source: bytes, source_record: str, file_name: str) -> types.CodeType:
        try:
            return compile(source, file_name, "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
            # SyntaxError also covers source that is not valid UTF-8 (or its declared coding);
            # the compiler gives up on pathologically nested code with the last two.
            raise MalformedArchiveError(
                self.filename, f"interned source does not compile: {first_line(err)}", source_record
            ) from err

    def __import__(
        self,
        name: str,
        globals: dict[str, Any] | None = None,
        locals: dict[str, Any] | None = None,
        fromlist: tuple[str, ...] = (),
        level: int = 0,
    ) -> Any:
        package = _calc___package__(globals) if level > 0 else None
        module = self._gcd_import(name, package, level)
        if fromlist:
            return self._handle_fromlist(module, fromlist)
        if level == 0:
            return self._gcd_import(name.partition(".")[0])
        if not name:
            return module
        # `from . import a.b` style: return the top of what `name` named, relative to package.
        module_name = demangle(module.__name__)
        cut = len(name) - len(name.partition(".")[0])
        return self.modules[module_name[: len(module_name) - cut]]

    def _handle_fromlist(
        self, module: Any, fromlist: Iterable[str], recursive: bool = False
    ) -> Any:
        if not hasattr(module, "__path__"):
            return module
        module_name = demangle(module.__name__)
        for item in fromlist:
            if not isinstance(item, str):
                raise TypeError(
                    f"Item in {module_name}.__all__ must be str, not {type(item).__name__}"
                )
            if item == "*":
                if not recursive and hasattr(module, "__all__"):
                    self._handle_fromlist(module, module.__all__, recursive=True)
            elif not hasattr(module, item):
                submodule = f"{module_name}.{item}"
                try:
                    self._gcd_import(submodule)
                except ModuleNotFoundError as err:
                    # `from pkg import name` where name is neither attribute nor submodule:
                    # Python reports that as an ImportError at the import statement.
                    if err.name == submodule:
                        continue
                    raise
        return module

    # -- loader protocol (used by linecache, inspect and importlib.resources) -------------

    def get_source(self, module_name: str) -> str | None:
        name = demangle(module_name)
        self.import_module(name)
        node = self._tree.find(name)
        source_record = getattr(node, "source_record", None)
        if source_record is None:
            return None
        return self._archive.read(source_record).decode("utf-8")

    def find_distributions(self, name: str | None) -> list[Distribution]:
        """The distributions this package carries (all, or the one called ``name``), for
        ``importlib.metadata`` calls made by its code."""
        if name is None:
            return list(self._distributions.values())
        found = self._distributions.get(normalize_distribution_name(name))
        return [found] if found is not None else []

    def get_resource_reader(self, fullname: str) -> PackageResourceReader | None:
        """The resources of package ``fullname``; None unless it is a package of this archive."""
        name = demangle(fullname)
        try:
            module = self.import_module(name)
        except ImportError:
            return None
        if not hasattr(module, "__path__") or getattr(module, "__loader__", None) is not self:
            return None
        return PackageResourceReader(self, name.replace(".", "/"))

    def __repr__(self) -> str:
        return f"PackageImporter({self.filename!r}, id={self.id()})"
