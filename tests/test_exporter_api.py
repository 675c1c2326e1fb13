"""The public API of ``PackageExporter`` / ``PackageImporter``: saving, loading and targets."""

from __future__ import annotations

import io
import pickle
import platform
import re
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import read_record, records_of

from torchpack import PackageExporter, PackageImporter, PackagingError

MODEL_SOURCE = """\
import torch

from . import helpers


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x):
        return helpers.double(self.linear(x))
"""

HELPERS_SOURCE = """\
import json

SETTINGS = json.loads('{"factor": 2}')


def double(x):
    return x * SETTINGS["factor"]
"""


@pytest.fixture
def models(source_tree):
    source_tree(
        {
            "models/__init__.py": "",
            "models/net.py": MODEL_SOURCE,
            "models/helpers.py": HELPERS_SOURCE,
        }
    )
    import models.net

    return models.net


def write_small_package(target, text: str = "hello") -> None:
    with PackageExporter(target) as exporter:
        exporter.save_text("notes", "greeting.txt", text)
        exporter.save_pickle("data", "tensor.pkl", torch.arange(4.0))


# -- resources ------------------------------------------------------------------------------


def test_text_binary_and_pickle_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "res.pt"
    payload = bytes(range(256))
    obj = {"weights": torch.randn(3, 4), "ids": torch.tensor([1, 2, 3]), "name": "x", "n": 7}
    with PackageExporter(target) as exporter:
        exporter.save_text("my.notes", "readme.txt", "héllo wörld\n")
        exporter.save_binary("my.blobs", "blob.bin", payload)
        exporter.save_pickle("my.objs", "obj.pkl", obj)

    assert {"my/notes/readme.txt", "my/blobs/blob.bin", "my/objs/obj.pkl"} <= records_of(target)
    importer = PackageImporter(target)
    assert importer.load_text("my.notes", "readme.txt") == "héllo wörld\n"
    assert importer.load_binary("my.blobs", "blob.bin") == payload
    loaded = importer.load_pickle("my.objs", "obj.pkl")
    assert loaded.keys() == obj.keys()
    assert torch.equal(loaded["weights"], obj["weights"])
    assert torch.equal(loaded["ids"], obj["ids"])
    assert loaded["ids"].dtype == torch.int64
    assert (loaded["name"], loaded["n"]) == ("x", 7)


def test_save_binary_accepts_bytearray(tmp_path: Path) -> None:
    target = tmp_path / "bin.pt"
    with PackageExporter(target) as exporter:
        exporter.save_binary("b", "x.bin", bytearray(b"\x00\x01\x02"))
    assert PackageImporter(target).load_binary("b", "x.bin") == b"\x00\x01\x02"


def test_pickle_of_torch_module_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    target = tmp_path / "seq.pt"
    with PackageExporter(target) as exporter:
        exporter.save_pickle("model", "model.pkl", module)

    loaded = PackageImporter(target).load_pickle("model", "model.pkl")
    # torch is extern: the loaded module is a real torch.nn.Sequential.
    assert type(loaded) is torch.nn.Sequential
    x = torch.randn(5, 4)
    assert torch.equal(loaded(x), module(x))
    for (name_a, a), (name_b, b) in zip(
        loaded.state_dict().items(), module.state_dict().items(), strict=True
    ):
        assert name_a == name_b
        assert torch.equal(a, b)


def test_pickle_of_interned_model_round_trip(tmp_path: Path, models) -> None:
    torch.manual_seed(0)
    net = models.Net()
    target = tmp_path / "net.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("models.**")
        exporter.save_pickle("model", "model.pkl", net)

    assert {"models/net.py", "models/helpers.py", "model/model.pkl"} <= records_of(target)
    importer = PackageImporter(target)
    loaded = importer.load_pickle("model", "model.pkl")
    assert type(loaded) is not models.Net
    assert type(loaded).__name__ == "Net"
    assert type(loaded).__module__ == f"{importer.id()}.models.net"
    x = torch.randn(2, 3)
    assert torch.equal(loaded(x), net(x))


