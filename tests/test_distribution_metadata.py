"""``importlib.metadata`` inside a package, for the distributions of interned libraries."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from conftest import read_text_record, records_of, refuse_imports, run_python

from torchpack import PackageExporter, PackageImporter

METADATA = "Metadata-Version: 2.1\nName: My-Lib\nVersion: 1.2.3\nRequires-Dist: numpy\n"

LIBRARY = {
    "mylib/__init__.py": """
        import importlib.metadata


        def version():
            return importlib.metadata.version("my_lib")


        def distribution():
            return importlib.metadata.distribution("My-Lib")
    """,
    "my_lib-1.2.3.dist-info/METADATA": METADATA,
    "my_lib-1.2.3.dist-info/top_level.txt": "mylib\n",
    "my_lib-1.2.3.dist-info/RECORD": "mylib/__init__.py,,\n",
}


@pytest.fixture
def library_package(tmp_path: Path, source_tree) -> Path:
    source_tree(LIBRARY)
    assert importlib.metadata.version("my-lib") == "1.2.3"
    target = tmp_path / "mylib.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("mylib")
        exporter.save_module("mylib")
    return target


def test_package_carries_the_metadata_of_interned_distributions(library_package: Path) -> None:
    records = records_of(library_package)
    assert read_text_record(library_package, "my_lib-1.2.3.dist-info/METADATA") == METADATA
    # Only METADATA: RECORD and the rest describe an installation.
    assert [record for record in records if ".dist-info/" in record] == [
        "my_lib-1.2.3.dist-info/METADATA"
    ]


def test_version_answers_inside_the_package(library_package: Path) -> None:
    # Neither the library nor its metadata is installed where the package loads.
    code = (
        refuse_imports("mylib")
        + f"""
import importlib.metadata
from torchpack import PackageImporter

importer = PackageImporter({str(library_package)!r})
mylib = importer.import_module("mylib")
assert mylib.version() == "1.2.3"
assert mylib.distribution().requires == ["numpy"]
# Code outside the package does not see it.
try:
    importlib.metadata.version("my_lib")
except importlib.metadata.PackageNotFoundError:
    print("ok")
"""
    )
    assert run_python(code).stdout.strip() == "ok"


def test_modules_without_a_distribution_add_no_metadata(tmp_path: Path, source_tree) -> None:
    source_tree({"loose.py": "VALUE = 1\n"})
    target = tmp_path / "loose.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("loose")
        exporter.save_module("loose")
    assert not any(".dist-info" in record for record in records_of(target))
    assert PackageImporter(target).find_distributions(None) == []
