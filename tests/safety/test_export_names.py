"""The exporter refuses, at the save_* call, every name its own importer would refuse or misread,
before the previous archive is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchpack import PackageExporter, PackageImporter

BAD_RESOURCES = [
    ("pkg", "../escape.txt"),
    ("pkg", "/etc/passwd"),
    ("pkg", "a\\b.txt"),
    ("pkg", "nul\x00.txt"),
    ("pkg", "new\nline.txt"),
    ("pkg", "file\x1cseparator.txt"),
    ("pkg", "next\x85line.txt"),
    ("pkg", "para\u2029graph.txt"),
    (".data", "manifest.blake3"),
    ("pkg..sub", "x.txt"),
    ("/abs", "x.txt"),
    ("", "byteorder"),
    ("", ".data"),
    ("", "_mock.py"),
]
SAVES = {
    "save_text": lambda exporter, package, resource: exporter.save_text(package, resource, "x"),
    "save_binary": lambda exporter, package, resource: exporter.save_binary(package, resource, b""),
    "save_pickle": lambda exporter, package, resource: exporter.save_pickle(package, resource, 1),
}
BAD_MODULES = ["../evil", "a..b", ".hidden", "a\x00b", "line\nbreak", "a/b", "_mock",
               "torch_package_importer"]  # fmt: skip


@pytest.fixture
def previous(tmp_path: Path) -> Path:
    path = tmp_path / "p.pt"
    with PackageExporter(path) as exporter:
        exporter.save_text("res", "version.txt", "previous")
    return path


@pytest.mark.parametrize("save", sorted(SAVES))
@pytest.mark.parametrize(("package", "resource"), BAD_RESOURCES)
def test_bad_resource_names_are_refused_at_the_call(previous, save, package, resource):
    original = previous.read_bytes()
    exporter = PackageExporter(previous)
    with pytest.raises(ValueError, match="resource|package name"):
        SAVES[save](exporter, package, resource)
    exporter.save_text("res", "fine.txt", "the exporter is still usable")
    exporter.close()
    assert PackageImporter(previous).load_text("res", "fine.txt").startswith("the exporter")
    assert original != previous.read_bytes()


@pytest.mark.parametrize("module", BAD_MODULES)
def test_bad_module_names_are_refused_at_the_call(previous, module):
    original = previous.read_bytes()
    with pytest.raises(ValueError, match="module name"), PackageExporter(previous) as exporter:
        exporter.save_source_string(module, "VALUE = 1\n")
    assert previous.read_bytes() == original


def test_a_file_name_that_makes_a_bad_top_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="choose another file name"):
        PackageExporter(tmp_path / "bad\nname.pt")
    assert list(tmp_path.iterdir()) == []


def test_good_names_still_work(tmp_path):
    path = tmp_path / "ok.pt"
    with PackageExporter(path) as exporter:
        exporter.save_text("", "README.txt", "top")
        exporter.save_text("my.pkg", "naïve café.txt", "unicode is fine")
        exporter.save_pickle("my.pkg", "t.pkl", torch.ones(2))
        exporter.save_source_string("fx-generated._0", "VALUE = 1\n")
    importer = PackageImporter(path, verify=True)
    assert importer.load_text("my.pkg", "naïve café.txt") == "unicode is fine"
    assert importer.import_module("fx-generated._0").VALUE == 1
