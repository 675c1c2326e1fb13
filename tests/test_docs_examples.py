"""The examples of the torch.package documentation, adapted to torchpack's names.

https://pytorch.org/docs/stable/package.html
"""

from __future__ import annotations

import importlib
import textwrap
import warnings
import zipfile

import pytest
import torch
import torch.package
from torch import nn

from torchpack import PackageExporter, PackageImporter, is_from_package, sys_importer

# -- "See what is inside a package? Use the file_structure() API" ---------------------------

VISION = {
    "vision/__init__.py": "",
    "vision/models/__init__.py": "",
    "vision/models/utils.py": """
        def make_divisible(v, divisor=8):
            return max(divisor, int(v + divisor / 2) // divisor * divisor)
    """,
    "vision/models/resnet.py": """
        import torch
        from torch import nn

        from .utils import make_divisible


        class ResNetish(nn.Module):
            def __init__(self):
                super().__init__()
                width = make_divisible(10)
                self.conv = nn.Conv2d(3, width, 3)
                self.bn = nn.BatchNorm2d(width)
                self.fc = nn.Linear(width, 2)

            def forward(self, x):
                return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))
    """,
}


@pytest.fixture
def my_package(tmp_path, source_tree, monkeypatch):
    source_tree(VISION)
    monkeypatch.chdir(tmp_path)
    resnet = importlib.import_module("vision.models.resnet")
    mod = resnet.ResNetish()
    with PackageExporter("my_package.pt") as pe:
        pe.intern("vision.**")
        pe.save_pickle("models", "model_1.pkl", mod)
    return tmp_path / "my_package.pt"


def test_file_structure_example(my_package, capsys):
    importer = PackageImporter("my_package.pt")
    # can limit printed items with include/exclude args
    print(importer.file_structure(include=["**/utils.py", "**/*.pkl"], exclude="**/*.storage"))
    filtered = capsys.readouterr().out
    assert filtered == textwrap.dedent(
        """\
        ─── my_package.pt
            ├── models
            │   └── model_1.pkl
            └── vision
                └── models
                    └── utils.py

        """
    )

    print(importer.file_structure())  # will print out all files
    everything = capsys.readouterr().out
    lines = everything.splitlines()
    assert lines[0] == "─── my_package.pt"
    assert "    ├── .data" in lines
    for entry in ["0.storage", "extern_modules", "version", "model_1.pkl", "resnet.py", "utils.py"]:
        assert any(line.endswith(f"── {entry}") for line in lines), entry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle = torch.package.PackageImporter("my_package.pt").file_structure()
    assert everything == f"{oracle}\n"


def test_has_file_example(my_package):
    importer = PackageImporter("my_package.pt")
    exporter_file_structure = importer.file_structure()
    found: bool = exporter_file_structure.has_file("vision/models/resnet.py")
    assert found is True
    assert exporter_file_structure.has_file("models/model_1.pkl")
    assert not exporter_file_structure.has_file("package_a/subpackage.py")
    filtered = importer.file_structure(include="**/*.pkl")
    assert filtered.has_file("models/model_1.pkl")
    assert not filtered.has_file("vision/models/resnet.py")


# -- "Include arbitrary resources with my package and access them later?" -------------------


def test_resources_save_and_load_example(tmp_path):
    my_bytes = bytes(range(10)) * 3
    tensor = torch.randn(4)
    with PackageExporter(tmp_path / "package.pt") as exporter:
        # Pickles the object and saves to `my_resources/tensor.pkl` in the archive.
        exporter.save_pickle("my_resources", "tensor.pkl", tensor)
        exporter.save_text("config_stuff", "words.txt", "a sample string")
        exporter.save_binary("raw_data", "binary", my_bytes)

    importer = PackageImporter(tmp_path / "package.pt")
    my_tensor = importer.load_pickle("my_resources", "tensor.pkl")
    text = importer.load_text("config_stuff", "words.txt")
    binary = importer.load_binary("raw_data", "binary")
    assert torch.equal(my_tensor, tensor)
    assert text == "a sample string"
    assert binary == my_bytes


# -- "Customize how a class is packaged?" ---------------------------------------------------

