"""Packaged code that reads files beside itself: sources and resources extracted into a
content-addressed cache folder, so that ``__file__``, ``__path__`` and ``os.listdir`` see
real files while module names stay mangled."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import REPO_ROOT, refuse_imports, run_python

from torchpack import ArchiveError, PackageExporter, PackageImporter
from torchpack.loading.file_cache import extract_records

READER = {
    "reader/__init__.py": """
        import json
        import os

        HERE = os.path.dirname(__file__)


        def listing():
            return sorted(os.listdir(HERE))


        def config():
            with open(os.path.join(HERE, "config.json")) as f:
                return json.load(f)
    """,
    "reader/parts/__init__.py": "",
    "reader/parts/extra.py": "EXTRA = 1\n",
}


@pytest.fixture
def reader_package(tmp_path: Path, source_tree) -> Path:
    source_tree(READER)
    target = tmp_path / "reader.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("reader.**")
        exporter.save_module("reader")
        exporter.save_module("reader.parts.extra")
        exporter.save_text("reader", "config.json", '{"hidden": 32}')
    return target


def test_code_reading_files_beside_itself_loads(reader_package: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code = (
        refuse_imports("reader")
        + f"""
import os, sys
from torchpack import PackageImporter

importer = PackageImporter({str(reader_package)!r}, cache_dir={str(cache)!r})
reader = importer.import_module("reader")
assert reader.__name__ == importer.id() + ".reader"
assert reader.listing() == ["__init__.py", "config.json", "parts"], reader.listing()
assert reader.config() == {{"hidden": 32}}
root = importer.files_folder()
assert reader.__file__ == os.path.join(root, "reader", "__init__.py")
assert reader.__path__ == [os.path.join(root, "reader")]
extra = importer.import_module("reader.parts.extra")
assert extra.__file__ == os.path.join(root, "reader", "parts", "extra.py")
print(root)
"""
    )
    root = Path(run_python(code).stdout.strip())
    assert root.parent == cache / "files"
    # Only the package's sources and resources; tensor storages and .data stay in the archive.
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        "reader/__init__.py",
        "reader/config.json",
        "reader/parts/extra.py",
    ]
    # Read-only: code must not change what every later load of the package shares.
    assert stat.S_IMODE((root / "reader" / "__init__.py").stat().st_mode) == 0o444
    assert not [p for p in (cache / "files").iterdir() if p.name.startswith(".")]


def test_folder_is_content_addressed(tmp_path: Path, source_tree) -> None:
    source_tree(READER)

    def export(name: str, config: str) -> Path:
        target = tmp_path / name
        with PackageExporter(target) as exporter:
            exporter.intern("reader.**")
            exporter.save_module("reader")
            exporter.save_text("reader", "config.json", config)
        return target

    same_a, same_b = export("a.pt", '{"hidden": 1}'), export("b.pt", '{"hidden": 1}')
    different = export("c.pt", '{"hidden": 2}')
    cache = tmp_path / "cache"
    folders = []
    for archive in (same_a, same_b, different):
        importer = PackageImporter(archive, cache_dir=cache)
        importer.import_module("reader")
        folders.append(importer.files_folder())
    assert folders[0] == folders[1] != folders[2]
    assert len(list((cache / "files").iterdir())) == 2
    assert PackageImporter(same_a, cache_dir=cache).import_module("reader").config() == {
        "hidden": 1
    }


def test_concurrent_loads_share_one_complete_folder(reader_package: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code = f"""
from torchpack import PackageImporter
importer = PackageImporter({str(reader_package)!r}, cache_dir={str(cache)!r})
assert importer.import_module("reader").config() == {{"hidden": 32}}
print(importer.files_folder())
"""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    loads = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    results = [load.communicate(timeout=120) for load in loads]
    assert all(load.returncode == 0 for load in loads), results
    assert len({out for out, _ in results}) == 1
    # The losers' staging folders are gone; one complete folder remains.
    assert [p.name for p in (cache / "files").iterdir()] == [
        Path(results[0][0].decode().strip()).name
    ]


def test_extract_false_keeps_torch_package_file_names(reader_package: Path, tmp_path: Path) -> None:
    importer = PackageImporter(reader_package, extract=False, cache_dir=tmp_path / "cache")
    reader = importer.import_module("reader")
    assert reader.__file__ == f"{importer.id()}.reader/__init__.py"
    assert importer.files_folder() is None
    assert not (tmp_path / "cache").exists()


def test_code_that_never_mentions_its_file_is_not_extracted(tmp_path: Path, source_tree) -> None:
    source_tree({"plain.py": "VALUE = 1\n"})
    target = tmp_path / "plain.pt"
    with PackageExporter(target) as exporter:
        exporter.intern("plain")
        exporter.save_module("plain")
    cache = tmp_path / "cache"
    default = PackageImporter(target, cache_dir=cache)
    assert default.import_module("plain").__file__ == f"{default.id()}.plain.py"
    assert not cache.exists()
    forced = PackageImporter(target, extract=True, cache_dir=cache)
    assert forced.import_module("plain").__file__ == os.path.join(forced.files_folder(), "plain.py")


def test_unzipped_package_uses_its_own_files(reader_package: Path, tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(reader_package) as archive:
        archive.extractall(tmp_path / "unzipped")
    folder = tmp_path / "unzipped" / "reader"
    importer = PackageImporter(folder, cache_dir=tmp_path / "cache")
    reader = importer.import_module("reader")
    assert reader.__file__ == os.path.join(str(folder.absolute()), "reader", "__init__.py")
    assert reader.config() == {"hidden": 32}
    assert not (tmp_path / "cache").exists()


def test_unwritable_cache(reader_package: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    cache = blocker / "cache"
    # By default the package still loads, with torch.package's names and a warning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader = PackageImporter(reader_package, cache_dir=cache).import_module("reader")
    assert reader.__file__.startswith("<torch_package_")
    assert any("TORCHPACK_CACHE_DIR" in str(w.message) for w in caught)
    with pytest.raises(ArchiveError, match="cannot write its files into the cache folder"):
        PackageImporter(reader_package, extract=True, cache_dir=cache).import_module("reader")


def test_record_names_cannot_write_outside_the_cache(tmp_path: Path) -> None:
    records = {"../escape.py": b"x", "ok.py": b"y"}
    with pytest.raises(ArchiveError, match="not a plain relative path"):
        extract_records("evil.pt", records, records.__getitem__, tmp_path / "cache")
    assert not (tmp_path / "escape.py").exists()
    assert not list((tmp_path).rglob("ok.py"))


def test_export_names_compiled_libraries_its_code_looks_for(tmp_path: Path, source_tree) -> None:
    # A package holds no compiled libraries; code that loads one from beside its file (as
    # torchvision's extension module loads _C.so) is named at export, with the fix.
    source_tree(
        {
            "withops/__init__.py": """
                import os

                LIBRARY = os.path.join(os.path.dirname(__file__), "_ops.so")
            """,
            "withops/_ops.so": "not really a library",
        }
    )
    with pytest.warns(UserWarning) as caught:
        with PackageExporter(tmp_path / "ops.pt") as exporter:
            exporter.intern("withops")
            exporter.save_module("withops")
    (message,) = [str(w.message) for w in caught if "compiled libraries" in str(w.message)]
    assert message.startswith("withops looks for files beside its own")
    assert "_ops.so" in message and 'extern("withops")' in message

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with PackageExporter(tmp_path / "ops_extern.pt") as exporter:
            exporter.extern("withops")
            exporter.save_source_string("user", "import withops\n")