def test_pickle_protocol_4_is_written_and_loads(tmp_path: Path, models) -> None:
    net = models.Net()
    target = tmp_path / "p4.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("models.**")
        exporter.save_pickle("model", "model.pkl", net, pickle_protocol=4)
        exporter.save_pickle("model", "default.pkl", [1, 2])

    importer = PackageImporter(target)
    assert importer.load_binary("model", "model.pkl")[:2] == b"\x80\x04"
    assert importer.load_binary("model", "default.pkl")[:2] == b"\x80\x03"
    loaded = importer.load_pickle("model", "model.pkl")
    x = torch.randn(1, 3)
    assert torch.equal(loaded(x), net(x))


@pytest.mark.parametrize("protocol", [0, 1, 2, 5])
def test_unsupported_pickle_protocol_raises(tmp_path: Path, protocol: int) -> None:
    with PackageExporter(tmp_path / "bad.pt") as exporter:
        with pytest.raises(ValueError, match="protocol"):
            exporter.save_pickle("model", "model.pkl", [1], pickle_protocol=protocol)
        exporter.save_text("ok", "ok.txt", "still usable")
    assert "model/model.pkl" not in records_of(tmp_path / "bad.pt")


@pytest.mark.parametrize(
    "save_twice",
    [
        lambda e: (e.save_text("res", "a.txt", "1"), e.save_text("res", "a.txt", "2")),
        lambda e: (e.save_binary("res", "a.txt", b"1"), e.save_text("res", "a.txt", "2")),
        lambda e: (e.save_pickle("res", "a.txt", 1), e.save_binary("res", "a.txt", b"2")),
        lambda e: (e.save_text("res", "a.txt", "1"), e.save_pickle("res", "a.txt", [2])),
    ],
    ids=["text-text", "binary-text", "pickle-binary", "text-pickle"],
)
def test_saving_the_same_record_twice_raises(tmp_path: Path, save_twice) -> None:
    with PackageExporter(tmp_path / "dup.pt") as exporter:
        with pytest.raises(ValueError, match=re.escape("res/a.txt")):
            save_twice(exporter)
    # The first write survives.
    assert "res/a.txt" in records_of(tmp_path / "dup.pt")


@pytest.mark.parametrize("resource", ["sub/x.txt", "a/b/c.txt", "/x.txt"])
def test_resource_names_with_slash_raise(tmp_path: Path, resource: str) -> None:
    with PackageExporter(tmp_path / "slash.pt") as exporter:
        with pytest.raises(ValueError, match=re.escape(resource)):
            exporter.save_text("pkg", resource, "x")
        with pytest.raises(ValueError):
            exporter.save_binary("pkg", resource, b"x")
        with pytest.raises(ValueError):
            exporter.save_pickle("pkg", resource, [1])
        exporter.save_text("pkg", "fine.txt", "x")
    assert not any(
        r.startswith("pkg/") and r != "pkg/fine.txt" for r in records_of(tmp_path / "slash.pt")
    )


# -- modules --------------------------------------------------------------------------------


def test_save_module_interns_it_whatever_the_patterns(tmp_path: Path, models) -> None:
    target = tmp_path / "mod.pt"
    with PackageExporter(target) as exporter:
        # No intern pattern for models.helpers: save_module interns it anyway; its only
        # dependency (json) is standard library, hence extern.
        exporter.save_module("models.helpers")

    records = records_of(target)
    assert "models/helpers.py" in records
    assert "models/net.py" not in records
    importer = PackageImporter(target)
    assert "json" in importer.extern_modules
    helpers = importer.import_module("models.helpers")
    assert helpers.double(21) == 42
    assert helpers.__name__ == f"{importer.id()}.models.helpers"
    assert helpers is not models.helpers