FOO = {
    "foo.py": '''
        # foo.py [Example of customizing how class Foo is packaged]
        from torchpack import PackageExporter, PackageImporter
        import time


        class Foo:
            def __init__(self, my_string: str):
                super().__init__()
                self.my_string = my_string
                self.time_imported = 0
                self.time_exported = 0

            def __reduce_package__(self, exporter: PackageExporter):
                """
                Called by ``PackageExporter``'s Pickler's ``persistent_id`` when
                saving an instance of this object. This method should do the work to save this
                object inside of the package archive.

                Returns function w/ arguments to load the object from a
                ``PackageImporter``'s Pickler's ``persistent_load`` function.
                """

                # use this pattern to ensure no naming conflicts with normal dependencies,
                # anything saved under this module name shouldn't conflict with other
                # items in the package
                generated_module_name = f"foo-generated._{exporter.get_unique_id()}"
                exporter.save_text(
                    generated_module_name,
                    "foo.txt",
                    self.my_string + ", with exporter modification!",
                )
                time_exported = time.clock_gettime(1)

                # returns de-packaging function w/ arguments to invoke with
                return (unpackage_foo, (generated_module_name, time_exported,))


        def unpackage_foo(
            importer: PackageImporter, generated_module_name: str, time_exported: float
        ) -> Foo:
            """
            Called by ``PackageImporter``'s Pickler's ``persistent_load`` function
            when depickling a Foo object.
            Performs work of loading and returning a Foo instance from a package archive.
            """
            time_imported = time.clock_gettime(1)
            foo = Foo(importer.load_text(generated_module_name, "foo.txt"))
            foo.time_imported = time_imported
            foo.time_exported = time_exported
            return foo


        class Bar:
            """The same pattern, keeping the payload as a pickle of its own."""

            def __init__(self, name, weights):
                self.name = name
                self.weights = weights

            def __eq__(self, other):
                return (
                    type(other).__name__ == "Bar"
                    and other.name == self.name
                    and torch_equal(other.weights, self.weights)
                )

            def __reduce_package__(self, exporter):
                generated_module_name = f"bar-generated._{exporter.get_unique_id()}"
                exporter.save_pickle(generated_module_name, "bar.pkl", (self.name, self.weights))
                return (unpackage_bar, (generated_module_name,))


        def unpackage_bar(importer, generated_module_name):
            name, weights = importer.load_pickle(generated_module_name, "bar.pkl")
            return Bar(name, weights)


        def torch_equal(a, b):
            import torch

            return torch.equal(a, b)
    ''',
}


def test_reduce_package_foo_example(tmp_path, source_tree, monkeypatch, capsys):
    source_tree(FOO)
    monkeypatch.chdir(tmp_path)
    foo = importlib.import_module("foo")

    foo_1 = foo.Foo("foo_1 initial string")
    foo_2 = foo.Foo("foo_2 initial string")
    with PackageExporter("foo_package.pt") as pe:
        pe.intern("foo")
        pe.extern("torchpack")  # foo.py imports it for its type hints
        # save as normal, no extra work necessary
        pe.save_pickle("foo_collection", "foo1.pkl", foo_1)
        pe.save_pickle("foo_collection", "foo2.pkl", foo_2)

    pi = PackageImporter("foo_package.pt")
    print(pi.file_structure(exclude=[".data/**", "byteorder"]))
    assert capsys.readouterr().out == textwrap.dedent(
        """\
        ─── foo_package.pt
            ├── foo-generated
            │   ├── _0
            │   │   └── foo.txt
            │   └── _1
            │       └── foo.txt
            ├── foo_collection
            │   ├── foo1.pkl
            │   └── foo2.pkl
            └── foo.py

        """
    )
    assert pi.load_text("foo-generated._0", "foo.txt") == (
        "foo_1 initial string, with exporter modification!"
    )
    assert pi.load_text("foo-generated._1", "foo.txt") == (
        "foo_2 initial string, with exporter modification!"
    )

    imported_foo = pi.load_pickle("foo_collection", "foo1.pkl")
    assert type(imported_foo).__name__ == "Foo"
    assert is_from_package(imported_foo)
    assert imported_foo.my_string == "foo_1 initial string, with exporter modification!"
    assert isinstance(imported_foo.time_exported, float)
    assert isinstance(imported_foo.time_imported, float)
    assert imported_foo.time_exported <= imported_foo.time_imported
    imported_foo_2 = pi.load_pickle("foo_collection", "foo2.pkl")
    assert imported_foo_2.my_string == "foo_2 initial string, with exporter modification!"


def test_reduce_package_with_save_pickle(tmp_path, source_tree):
    source_tree(FOO)
    foo = importlib.import_module("foo")
    weights = torch.randn(3, 3)
    bar = foo.Bar("bar", weights)
    path = tmp_path / "bar_package.pt"
    with PackageExporter(path) as pe:
        pe.intern("foo")
        pe.extern("torchpack")
        # The same object twice in one pickle is reduced once.
        pe.save_pickle("bars", "bars.pkl", [bar, bar, foo.Bar("other", weights[0])])

    with zipfile.ZipFile(path) as archive:
        names = {name.split("/", 1)[1] for name in archive.namelist()}
    assert {"bar-generated/_0/bar.pkl", "bar-generated/_1/bar.pkl"} <= names
    assert "bar-generated/_2/bar.pkl" not in names

    first, again, other = PackageImporter(path).load_pickle("bars", "bars.pkl")
    assert first == bar
    assert first is again
    assert other == foo.Bar("other", weights[0])
    # The two payload pickles share the weights' storage, as any two pickles of a package.
    storages = [n for n in names if n.endswith(".storage")]
    assert len(storages) == 1


