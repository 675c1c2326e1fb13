"""PackageImporter: isolated module worlds, mangled names, resources, tracebacks, file tree."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import linecache
import re
import sys
import textwrap
import traceback
import types
import warnings

import pytest
import torch
import torch.package

import torchpack
from torchpack import Directory, PackageExporter, PackageImporter

MANGLED_PREFIX = r"<torch_package_\d+>"

SOURCES = {
    "ipkg/__init__.py": """
        from .core import Thing
    """,
    "ipkg/core.py": """
        import torch

        from . import util
        from .sub import deep
        from .sub.deep import answer


        class Thing:
            def __init__(self, value):
                self.value = value
                self.weights = torch.arange(3.0)

            def describe(self):
                return f"Thing({self.value})"


        def read_with_importer():
            import torch_package_importer

            return torch_package_importer.load_text("ipkg", "a.txt")


        def the_importer():
            import torch_package_importer

            return torch_package_importer


        def fail():
            value = util.VALUE
            raise ValueError(f"packaged failure {value}")


        def in_package():
            return "__torch_package__" in globals()


        def deep_answer():
            return deep.answer(), answer()
    """,
    "ipkg/util.py": "VALUE = 7\n",
    "ipkg/sub/__init__.py": """
        from .deep import answer
    """,
    "ipkg/sub/deep.py": """
        from .. import util
        from ..util import VALUE


        def answer():
            return util.VALUE * 6 + VALUE - VALUE
    """,
    "ipkg/resources_user.py": """
        import importlib.resources

        import ipkg
        import ipkg.sub


        def read_all():
            files = importlib.resources.files(ipkg)
            return {
                "read_text": importlib.resources.read_text(ipkg, "a.txt"),
                "read_binary": importlib.resources.read_binary(ipkg, "b.bin"),
                "joinpath": files.joinpath("a.txt").read_text(),
                "sub": sorted(entry.name for entry in (files / "sub").iterdir()),
                "a_is_file": (files / "a.txt").is_file(),
                "a_is_dir": (files / "a.txt").is_dir(),
                "sub_is_dir": (files / "sub").is_dir(),
                "sub_is_file": (files / "sub").is_file(),
                "sub_text": importlib.resources.files(ipkg.sub).joinpath("c.txt").read_text(),
            }
    """,
    "ipkg/escape.py": """
        def use_outside():
            import outside_only

            return outside_only.X
    """,
    "outside_only.py": "X = 1\n",
    "ipkg/cycle_a.py": """
        from . import cycle_b

        NAME = "a"


        def partner():
            return cycle_b.NAME
    """,
    "ipkg/cycle_b.py": """
        from . import cycle_a

        NAME = "b"


        def partner():
            return cycle_a.NAME


        def dynamic():
            return __import__("ipkg.util", fromlist=["VALUE"]).VALUE


        def star():
            namespace = {}
            exec("from ipkg.starred import *", {"__builtins__": __builtins__}, namespace)
            return sorted(namespace)


        def dotted():
            import ipkg.sub.deep

            return ipkg.sub.deep.answer()
    """,
    "ipkg/starred.py": """
        __all__ = ["PUBLIC"]
        PUBLIC = 1
        PRIVATE = 2
    """,
    "ipkg/broken.py": """
        STARTED = True
        raise RuntimeError("broken at import")
    """,
}


@pytest.fixture
def package(tmp_path, source_tree):
    source_tree(SOURCES)
    ipkg = importlib.import_module("ipkg")
    path = tmp_path / "ipkg_package.pt"
    with PackageExporter(path) as exporter:
        exporter.intern("ipkg.**")
        exporter.save_pickle("obj", "thing.pkl", ipkg.Thing(3))
        exporter.save_text("ipkg", "a.txt", "hello")
        exporter.save_binary("ipkg", "b.bin", b"\x00\xff\x10")
        exporter.save_text("ipkg.sub", "c.txt", "sub text")
        exporter.save_module("ipkg")
        exporter.save_module("ipkg.sub")
        exporter.save_module("ipkg.resources_user")
        exporter.save_module("ipkg.cycle_a")
        exporter.save_module("ipkg.starred")
        exporter.save_source_string("ipkg.broken", textwrap.dedent(SOURCES["ipkg/broken.py"]))
        # Its import of outside_only is hidden from the exporter on purpose.
        exporter.save_module("ipkg.escape", dependencies=False)
    return path


# -- isolation ------------------------------------------------------------------------------


def test_two_importers_give_distinct_modules_and_classes(package):
    first, second = PackageImporter(package), PackageImporter(package)
    core_1, core_2 = first.import_module("ipkg.core"), second.import_module("ipkg.core")
    assert core_1 is not core_2
    assert core_1.Thing is not core_2.Thing
    thing_1 = first.load_pickle("obj", "thing.pkl")
    thing_2 = second.load_pickle("obj", "thing.pkl")
    assert isinstance(thing_1, core_1.Thing)
    assert isinstance(thing_2, core_2.Thing)
    assert not isinstance(thing_1, core_2.Thing)
    assert not isinstance(thing_2, core_1.Thing)
    assert thing_1.describe() == thing_2.describe() == "Thing(3)"
    assert torch.equal(thing_1.weights, thing_2.weights)
    # Neither is the class from the environment.
    import ipkg

    assert not isinstance(thing_1, ipkg.Thing)
    assert first.import_module("ipkg.core") is core_1


def test_names_carry_the_importer_prefix(package):
    importer = PackageImporter(package)
    prefix = importer.id()
    assert re.fullmatch(MANGLED_PREFIX, prefix)
    core = importer.import_module("ipkg.core")
    assert re.fullmatch(MANGLED_PREFIX + r"\.ipkg\.core", core.__name__)
    assert core.__name__ == f"{prefix}.ipkg.core"
    assert re.fullmatch(MANGLED_PREFIX + r"\.ipkg/core\.py", core.__file__)
    assert core.__file__ == f"{prefix}.ipkg/core.py"
    sub = importer.import_module("ipkg.sub")
    assert sub.__file__ == f"{prefix}.ipkg/sub/__init__.py"
    thing = importer.load_pickle("obj", "thing.pkl")
    assert type(thing).__module__ == f"{prefix}.ipkg.core"
    assert PackageImporter(package).id() != prefix


def test_is_from_package(package):
    importer = PackageImporter(package)
    core = importer.import_module("ipkg.core")
    thing = importer.load_pickle("obj", "thing.pkl")
    assert torchpack.is_from_package(core)
    assert torchpack.is_from_package(importer.import_module("ipkg"))
    assert torchpack.is_from_package(thing)
    assert torchpack.is_from_package(core.Thing(1))

    import ipkg

    assert not torchpack.is_from_package(ipkg)
    assert not torchpack.is_from_package(ipkg.Thing(1))
    assert not torchpack.is_from_package(torch)
    assert not torchpack.is_from_package(thing.weights)  # torch is extern
    assert not torchpack.is_from_package(importer.load_text("ipkg", "a.txt"))
    assert not torchpack.is_from_package(importer.import_module("torch"))


def test_packaged_modules_have_torch_package_attribute(package):
    importer = PackageImporter(package)
    for name in ["ipkg", "ipkg.core", "ipkg.util", "ipkg.sub", "ipkg.sub.deep"]:
        assert importer.import_module(name).__torch_package__ is True, name
    assert importer.import_module("ipkg.core").in_package()
    import ipkg.core

    assert not hasattr(ipkg.core, "__torch_package__")
    assert not ipkg.core.in_package()


def test_packaged_code_can_import_its_importer(package):
    importer = PackageImporter(package)
    core = importer.import_module("ipkg.core")
    assert core.the_importer() is importer
    assert core.read_with_importer() == "hello"
    assert importer.import_module("torch_package_importer") is importer


def _load_everything(package):
    importer = PackageImporter(package)
    core = importer.import_module("ipkg.core")
    importer.import_module("ipkg.sub.deep")
    importer.load_pickle("obj", "thing.pkl")
    core.deep_answer()
    return importer


def test_packaged_modules_leave_the_environment_modules_alone(package):
    before = dict(sys.modules)
    _load_everything(package)
    added = set(sys.modules) - set(before)
    assert not [name for name in added if name.startswith("ipkg")]
    assert all(sys.modules.get(name) is module for name, module in before.items())


def test_packaged_modules_are_in_sys_modules_only_under_mangled_names(package):
    """Unlike torch.package, loaded modules are registered under their mangled names."""
    importer = _load_everything(package)
    core = importer.modules["ipkg.core"]
    assert sys.modules[core.__name__] is core
    assert core.__name__.startswith(importer.id() + ".")
    packaged = {
        name
        for name, module in list(sys.modules.items())
        if getattr(module, "__torch_package__", False) is True
    }
    assert packaged and all(name.startswith("<torch_package_") for name in packaged)


def test_dataclass_with_string_annotations_loads(tmp_path, source_tree):
    # dataclasses resolves string annotations through sys.modules[cls.__module__]; this is
    # what fails under torch.package, where packaged modules are missing from sys.modules.
    source_tree(
        {
            "dc_pkg/__init__.py": "",
            "dc_pkg/config.py": """
                from __future__ import annotations

                import dataclasses
                import typing


                @dataclasses.dataclass
                class Config:
                    width: int
                    tags: list[str] = dataclasses.field(default_factory=list)


                def hints():
                    return typing.get_type_hints(Config)
            """,
        }
    )
    import dc_pkg.config

    target = tmp_path / "dc.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("dc_pkg.**")
        exporter.save_pickle("cfg", "cfg.pkl", dc_pkg.config.Config(3, ["a"]))
    importer = PackageImporter(target)
    config = importer.load_pickle("cfg", "cfg.pkl")
    assert (config.width, config.tags) == (3, ["a"])
    assert type(config).__module__ == f"{importer.id()}.dc_pkg.config"
    assert importer.import_module("dc_pkg.config").hints() == {"width": int, "tags": list[str]}


def test_relative_imports(package):
    importer = PackageImporter(package)
    core = importer.import_module("ipkg.core")
    assert core.deep_answer() == (42, 42)
    util = importer.import_module("ipkg.util")
    assert core.util is util
    deep = importer.import_module("ipkg.sub.deep")
    assert deep.util is util
    assert core.deep is deep
    assert importer.import_module("ipkg.sub").answer is deep.answer


def test_circular_and_dynamic_imports(package):
    importer = PackageImporter(package)
    cycle_a = importer.import_module("ipkg.cycle_a")
    cycle_b = importer.import_module("ipkg.cycle_b")
    assert cycle_a.cycle_b is cycle_b and cycle_b.cycle_a is cycle_a
    assert (cycle_a.partner(), cycle_b.partner()) == ("b", "a")
    assert cycle_b.dynamic() == 7
    assert cycle_b.star() == ["PUBLIC"]
    assert cycle_b.dotted() == 42
    assert cycle_b.__builtins__["__import__"] is not __import__


def test_module_failing_at_import_is_not_left_half_imported(package):
    importer = PackageImporter(package)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="broken at import"):
            importer.import_module("ipkg.broken")
    assert not hasattr(importer.import_module("ipkg"), "broken")


def test_importing_a_module_missing_from_the_package_fails(package):
    import outside_only  # exists in the environment...

    assert outside_only.X == 1
    importer = PackageImporter(package)
    escape = importer.import_module("ipkg.escape")
    with pytest.raises(ModuleNotFoundError) as info:
        escape.use_outside()  # ...but not in the package, and it is not extern
    assert info.value.name == "outside_only"
    assert "outside_only" in str(info.value)
    assert str(package) in str(info.value)
    with pytest.raises(ModuleNotFoundError):
        importer.import_module("outside_only")


# -- importlib.resources --------------------------------------------------------------------


EXPECTED_RESOURCES = {
    "read_text": "hello",
    "read_binary": b"\x00\xff\x10",
    "joinpath": "hello",
    "sub": ["__init__.py", "c.txt", "deep.py"],
    "a_is_file": True,
    "a_is_dir": False,
    "sub_is_dir": True,
    "sub_is_file": False,
    "sub_text": "sub text",
}


def test_importlib_resources_from_packaged_code(package):
    importer = PackageImporter(package)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # legacy read_text on 3.11
        found = importer.import_module("ipkg.resources_user").read_all()
    assert found == EXPECTED_RESOURCES


def test_importlib_resources_on_packaged_modules(package):
    importer = PackageImporter(package)
    ipkg = importer.import_module("ipkg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert importlib.resources.read_text(ipkg, "a.txt") == "hello"
        assert importlib.resources.read_binary(ipkg, "b.bin") == b"\x00\xff\x10"
    files = importlib.resources.files(ipkg)
    assert files.joinpath("a.txt").read_text() == "hello"
    assert (files / "b.bin").read_bytes() == b"\x00\xff\x10"
    assert sorted(entry.name for entry in (files / "sub").iterdir()) == EXPECTED_RESOURCES["sub"]
    assert (files / "a.txt").is_file() and not (files / "a.txt").is_dir()
    assert (files / "sub").is_dir() and not (files / "sub").is_file()
    assert not (files / "missing.txt").is_file()
    with pytest.raises(FileNotFoundError):
        (files / "missing.txt").read_text()
    sub = importer.import_module("ipkg.sub")
    assert importlib.resources.files(sub).joinpath("c.txt").read_text() == "sub text"


def test_loader_resource_reader(package):
    importer = PackageImporter(package)
    ipkg = importer.import_module("ipkg")
    assert ipkg.__loader__ is importer
    assert ipkg.__spec__.loader is importer
    reader = ipkg.__loader__.get_resource_reader(ipkg.__name__)
    assert reader is not None
    with reader.open_resource("a.txt") as f:
        assert f.read() == b"hello"
    assert reader.is_resource("a.txt")
    assert not reader.is_resource("sub")
    contents = set(reader.contents())
    assert {"a.txt", "b.bin", "sub", "__init__.py", "core.py"} <= contents
    assert reader.files().joinpath("sub", "c.txt").read_text() == "sub text"


# -- tracebacks and source ------------------------------------------------------------------


def test_traceback_shows_packaged_source(package):
    importer = PackageImporter(package)
    core = importer.import_module("ipkg.core")
    with pytest.raises(ValueError, match="packaged failure 7"):
        core.fail()
    try:
        core.fail()
    except ValueError:
        text = traceback.format_exc()
        frames = traceback.extract_tb(sys.exc_info()[2])
    assert 'raise ValueError(f"packaged failure {value}")' in text
    assert f'File "{core.__file__}"' in text
    last = frames[-1]
    assert last.filename == core.__file__
    assert last.name == "fail"
    assert linecache.getline(last.filename, last.lineno).strip() == (
        'raise ValueError(f"packaged failure {value}")'
    )


def test_inspect_getsource_of_packaged_functions(package):
    importer = PackageImporter(package)
    core = importer.import_module("ipkg.core")
    source = inspect.getsource(core.fail)
    assert source.startswith("def fail():")
    assert 'raise ValueError(f"packaged failure {value}")' in source
    assert inspect.getsource(core.Thing.describe).strip().startswith("def describe(self):")
    deep = importer.import_module("ipkg.sub.deep")
    assert "util.VALUE * 6" in inspect.getsource(deep.answer)
    assert inspect.getsource(deep) == importer.load_text("ipkg.sub", "deep.py")
    # Classes are found through sys.modules[cls.__module__], which torch.package lacks.
    assert inspect.getsource(core.Thing).startswith("class Thing")
    assert inspect.getfile(core.Thing) == core.__file__


# -- file_structure -------------------------------------------------------------------------


def test_file_structure_and_has_file(package):
    importer = PackageImporter(package)
    tree = importer.file_structure()
    assert isinstance(tree, Directory)
    assert tree.is_dir
    for path in [
        "ipkg/core.py",
        "ipkg/a.txt",
        "ipkg/sub/c.txt",
        "ipkg/sub/deep.py",
        "obj/thing.pkl",
        ".data/version",
        ".data/extern_modules",
        "ipkg",
        "ipkg/sub",
    ]:
        assert tree.has_file(path), path
    assert not tree.has_file("ipkg/missing.py")
    assert not tree.has_file("ipkg/core.py/deeper")
    assert not tree.has_file("outside_only.py")

    filtered = importer.file_structure(include="ipkg/**", exclude="**/*.txt")
    assert filtered.has_file("ipkg/core.py")
    assert filtered.has_file("ipkg/b.bin")
    assert not filtered.has_file("ipkg/a.txt")
    assert not filtered.has_file("ipkg/sub/c.txt")
    assert not filtered.has_file("obj/thing.pkl")
    assert not filtered.has_file(".data/version")

    listed = importer.file_structure(include=["**/*.pkl", "**/deep.py"])
    assert listed.has_file("obj/thing.pkl")
    assert listed.has_file("ipkg/sub/deep.py")
    assert not listed.has_file("ipkg/core.py")


def _without_root(text: str) -> str:
    first, _, rest = text.partition("\n")
    assert first.startswith("─── ")
    return rest


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"include": "ipkg/**"},
        {"include": "**", "exclude": ["**/*.py", ".data/**"]},
        {"include": ["**/*.pkl", "**/sub/**"]},
    ],
    ids=["all", "include", "exclude", "several"],
)
def test_file_structure_str_matches_torch_package(package, filters):
    ours = str(PackageImporter(package).file_structure(**filters))
    theirs = str(torch.package.PackageImporter(str(package)).file_structure(**filters))
    assert _without_root(ours) == _without_root(theirs)
    assert ours.splitlines()[0] == f"─── {package}"
    assert "├── " in ours or "└── " in ours


def test_file_structure_lists_the_integrity_manifest(tmp_path):
    """The one difference from a torch.package archive of the same contents: the manifest."""
    trees = []
    for exporter_class in (PackageExporter, torch.package.PackageExporter):
        path = tmp_path / f"{exporter_class.__module__}.pt"
        with exporter_class(str(path)) as exporter:
            exporter.save_text("notes", "a.txt", "a")
        trees.append(PackageImporter(path).file_structure(include=".data/*"))
    ours, theirs = trees
    assert ours.has_file(".data/manifest.blake3")
    assert not theirs.has_file(".data/manifest.blake3")
    ours.children[".data"].children.pop("manifest.blake3")
    assert _without_root(str(ours)) == _without_root(str(theirs))


def test_file_structure_str_renders_a_tree(package):
    text = str(PackageImporter(package).file_structure(include="ipkg/sub/**"))
    assert text == (
        f"─── {package}\n"
        "    └── ipkg\n"
        "        └── sub\n"
        "            ├── __init__.py\n"
        "            ├── c.txt\n"
        "            └── deep.py\n"
    )


def test_module_objects_are_real_modules(package):
    importer = PackageImporter(package)
    core = importer.import_module("ipkg.core")
    assert isinstance(core, types.ModuleType)
    assert core.__spec__.name == "ipkg.core"
    assert core.__package__ == "ipkg"
    assert importer.import_module("ipkg").__path__ is not None
    assert not hasattr(importer.import_module("ipkg.util"), "__path__")


def test_module_and_resource_folder_of_the_same_name(tmp_path, source_tree):
    # `model.py` and resources saved under package "model" (model/model.pkl) share a name:
    # as in Python, the module wins over a folder without __init__.py, in any record order.
    source_tree({"model.py": "class Net:\n    size = 3\n"})
    import model

    target = tmp_path / "same_name.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("model")
        exporter.save_pickle("model", "model.pkl", model.Net())
        exporter.save_text("model", "notes.txt", "hello")
    importer = PackageImporter(target)
    assert importer.import_module("model").Net.size == 3
    assert type(importer.load_pickle("model", "model.pkl")).__name__ == "Net"
    assert importer.load_text("model", "notes.txt") == "hello"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.package.PackageImporter(str(target))
        assert theirs.import_module("model").Net.size == 3


def test_package_folder_beats_module_of_the_same_name(tmp_path):
    target = tmp_path / "pkg_wins.pt"
    with PackageExporter(target) as exporter:
        # Written as a plain resource: the exporter itself never writes both forms.
        exporter.save_text("", "thing.py", "KIND = 'module'\n")
        exporter.save_source_string("thing", "KIND = 'package'\n", is_package=True)
        exporter.save_source_string("thing.part", "KIND = 'submodule'\n")
    importer = PackageImporter(target)
    assert {"thing.py", "thing/__init__.py"} <= set(importer.resource_records())
    assert importer.import_module("thing").KIND == "package"
    assert importer.import_module("thing.part").KIND == "submodule"


def test_prefixes_never_clash_with_torch_package_importers(package):
    # Both number their importers; in one process, each must get a prefix of its own.
    prefixes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            prefixes.append(PackageImporter(package).id())
            prefixes.append(torch.package.PackageImporter(str(package))._mangler.parent_name())
    assert len(set(prefixes)) == len(prefixes)