def test_save_module_scans_dependencies(tmp_path: Path, models) -> None:
    target = tmp_path / "mod.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("models.**")
        exporter.save_module("models.net")
    records = records_of(target)
    assert {"models/net.py", "models/helpers.py"} <= records
    net_module = PackageImporter(target).import_module("models.net")
    assert net_module.helpers.double(torch.ones(1)).item() == 2.0


def test_save_module_without_dependencies(tmp_path: Path, models) -> None:
    target = tmp_path / "nodeps.pt"
    with PackageExporter(target) as exporter:
        exporter.save_module("models.net", dependencies=False)
    records = records_of(target)
    assert "models/net.py" in records
    assert "models/helpers.py" not in records


def test_save_module_takes_a_name_not_a_module(tmp_path: Path, models) -> None:
    with PackageExporter(tmp_path / "x.pt") as exporter:
        with pytest.raises(TypeError):
            exporter.save_module(models)  # type: ignore[arg-type]
        exporter.save_text("a", "b.txt", "c")


def test_save_source_string_module_and_package(tmp_path: Path) -> None:
    target = tmp_path / "src.pt"
    with PackageExporter(target) as exporter:
        exporter.save_source_string(
            "strpkg", "from .sub import answer\nVALUE = answer() + 1\n", is_package=True
        )
        exporter.save_source_string("strpkg.sub", "def answer():\n    return 41\n")
        exporter.save_source_string("plain_mod", "import math\nPI = math.pi\n")

    records = records_of(target)
    assert {"strpkg/__init__.py", "strpkg/sub.py", "plain_mod.py"} <= records
    assert "strpkg.py" not in records
    importer = PackageImporter(target)
    strpkg = importer.import_module("strpkg")
    assert hasattr(strpkg, "__path__")
    assert strpkg.VALUE == 42
    assert importer.import_module("strpkg.sub").answer() == 41
    assert importer.import_module("plain_mod").PI == pytest.approx(3.141592653589793)
    assert "math" in importer.extern_modules


def test_save_source_string_text_is_stored_verbatim(tmp_path: Path) -> None:
    source = "# -*- coding: utf-8 -*-\nNAME = 'żółw'\n"
    target = tmp_path / "verbatim.pt"
    with PackageExporter(target) as exporter:
        exporter.save_source_string("turtle_mod", source)
    importer = PackageImporter(target)
    assert importer.load_text("", "turtle_mod.py") == source
    assert importer.import_module("turtle_mod").NAME == "żółw"


def test_save_source_file_single_file(tmp_path: Path) -> None:
    file = tmp_path / "anything.py"
    file.write_text("import collections\nCOUNTS = collections.Counter('aab')\n")
    target = tmp_path / "file.pt"
    with PackageExporter(target) as exporter:
        exporter.save_source_file("renamed.mod", file)

    assert "renamed/mod.py" in records_of(target)
    importer = PackageImporter(target)
    assert importer.import_module("renamed.mod").COUNTS == {"a": 2, "b": 1}
    assert "collections" in importer.extern_modules


def test_save_source_file_folder(tmp_path: Path) -> None:
    folder = tmp_path / "some_folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "__init__.py").write_text("from .sub.leaf import LEAF\nTOP = 'top'\n")
    (folder / "util.py").write_text("from . import TOP\nUTIL = TOP + '-util'\n")
    (folder / "sub" / "__init__.py").write_text("SUB = 'sub'\n")
    (folder / "sub" / "leaf.py").write_text("from .. import sub\nLEAF = sub.SUB + '-leaf'\n")
    (folder / "data.txt").write_text("not python")
    target = tmp_path / "folder.pt"
    with PackageExporter(target) as exporter:
        exporter.save_source_file("mylib", folder)

    records = records_of(target)
    assert {
        "mylib/__init__.py",
        "mylib/util.py",
        "mylib/sub/__init__.py",
        "mylib/sub/leaf.py",
    } <= records
    assert not any(r.endswith("data.txt") for r in records)
    importer = PackageImporter(target)
    mylib = importer.import_module("mylib")
    assert mylib.LEAF == "sub-leaf"
    assert importer.import_module("mylib.util").UTIL == "top-util"