# -- "Test in my source code whether or not it is executing inside a package?" --------------

FOO_BAR = {
    "foo/__init__.py": "",
    "foo/bar.py": """
        class UnpackageableException(Exception):
            pass


        if "__torch_package__" in dir():  # true if the code is being loaded from a package
            def is_in_package():
                return True

            UserException = Exception
        else:
            def is_in_package():
                return False

            UserException = UnpackageableException
    """,
}


def test_torch_package_attribute_example(tmp_path, source_tree):
    source_tree(FOO_BAR)
    from foo.bar import UnpackageableException, UserException, is_in_package

    assert is_in_package() is False
    assert UserException is UnpackageableException

    my_package = tmp_path / "foo_bar.pt"
    with PackageExporter(my_package) as exporter:
        exporter.save_module("foo.bar")
    loaded_module = PackageImporter(my_package).import_module("foo.bar")
    assert loaded_module.is_in_package() is True
    assert loaded_module.UserException is Exception
    assert loaded_module.__torch_package__ is True


# -- "Patch code into a package?" -----------------------------------------------------------


def test_save_source_string_example(tmp_path, source_tree, capsys):
    source_tree(
        {
            "my_module/__init__.py": "",
            "my_module/foo.py": "def my_function():\n    print('original')\n",
        }
    )
    f = tmp_path / "patched.pt"
    with PackageExporter(f) as exporter:
        # Save the my_module.foo available in your current Python environment.
        exporter.save_module("my_module.foo")

        # This saves the provided string to my_module/foo.py in the package archive.
        # It will override the my_module.foo that was previously saved.
        exporter.save_source_string(
            "my_module.foo",
            textwrap.dedent(
                """\
                def my_function():
                    print('hello world')
                """
            ),
        )

        # If you want to treat my_module.bar as a package
        # (e.g. save to `my_module/bar/__init__.py` instead of `my_module/bar.py)
        # pass is_package=True,
        exporter.save_source_string("my_module.bar", "def foo(): print('hello')\n", is_package=True)

    importer = PackageImporter(f)
    importer.import_module("my_module.foo").my_function()  # prints 'hello world'
    assert capsys.readouterr().out == "hello world\n"
    bar = importer.import_module("my_module.bar")
    bar.foo()
    assert capsys.readouterr().out == "hello\n"
    assert hasattr(bar, "__path__")
    with zipfile.ZipFile(f) as archive:
        names = {name.split("/", 1)[1] for name in archive.namelist()}
        assert archive.read("patched/my_module/foo.py") == (
            b"def my_function():\n    print('hello world')\n"
        )
    assert "my_module/bar/__init__.py" in names
    assert "my_module/bar.py" not in names


# -- "Access package contents from packaged code?" ------------------------------------------

RESOURCE_USERS = {
    "foo.py": """
        import importlib.resources
        import my_resource

        # returns "hello world!"
        def get_my_resource():
            return importlib.resources.read_text(my_resource, "a.txt")
    """,
    "bar.py": """
        import torch_package_importer # this is the PackageImporter that imported this module.

        # Prints "hello world!", equivalient to importlib.resources.read_text
        def get_my_resource():
            return torch_package_importer.load_text("my_resource", "a.txt")

        # You also do things that the importlib.resources API does not support, like loading
        # a pickled object from the package.
        def get_my_pickle():
            return torch_package_importer.load_pickle("my_pickle", "obj.pkl")
    """,
}


@pytest.fixture
def resource_package(tmp_path, source_tree):
    source_tree(RESOURCE_USERS)
    f = tmp_path / "resources.pt"
    with PackageExporter(f) as exporter:
        # saves text to my_resource/a.txt in the archive
        exporter.save_text("my_resource", "a.txt", "hello world!")
        # saves the tensor to my_pickle/obj.pkl
        exporter.save_pickle("my_pickle", "obj.pkl", torch.ones(2, 2))

        # see below for module contents
        exporter.save_module("foo")
        exporter.save_module("bar")
    return f


def test_importlib_resources_example(resource_package):
    importer = PackageImporter(resource_package)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # legacy read_text on 3.11
        assert importer.import_module("foo").get_my_resource() == "hello world!"


