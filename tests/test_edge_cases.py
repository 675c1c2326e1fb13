"""Edge cases the torch.package documentation names, run through both implementations."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.package

from torchpack import PackageExporter, PackageImporter

LONG = "a_rather_long_name_segment_" * 4  # 108 characters


def _long_sources() -> tuple[dict[str, str], str, str]:
    """A package nested 3 deep with ~110-character names and a ~300-character class name."""
    package = ".".join(f"{LONG}{i}" for i in range(3))
    class_name = "Model" + "WithAVeryLongName" * 17
    files = {}
    for depth in range(1, 4):
        folder = "/".join(f"{LONG}{i}" for i in range(depth))
        files[f"{folder}/__init__.py"] = ""
    files[f"{package.replace('.', '/')}/model.py"] = f"""
        import torch


        class {class_name}(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = torch.nn.Parameter(torch.arange(4.0))

            def forward(self, x):
                return x * self.weight
    """
    return files, f"{package}.model", class_name


@pytest.mark.parametrize("protocol", [3, 4])
@pytest.mark.parametrize("exporter_class", [PackageExporter, torch.package.PackageExporter])
@pytest.mark.parametrize("importer_class", [PackageImporter, torch.package.PackageImporter])
def test_very_long_module_and_class_names(
    tmp_path: Path, source_tree, protocol, exporter_class, importer_class
) -> None:
    files, module_name, class_name = _long_sources()
    source_tree(files)
    module = __import__(module_name, fromlist=[class_name])
    model = getattr(module, class_name)()
    path = tmp_path / "long.pt"
    with exporter_class(str(path)) as exporter:
        exporter.intern(f"{LONG}0.**")
        exporter.save_pickle("model", "model.pkl", model, pickle_protocol=protocol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = importer_class(str(path)).load_pickle("model", "model.pkl")
    assert type(loaded).__name__ == class_name
    assert type(loaded).__module__.endswith(module_name)
    assert torch.equal(loaded(torch.ones(4)), torch.arange(4.0))


def test_objects_whose_modules_import_c_extensions(tmp_path: Path, source_tree) -> None:
    source_tree(
        {
            "numeric/__init__.py": "",
            "numeric/stats.py": """
                import _json
                import math

                import numpy


                class Summary:
                    def __init__(self, values):
                        self.values = list(values)

                    def describe(self):
                        array = numpy.asarray(self.values)
                        return {"mean": float(array.mean()), "floor": math.floor(array.max())}
            """,
        }
    )
    from numeric.stats import Summary

    summary = Summary([1.5, 2.5, 4.0])
    outputs = []
    for exporter_class, importer_class in [
        (PackageExporter, PackageImporter),
        (torch.package.PackageExporter, torch.package.PackageImporter),
    ]:
        path = tmp_path / f"{exporter_class.__module__}.pt"
        with exporter_class(str(path)) as exporter:
            exporter.intern("numeric.**")
            exporter.extern("numpy.**")
            exporter.save_pickle("stats", "summary.pkl", summary)
        assert "numpy" in exporter.externed_modules()
        assert "_json" in exporter.externed_modules()  # a stdlib C extension: implicit
        outputs.append(importer_class(str(path)).load_pickle("stats", "summary.pkl").describe())
    assert outputs == [summary.describe(), summary.describe()]