# -- context manager and targets ------------------------------------------------------------


def test_context_manager_writes_on_success(tmp_path: Path) -> None:
    target = tmp_path / "ok.pt"
    with PackageExporter(target) as exporter:
        exporter.save_text("notes", "a.txt", "A")
        assert not target.exists()  # written at the end of the block, not before
    assert target.is_file()
    assert PackageImporter(target).load_text("notes", "a.txt") == "A"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.pt"]


def test_close_without_context_manager(tmp_path: Path) -> None:
    target = tmp_path / "closed.pt"
    exporter = PackageExporter(target)
    exporter.save_text("notes", "a.txt", "A")
    exporter.close()
    exporter.close()  # closing twice is harmless
    assert PackageImporter(target).load_text("notes", "a.txt") == "A"


def test_exception_inside_with_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "broken.pt"
    with pytest.raises(RuntimeError, match="boom"):
        with PackageExporter(target) as exporter:
            exporter.save_text("notes", "a.txt", "A")
            exporter.save_pickle("data", "t.pkl", torch.ones(10))
            raise RuntimeError("boom")
    assert not target.exists()
    # No staging files left behind either.
    assert list(tmp_path.iterdir()) == []


def test_exception_inside_with_keeps_previous_archive(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    write_small_package(target, "first version")
    before = target.read_bytes()

    with pytest.raises(KeyError):
        with PackageExporter(target) as exporter:
            exporter.save_text("notes", "greeting.txt", "second version")
            exporter.save_pickle("data", "tensor.pkl", torch.zeros(100))
            raise KeyError("oops")

    assert target.read_bytes() == before
    assert PackageImporter(target).load_text("notes", "greeting.txt") == "first version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_packaging_error_keeps_previous_archive(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    write_small_package(target)
    before = target.read_bytes()
    with pytest.raises(PackagingError):
        with PackageExporter(target) as exporter:
            exporter.save_source_string("needs_sys", "import sys\n")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_successful_export_replaces_previous_archive(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    write_small_package(target, "old")
    write_small_package(target, "new")
    assert PackageImporter(target).load_text("notes", "greeting.txt") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


@pytest.mark.parametrize("as_type", [str, Path], ids=["str", "Path"])
def test_target_as_path(tmp_path: Path, as_type) -> None:
    target = tmp_path / "t.pt"
    write_small_package(as_type(target))
    assert target.is_file()
    importer = PackageImporter(as_type(target))
    assert importer.load_text("notes", "greeting.txt") == "hello"
    assert torch.equal(importer.load_pickle("data", "tensor.pkl"), torch.arange(4.0))
    # PyTorch names the archive's top folder after the file.
    with zipfile.ZipFile(target) as zf:
        assert {name.split("/", 1)[0] for name in zf.namelist()} == {"t"}


def test_target_bytesio(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    write_small_package(buffer)
    data = buffer.getvalue()
    assert data[:4] == b"PK\x03\x04"
    assert list(tmp_path.iterdir()) == []

    importer = PackageImporter(io.BytesIO(data))
    assert importer.load_text("notes", "greeting.txt") == "hello"
    assert torch.equal(importer.load_pickle("data", "tensor.pkl"), torch.arange(4.0))

    # The very buffer that was written to, rewound, can be read too.
    buffer.seek(0)
    assert PackageImporter(buffer).load_text("notes", "greeting.txt") == "hello"


def test_target_open_file_object(tmp_path: Path) -> None:
    path = tmp_path / "fileobj.pt"
    with open(path, "wb") as f:
        write_small_package(f)
    assert zipfile.is_zipfile(path)
    with open(path, "rb") as f:
        importer = PackageImporter(f)
        assert importer.load_text("notes", "greeting.txt") == "hello"
        assert torch.equal(importer.load_pickle("data", "tensor.pkl"), torch.arange(4.0))


def test_bytesio_and_path_targets_hold_the_same_records(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    write_small_package(buffer)
    write_small_package(tmp_path / "same.pt")
    from_buffer = {n.split("/", 1)[1] for n in zipfile.ZipFile(buffer).namelist()}
    assert from_buffer == records_of(tmp_path / "same.pt")


def test_importer_reads_unzipped_folder(tmp_path: Path, models) -> None:
    net = models.Net()
    target = tmp_path / "unz.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("models.**")
        exporter.save_pickle("model", "model.pkl", net)
        exporter.save_text("notes", "n.txt", "note")
        exporter.save_binary("notes", "n.bin", b"\x01\x02")

    out = tmp_path / "unzipped"
    with zipfile.ZipFile(target) as zf:
        zf.extractall(out)
    top = out / "unz"
    assert (top / ".data").is_dir()

    importer = PackageImporter(top)
    assert importer.load_text("notes", "n.txt") == "note"
    assert importer.load_binary("notes", "n.bin") == b"\x01\x02"
    assert set(importer.extern_modules) == set(PackageImporter(target).extern_modules)
    loaded = importer.load_pickle("model", "model.pkl")
    x = torch.randn(4, 3)
    assert torch.equal(loaded(x), net(x))
    assert importer.import_module("models.helpers").double(5) == 10
    assert importer.file_structure().has_file("models/net.py")


# -- misc API -------------------------------------------------------------------------------


def test_get_unique_id_increments(tmp_path: Path) -> None:
    with PackageExporter(tmp_path / "a.pt") as exporter:
        ids = [exporter.get_unique_id() for _ in range(5)]
        exporter.save_text("x", "y.txt", "z")
    assert ids == ["0", "1", "2", "3", "4"]
    with PackageExporter(tmp_path / "b.pt") as other:
        assert other.get_unique_id() == "0"
        other.save_text("x", "y.txt", "z")


def test_python_version(tmp_path: Path) -> None:
    write_small_package(tmp_path / "v.pt")
    importer = PackageImporter(tmp_path / "v.pt")
    assert importer.python_version() == platform.python_version()
    assert read_record(tmp_path / "v.pt", ".data/python_version").decode().strip() == (
        platform.python_version()
    )


def test_extern_modules_lists_the_externed_modules(tmp_path: Path, source_tree) -> None:
    source_tree(
        {
            "ext_lib/__init__.py": "def helper():\n    return 'real'\n",
            "user_mod.py": "import json\nimport ext_lib\nRESULT = ext_lib.helper()\n",
        }
    )
    target = tmp_path / "ext.pt"
    with PackageExporter(target) as exporter:
        exporter.extern("ext_lib")
        exporter.intern("user_mod")
        exporter.save_module("user_mod")
        exporter.save_pickle("t", "t.pkl", torch.ones(1))
        externed_before_close = exporter.externed_modules()

    importer = PackageImporter(target)
    assert {"ext_lib", "json"} <= set(importer.extern_modules)
    assert "user_mod" not in importer.extern_modules
    assert any(name == "torch" or name.startswith("torch.") for name in importer.extern_modules)
    assert importer.extern_modules == exporter.externed_modules()
    assert {"ext_lib", "json"} <= set(externed_before_close)
    assert exporter.interned_modules() == ["user_mod"]
    listed = read_record(target, ".data/extern_modules").decode().splitlines()
    assert listed == importer.extern_modules
    assert "ext_lib/__init__.py" not in records_of(target)
    assert importer.import_module("user_mod").RESULT == "real"


def test_module_allowed_rejecting_an_extern_raises(tmp_path: Path, source_tree) -> None:
    source_tree({"ext_lib2.py": "X = 1\n", "user_mod2.py": "import ext_lib2\n"})
    target = tmp_path / "allowed.pt"
    with PackageExporter(target) as exporter:
        exporter.extern("ext_lib2")
        exporter.save_module("user_mod2")

    with pytest.raises(ImportError, match="ext_lib2"):
        PackageImporter(target, module_allowed=lambda name: name != "ext_lib2")
    # Allowing everything (or rejecting modules it does not need) works.
    PackageImporter(target, module_allowed=lambda name: name != "numpy")
    seen: list[str] = []
    PackageImporter(target, module_allowed=lambda name: seen.append(name) or True)
    assert "ext_lib2" in seen


def test_pickled_object_is_not_plain_pickle(tmp_path: Path, models) -> None:
    """A packaged pickle names interned classes by their real module, unmangled."""
    target = tmp_path / "names.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("models.**")
        exporter.save_pickle("model", "model.pkl", models.Net())
    data = PackageImporter(target).load_binary("model", "model.pkl")
    assert b"models.net" in data
    assert b"torch_package" not in data
    with pytest.raises(pickle.UnpicklingError):
        # Storages are persistent ids: plain pickle cannot load it.
        pickle.loads(data)


def test_add_dependency_follows_imports_unless_told_not_to(tmp_path: Path, source_tree) -> None:
    source_tree({"dep_a.py": "import dep_b\n", "dep_b.py": "VALUE = 1\n"})
    for follow, expected in ((True, {"dep_a.py", "dep_b.py"}), (False, {"dep_a.py"})):
        target = tmp_path / f"follow_{follow}.pt"
        with PackageExporter(target) as exporter:
            exporter.intern("dep_*")
            exporter.add_dependency("dep_a", dependencies=follow)
        assert {r for r in records_of(target) if r.endswith(".py")} == expected


def test_saving_after_close_is_a_clear_error(tmp_path: Path) -> None:
    exporter = PackageExporter(tmp_path / "closed.pt")
    exporter.save_text("res", "a.txt", "a")
    exporter.close()
    with pytest.raises(ValueError, match="already closed"):
        exporter.save_text("res", "b.txt", "b")
    assert records_of(tmp_path / "closed.pt") >= {"res/a.txt"}


def test_dependency_introspection(tmp_path: Path, source_tree) -> None:
    source_tree(
        {
            "intro_top.py": "import intro_mid\nimport intro_ext\n",
            "intro_mid.py": "import intro_leaf\nimport intro_mocked\nimport intro_denied\n",
            "intro_leaf.py": "import json\n",
            "intro_ext.py": "",
            "intro_mocked.py": "",
            "intro_denied.py": "",
        }
    )
    exporter = PackageExporter(tmp_path / "intro.pt")
    exporter.intern(["intro_top", "intro_mid", "intro_leaf"])
    exporter.extern("intro_ext")
    exporter.mock("intro_mocked")
    exporter.deny("intro_denied")
    exporter.save_module("intro_top")

    assert exporter.interned_modules() == ["intro_leaf", "intro_mid", "intro_top"]
    assert exporter.externed_modules() == ["intro_ext", "json"]
    assert exporter.mocked_modules() == ["intro_mocked"]
    assert exporter.denied_modules() == ["intro_denied"]
    assert exporter.get_rdeps("intro_leaf") == ["intro_mid"]
    paths = exporter.all_paths("intro_top", "json")
    assert '"intro_top" -> "intro_mid"' in paths and '"intro_leaf" -> "json"' in paths
    assert '"intro_ext"' not in paths
    graph = exporter.dependency_graph_string()
    assert graph.startswith("digraph") and '"intro_mid" -> "intro_denied"' in graph
    with pytest.raises(PackagingError, match="intro_denied"):
        exporter.close()