def test_torch_package_importer_example(resource_package):
    importer = PackageImporter(resource_package)
    bar = importer.import_module("bar")
    assert bar.get_my_resource() == "hello world!"
    assert torch.equal(bar.get_my_pickle(), torch.ones(2, 2))


# -- "Distinguish between packaged code and non-packaged code?" -----------------------------

MODEL = {
    "foo.py": """
        import collections

        from torch import nn


        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(2, 2)
                self.meta = collections.OrderedDict(version=1)
    """,
}


def test_is_from_package_example(tmp_path, source_tree):
    source_tree(MODEL)
    import foo

    f = tmp_path / "model.pt"
    with PackageExporter(f) as exporter:
        exporter.intern("foo")
        exporter.save_pickle("model", "model.pkl", foo.Model())
        exporter.save_text("text", "my_test.txt", "some text")

    importer = PackageImporter(f)
    mod = importer.import_module("foo")
    obj = importer.load_pickle("model", "model.pkl")
    txt = importer.load_text("text", "my_test.txt")

    assert is_from_package(mod)
    assert is_from_package(obj)
    assert not is_from_package(txt)  # str is from stdlib, so this will return False
    # Loaded from the package, but defined in extern / stdlib modules: False as well.
    assert not is_from_package(obj.linear)
    assert not is_from_package(obj.meta)
    assert not is_from_package(obj.linear.weight)
    # The environment's own module and objects.
    assert not is_from_package(foo)
    assert not is_from_package(foo.Model())


# -- "Types are not shared between packages and the loading environment" --------------------


def test_types_are_not_shared_example(tmp_path, source_tree):
    source_tree({"foo.py": "class MyClass:\n    pass\n"})
    from foo import MyClass

    my_class_instance = MyClass()
    f = tmp_path / "types.pt"
    with PackageExporter(f) as exporter:
        exporter.save_module("foo")

    importer = PackageImporter(f)
    imported_MyClass = importer.import_module("foo").MyClass  # noqa: N806 - the docs' name

    assert isinstance(my_class_instance, MyClass)  # works
    assert not isinstance(my_class_instance, imported_MyClass)
    assert MyClass.__module__ == "foo"
    assert imported_MyClass.__module__ == f"{importer.id()}.foo"


# -- "Re-export an imported object?" --------------------------------------------------------


def test_reexport_example(tmp_path, source_tree):
    source_tree(MODEL)
    import foo

    f, f2 = tmp_path / "first.pt", tmp_path / "second.pt"
    with PackageExporter(f) as exporter:
        exporter.intern("foo")
        exporter.save_pickle("model", "model.pkl", foo.Model())

    importer = PackageImporter(f)
    obj = importer.load_pickle("model", "model.pkl")

    # re-export obj in a new package
    with PackageExporter(f2, importer=(importer, sys_importer)) as exporter:
        exporter.intern("foo")
        exporter.save_pickle("model", "model.pkl", obj)

    again = PackageImporter(f2).load_pickle("model", "model.pkl")
    assert torch.equal(again.linear.weight, obj.linear.weight)
    assert type(again).__module__ != type(obj).__module__
    with zipfile.ZipFile(f) as a, zipfile.ZipFile(f2) as b:
        assert a.read("first/foo.py") == b.read("second/foo.py")


# -- "Package a TorchScript module?" --------------------------------------------------------


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_example(tmp_path, source_tree):
    source_tree(
        {
            "scripted_models.py": """
                import torch
                from torch import nn


                class Python(nn.Module):
                    def __init__(self, scripted):
                        super().__init__()
                        self.scripted = scripted
                        self.linear = nn.Linear(3, 3)

                    def forward(self, x):
                        return self.scripted(self.linear(x))
            """,
        }
    )
    import scripted_models

    torch.manual_seed(0)
    scripted_model = torch.jit.script(nn.Sequential(nn.Linear(3, 4), nn.ReLU()))
    python_model_with_scripted_submodule = scripted_models.Python(torch.jit.script(nn.Linear(3, 2)))
    file_name = tmp_path / "script.pt"
    # save TorchScript just like any other object
    with PackageExporter(file_name) as e:
        e.intern("scripted_models")
        e.save_pickle("res", "script_model.pkl", scripted_model)
        e.save_pickle("res", "mixed_model.pkl", python_model_with_scripted_submodule)
    # load as normal
    importer = PackageImporter(file_name)
    loaded_script = importer.load_pickle("res", "script_model.pkl")
    loaded_mixed = importer.load_pickle("res", "mixed_model.pkl")

    x = torch.randn(2, 3)
    assert isinstance(loaded_script, torch.jit.ScriptModule)
    assert torch.equal(loaded_script(x), scripted_model(x))
    assert torch.equal(loaded_mixed(x), python_model_with_scripted_submodule(x))
