"""Saving objects loaded from a package into a new package, through an importer chain."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import pytest
import torch
import torch.package

import torchpack
from torchpack import (
    ObjMismatchError,
    ObjNotFoundError,
    OrderedImporter,
    PackageExporter,
    PackageImporter,
    sys_importer,
)

SOURCES = {
    "shop/__init__.py": "",
    "shop/model.py": """
        import torch
        from shop import training


        class Scorer(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(3, 2)

            def forward(self, x):
                return self.lin(x).tanh()

            def fit(self):
                return training.optimizer()


        class Config:
            def __init__(self, depth):
                self.depth = depth
    """,
    "shop/training/__init__.py": """
        def optimizer():
            return "sgd"
    """,
}


@pytest.fixture
def shop(source_tree):
    source_tree(SOURCES)
    import shop.model

    torch.manual_seed(0)
    return shop.model


@pytest.fixture
def first_package(tmp_path: Path, shop) -> Path:
    path = tmp_path / "first.pt"
    with PackageExporter(path) as exporter:
        exporter.intern("shop.**", exclude="shop.training.**")
        exporter.mock("shop.training.**")
        exporter.save_pickle("model", "model.pkl", shop.Scorer())
        exporter.save_pickle("model", "config.pkl", shop.Config(7))
    return path


def _quiet(load):
    # torch.package warns that TypedStorage is deprecated while loading tensors.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load()


@pytest.fixture
def reexported(tmp_path: Path, first_package):
    """The first package's model, loaded and saved again with intern("shop.**")."""
    importer = PackageImporter(first_package)
    model = importer.load_pickle("model", "model.pkl")
    again = tmp_path / "again.pt"
    # intern("shop.**") claims the mocked shop.training too.
    with PackageExporter(again, importer=(importer, sys_importer)) as exporter:
        exporter.intern("shop.**")
        exporter.save_pickle("model", "model.pkl", model)
    return model, again, exporter


def test_objects_from_an_importer_are_saved_again(reexported) -> None:
    model, again, _ = reexported
    reloaded = PackageImporter(again).load_pickle("model", "model.pkl")
    batch = torch.randn(4, 3)
    assert torch.equal(reloaded(batch), model(batch))
    # Saved under the real module name, not the importer's mangled one.
    assert type(reloaded).__module__.endswith(">.shop.model")
    assert "torch_package" not in str(
        torchpack.PackageImporter(again).load_binary("model", "model.pkl")
    )


def test_mocked_modules_stay_mocked_when_repackaged(reexported) -> None:
    _, again, exporter = reexported
    assert exporter.mocked_modules() == ["shop.training"]
    assert "shop.training" not in exporter.interned_modules()
    reloaded = PackageImporter(again).load_pickle("model", "model.pkl")
    with pytest.raises(NotImplementedError, match="shop.training.optimizer"):
        reloaded.fit()
    # torch.package reads the re-packaged mock the same way.
    theirs_importer = torch.package.PackageImporter(str(again))
    theirs = _quiet(lambda: theirs_importer.load_pickle("model", "model.pkl"))
    with pytest.raises(NotImplementedError, match="mocked out"):
        theirs.fit()


def test_torch_package_importer_in_the_chain(tmp_path: Path, shop) -> None:
    """A torch.package PackageImporter can be the exporter's importer, as in its docs."""
    made_by_torch = tmp_path / "theirs.pt"
    with torch.package.PackageExporter(str(made_by_torch)) as exporter:
        exporter.intern("shop.**", exclude="shop.training.**")
        exporter.mock("shop.training.**")
        exporter.save_pickle("model", "model.pkl", shop.Scorer())
    theirs = torch.package.PackageImporter(str(made_by_torch))
    model = _quiet(lambda: theirs.load_pickle("model", "model.pkl"))
    ours = tmp_path / "ours.pt"
    with PackageExporter(ours, importer=(theirs, sys_importer)) as exporter:
        exporter.intern("shop.**")
        exporter.save_pickle("model", "model.pkl", model)
    assert exporter.interned_modules() == ["shop.model"]
    assert exporter.mocked_modules() == ["shop.training"]
    batch = torch.randn(2, 3)
    assert torch.equal(PackageImporter(ours).load_pickle("model", "model.pkl")(batch), model(batch))


def test_importer_chain_order_decides(tmp_path: Path, first_package, shop) -> None:
    importer = PackageImporter(first_package)
    config = importer.load_pickle("model", "config.pkl")
    # The package's class first: found. The environment's class first: a different object.
    assert OrderedImporter(importer, sys_importer).get_name(type(config)) == (
        "shop.model",
        "Config",
    )
    with pytest.raises(ObjNotFoundError, match="importer for <torch_package_"):
        OrderedImporter(sys_importer).get_name(type(config))


def test_get_name_errors(first_package, shop) -> None:
    importer = PackageImporter(first_package)
    config_class = type(importer.load_pickle("model", "config.pkl"))
    with pytest.raises(ObjMismatchError, match="coming from the current Python environment"):
        sys_importer.get_name(config_class)
    # The environment's own class is not what the package calls shop.model.Config.
    with pytest.raises(ObjMismatchError, match="sys_importer"):
        importer.get_name(shop.Config)

    def local_function():
        pass

    with pytest.raises(ObjNotFoundError, match="local"):
        sys_importer.get_name(local_function)


def test_saving_a_package_object_without_its_importer_is_a_pickling_error(
    tmp_path: Path, first_package, shop
) -> None:
    importer = PackageImporter(first_package)
    config = importer.load_pickle("model", "config.pkl")
    with pytest.raises(pickle.PicklingError) as info:
        with PackageExporter(tmp_path / "out.pt") as exporter:
            exporter.intern("shop.**")
            exporter.save_pickle("model", "config.pkl", config)
    message = str(info.value)
    assert "Can't pickle" in message
    assert "shop.model" in message and "make sure this PackageExporter's importer lists" in message
    assert not (tmp_path / "out.pt").exists()
    # torch.package refuses the same object with the same kind of error.
    with pytest.raises(pickle.PicklingError):
        with torch.package.PackageExporter(str(tmp_path / "theirs.pt")) as exporter:
            exporter.intern("shop.**")
            exporter.save_pickle("model", "config.pkl", config)


def test_isinstance_holds_only_against_the_same_importer(first_package, shop) -> None:
    first = PackageImporter(first_package)
    second = PackageImporter(first_package)
    config = first.load_pickle("model", "config.pkl")
    assert isinstance(config, first.import_module("shop.model").Config)
    assert not isinstance(config, second.import_module("shop.model").Config)
    assert not isinstance(config, shop.Config)


def test_non_importers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not an importer"):
        PackageExporter(tmp_path / "x.pt", importer=object())
    with pytest.raises(TypeError, match="not an importer"):
        OrderedImporter(sys_importer, "sys")
