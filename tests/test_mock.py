"""Mocked modules: stubs in the archive whose names import fine and raise when used."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import read_text_record, records_of

from torchpack import PackageExporter, PackageImporter, PackagingError
from torchpack._mock import MOCKED_MODULE_SOURCE

MOCK_TREE = {
    "mocked_mod.py": (
        "import unpatterned_mod  # never scanned: the module is mocked\n"
        "class Thing:\n"
        "    attr = 1\n"
    ),
    "unpatterned_mod.py": "",
    "mocked_pkg/__init__.py": "VALUE = 1\n",
    "mocked_pkg/sub.py": "SUB = 2\n",
    "consumer.py": (
        "from mocked_mod import Thing\n"
        "import mocked_pkg\n"
        "\n"
        "\n"
        "def make():\n"
        "    return Thing()\n"
        "\n"
        "\n"
        "def real():\n"
        "    return 'real'\n"
    ),
}


@pytest.fixture
def mocked_archive(tmp_path: Path, source_tree) -> Path:
    source_tree(MOCK_TREE)
    target = tmp_path / "mocked.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("consumer")
        exporter.mock(["mocked_mod", "mocked_pkg.**"])
        exporter.save_module("consumer")
    return target


def test_archive_holds_mock_support_and_stubs(mocked_archive: Path) -> None:
    records = records_of(mocked_archive)
    assert {"_mock.py", "mocked_mod.py", "consumer.py"} <= records
    assert read_text_record(mocked_archive, "mocked_mod.py") == MOCKED_MODULE_SOURCE
    # The real source of mocked modules is not in the package.
    assert "class Thing" not in read_text_record(mocked_archive, "mocked_mod.py")
    importer = PackageImporter(mocked_archive)
    assert "mocked_mod" not in importer.extern_modules
    assert "unpatterned_mod" not in importer.extern_modules
    assert "unpatterned_mod.py" not in records


def test_mocked_package_is_written_as_package(mocked_archive: Path) -> None:
    records = records_of(mocked_archive)
    assert "mocked_pkg/__init__.py" in records
    assert "mocked_pkg.py" not in records
    assert read_text_record(mocked_archive, "mocked_pkg/__init__.py") == MOCKED_MODULE_SOURCE
    mocked_pkg = PackageImporter(mocked_archive).import_module("mocked_pkg")
    assert isinstance(mocked_pkg.__path__, list)


def test_packaged_code_imports_mocked_names(mocked_archive: Path) -> None:
    importer = PackageImporter(mocked_archive)
    consumer = importer.import_module("consumer")
    assert consumer.real() == "real"
    assert "mocked_mod.Thing" in repr(consumer.Thing)
    mocked_mod = importer.import_module("mocked_mod")
    assert mocked_mod.__name__ == f"{importer.id()}.mocked_mod"


@pytest.mark.parametrize(
    ("use", "method"),
    [
        (lambda thing: thing(), "__call__"),
        (lambda thing: thing.attr, "__getattr__"),
        (lambda thing: thing + 1, "__add__"),
        (lambda thing: 1 + thing, "__radd__"),
        (lambda thing: thing[0], "__getitem__"),
        (lambda thing: len(thing), "__len__"),
        (lambda thing: bool(thing), "__bool__"),
        (lambda thing: iter(thing), "__iter__"),
        (lambda thing: thing == 1, "__eq__"),
        (lambda thing: int(thing), "__int__"),
    ],
    ids=["call", "attr", "add", "radd", "getitem", "len", "bool", "iter", "eq", "int"],
)
def test_using_a_mocked_name_raises(mocked_archive: Path, use, method: str) -> None:
    consumer = PackageImporter(mocked_archive).import_module("consumer")
    with pytest.raises(NotImplementedError, match="mocked_mod.Thing") as info:
        use(consumer.Thing)
    assert method in str(info.value)


def test_calling_packaged_code_that_uses_a_mock_raises(mocked_archive: Path) -> None:
    consumer = PackageImporter(mocked_archive).import_module("consumer")
    with pytest.raises(NotImplementedError, match="mocked_mod.Thing"):
        consumer.make()


def test_names_of_a_mocked_package_raise(mocked_archive: Path) -> None:
    mocked_pkg = PackageImporter(mocked_archive).import_module("mocked_pkg")
    with pytest.raises(NotImplementedError, match="mocked_pkg.VALUE"):
        mocked_pkg.VALUE + 1


def test_pickling_an_object_from_a_mocked_module_fails(tmp_path: Path, source_tree) -> None:
    source_tree(MOCK_TREE)
    import mocked_mod

    target = tmp_path / "out.pt"
    with pytest.raises(PackagingError) as info:
        with PackageExporter(target) as exporter:
            exporter.mock("mocked_mod")
            exporter.save_pickle("model", "model.pkl", {"thing": mocked_mod.Thing()})
    assert set(info.value.broken_modules) == {"mocked_mod"}
    assert "mock" in info.value.broken_modules["mocked_mod"].lower()
    message = str(info.value)
    assert "mocked_mod" in message
    assert "resource - `model.pkl` in package `model`" in message
    assert not target.exists()


def test_pickling_a_mocked_class_itself_fails(tmp_path: Path, source_tree) -> None:
    source_tree(MOCK_TREE)
    import mocked_mod

    target = tmp_path / "out.pt"
    with pytest.raises(PackagingError, match="`classes.pkl` in package `data`") as info:
        with PackageExporter(target) as exporter:
            exporter.mock("mocked_*")
            exporter.save_pickle("data", "classes.pkl", [mocked_mod.Thing], pickle_protocol=4)
    assert set(info.value.broken_modules) == {"mocked_mod"}
    assert not target.exists()


def test_imports_of_modules_missing_here_are_not_mocked(tmp_path: Path, source_tree) -> None:
    # As in torch.package, an import of a module that does not exist where the package is
    # made is skipped, even under mock("**"): optional imports keep failing with ImportError
    # inside the package, as they do here, instead of receiving a stub that breaks them.
    source_tree(
        {
            "ghost_user.py": (
                "try:\n"
                "    import ghost_module_xyz\n"
                "except ImportError:\n"
                "    ghost_module_xyz = None\n"
                "\n"
                "\n"
                "def has_ghost():\n"
                "    return ghost_module_xyz is not None\n"
            )
        }
    )
    target = tmp_path / "ghost.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("ghost_user")
        exporter.mock("**")
        exporter.save_module("ghost_user")

    assert "ghost_module_xyz.py" not in records_of(target)
    ghost_user = PackageImporter(target).import_module("ghost_user")
    assert ghost_user.has_ghost() is False


def test_mocking_a_missing_module_via_add_dependency(tmp_path: Path) -> None:
    target = tmp_path / "ghost.pt"
    with PackageExporter(target) as exporter:
        exporter.mock("ghost_module_abc.**")
        exporter.add_dependency("ghost_module_abc.inner")
        exporter.save_source_string(
            "ghost_user2", "from ghost_module_abc.inner import Spirit\nOK = True\n"
        )
    assert "ghost_module_abc/inner.py" in records_of(target)
    module = PackageImporter(target).import_module("ghost_user2")
    assert module.OK is True
    with pytest.raises(NotImplementedError, match="ghost_module_abc.inner.Spirit"):
        _ = module.Spirit.anything


def test_mocked_module_alongside_tensors(tmp_path: Path, source_tree) -> None:
    source_tree(MOCK_TREE)
    target = tmp_path / "mixed.pt"
    weights = torch.randn(3, 3)
    with PackageExporter(target) as exporter:
        exporter.intern("consumer")
        exporter.mock(["mocked_mod", "mocked_pkg"])
        exporter.save_module("consumer")
        exporter.save_pickle("model", "weights.pkl", {"w": weights})
    importer = PackageImporter(target)
    assert torch.equal(importer.load_pickle("model", "weights.pkl")["w"], weights)
    assert importer.import_module("consumer").real() == "real"


def test_torch_package_loads_torchpack_mocks(mocked_archive: Path) -> None:
    from torch.package import PackageImporter as TorchImporter

    importer = TorchImporter(str(mocked_archive))
    consumer = importer.import_module("consumer")
    assert consumer.real() == "real"
    with pytest.raises(NotImplementedError, match="mocked_mod.Thing"):
        consumer.Thing()
    with pytest.raises(NotImplementedError, match="mocked_mod.Thing"):
        consumer.Thing + 1
    with pytest.raises(NotImplementedError, match="mocked_mod.Thing"):
        consumer.make()
    mocked_pkg = importer.import_module("mocked_pkg")
    assert hasattr(mocked_pkg, "__path__")
    with pytest.raises(NotImplementedError, match="mocked_pkg.VALUE"):
        mocked_pkg.VALUE()


def test_torch_package_mocks_load_in_torchpack(tmp_path: Path, source_tree) -> None:
    """The reverse direction: torch.package's own _mock stubs work in torchpack."""
    source_tree(MOCK_TREE)
    from torch.package import PackageExporter as TorchExporter

    target = tmp_path / "torch_mocked.pt"
    with TorchExporter(str(target)) as exporter:
        exporter.intern("consumer")
        exporter.mock(["mocked_mod", "mocked_pkg.**"])
        exporter.save_module("consumer")
    consumer = PackageImporter(target).import_module("consumer")
    assert consumer.real() == "real"
    with pytest.raises(NotImplementedError, match="mocked_mod.Thing"):
        consumer.Thing()
