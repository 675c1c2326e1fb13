import json
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from torchpack.analysis import module_analysis
from torchpack.analysis.import_scanner import ImportAnalysisError, ImportRef, find_imports
from torchpack.analysis.module_analysis import (
    AnalysisCache,
    AnalysisIndex,
    ModuleAnalysis,
    analyze_module,
)

SOURCE = b"import os\nfrom . import sibling\nfrom .sub import thing\nimportlib.import_module(x)\n"


def test_analysis_matches_the_scanner():
    analysis = analyze_module(SOURCE, "pkg.mod", False, "/somewhere/pkg/mod.py")
    scan = find_imports(SOURCE, "pkg.mod", False)
    assert analysis.imports == scan.imports
    assert analysis.imports == (
        ImportRef("os"),
        ImportRef("pkg", "sibling"),
        ImportRef("pkg.sub", "thing"),
    )
    assert analysis.module_name == "pkg.mod"
    assert analysis.is_package is False
    assert len(analysis.source_sha256) == 64


def test_warnings_name_the_relative_path_not_the_file_location():
    source = b"import importlib\nimportlib.import_module(name)\n"
    here = analyze_module(source, "pkg.mod", False, "/tmp/a/pkg/mod.py")
    there = analyze_module(source, "pkg.mod", False, "/other/b/pkg/mod.py")
    assert here == there
    (warning,) = here.warnings
    assert "pkg/mod.py, line 2" in warning
    assert "/tmp/a" not in here.to_json()


def test_errors_name_the_real_file():
    with pytest.raises(ImportAnalysisError, match="/src/pkg/broken.py, line 1"):
        analyze_module(b"def (:\n", "pkg.broken", False, "/src/pkg/broken.py")


def test_json_round_trip_is_canonical():
    analysis = analyze_module(SOURCE, "pkg", True, "pkg/__init__.py")
    text = analysis.to_json()
    assert ModuleAnalysis.from_json(text) == analysis
    assert ModuleAnalysis.from_json(text.encode()).to_json() == text
    assert list(json.loads(text)) == sorted(json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"analyzer_version": "0"}',
        json.dumps(
            {
                "analyzer_version": module_analysis.ANALYZER_VERSION,
                "module_name": 3,
                "is_package": False,
                "source_sha256": "x",
                "imports": [],
                "warnings": [],
            }
        ),
    ],
)
def test_from_json_rejects_anything_else(text):
    with pytest.raises(ValueError, match="module analysis|analyzer version"):
        ModuleAnalysis.from_json(text)


def test_cache_hit_skips_parsing(tmp_path, parse_calls):
    cache = AnalysisCache(tmp_path / "cache")
    first = cache.analyze(SOURCE, "pkg.mod", False, "pkg/mod.py")
    cache.flush()
    assert parse_calls == ["pkg.mod"]
    again = AnalysisCache(tmp_path / "cache").analyze(SOURCE, "pkg.mod", False, "elsewhere.py")
    assert parse_calls == ["pkg.mod"]
    assert again == first == analyze_module(SOURCE, "pkg.mod", False, "pkg/mod.py")
    assert (cache.hits, cache.misses) == (0, 1)


def test_cache_keys_on_name_kind_and_source(tmp_path, parse_calls):
    cache = AnalysisCache(tmp_path)
    cache.analyze(SOURCE, "pkg.mod", False, "f")
    cache.analyze(SOURCE, "pkg.mod", True, "f")  # relative imports resolve differently
    cache.analyze(SOURCE, "other.mod", False, "f")
    cache.analyze(SOURCE + b"\n", "pkg.mod", False, "f")
    cache.flush()
    cache.analyze(SOURCE, "pkg.mod", False, "f")
    assert len(parse_calls) == 4
    assert (cache.hits, cache.misses) == (1, 4)
    assert cache.analyze(SOURCE, "pkg.mod", True, "f").imports[1] == ImportRef("pkg.mod", "sibling")


def stored_entries(folder):
    """The cache database's rows, read with SQLite itself."""
    with closing(sqlite3.connect(folder / AnalysisCache.FILENAME)) as database:
        return dict(database.execute("SELECT key, entry FROM analyses"))


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: "",
        lambda text: text[: len(text) // 2],
        lambda text: "\xff garbage",
        lambda text: 42,
        # Valid JSON that describes another source: filed under the wrong key.
        lambda text: text.replace('"pkg.mod"', '"pkg.other"'),
    ],
)
def test_corrupt_entries_are_recomputed(tmp_path, parse_calls, damage):
    cache = AnalysisCache(tmp_path)
    expected = cache.analyze(SOURCE, "pkg.mod", False, "f")
    cache.flush()
    ((key, text),) = stored_entries(tmp_path).items()
    with closing(sqlite3.connect(tmp_path / AnalysisCache.FILENAME)) as database, database:
        database.execute("UPDATE analyses SET entry = ? WHERE key = ?", (damage(text), key))
    assert cache.analyze(SOURCE, "pkg.mod", False, "f") == expected
    cache.flush()
    assert len(parse_calls) == 2
    assert stored_entries(tmp_path) == {key: text}  # repaired
    assert cache.analyze(SOURCE, "pkg.mod", False, "f") == expected
    assert len(parse_calls) == 2


def test_entries_are_stored_at_flush_in_one_database(tmp_path):
    cache = AnalysisCache(tmp_path)
    for i in range(5):
        cache.analyze(SOURCE + b"#" * i, "pkg.mod", False, "f")
    assert not (tmp_path / AnalysisCache.FILENAME).exists() or not stored_entries(tmp_path)
    cache.flush()
    assert len(stored_entries(tmp_path)) == 5
    assert {p.name for p in tmp_path.iterdir() if p.is_file()} <= {
        AnalysisCache.FILENAME,
        f"{AnalysisCache.FILENAME}-wal",
        f"{AnalysisCache.FILENAME}-shm",
    }


_CONCURRENT_WRITER = """
import sys
from torchpack.analysis.module_analysis import AnalysisCache
cache = AnalysisCache(sys.argv[1])
for round in range(10):
    for i in range(20):
        cache.analyze(b"import os%d\\n" % i, f"w{sys.argv[2]}.m{round}_{i}", False, "f")
    cache.flush()
"""


def test_builds_sharing_a_cache_can_write_at_the_same_time(tmp_path):
    writers = [
        subprocess.Popen([sys.executable, "-c", _CONCURRENT_WRITER, str(tmp_path), str(n)])
        for n in range(4)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0] * 4
    entries = stored_entries(tmp_path)
    assert len(entries) == 4 * 10 * 20
    writers_seen = {ModuleAnalysis.from_json(t).module_name.split(".")[0] for t in entries.values()}
    assert writers_seen == {"w0", "w1", "w2", "w3"}


def test_a_damaged_database_is_named_in_the_error(tmp_path):
    (tmp_path / AnalysisCache.FILENAME).write_bytes(b"not a database, " * 512)
    with pytest.raises(OSError, match=f"analysis cache {tmp_path}.*delete it"):
        AnalysisCache(tmp_path).analyze(SOURCE, "pkg.mod", False, "f")


def test_a_file_where_the_folder_should_be_is_named_in_the_error(tmp_path):
    (tmp_path / "cache").write_text("a file")
    with pytest.raises(OSError, match=f"analysis cache {tmp_path / 'cache'}.*another cache folder"):
        AnalysisCache(tmp_path / "cache").analyze(SOURCE, "pkg.mod", False, "f")


def test_unparsable_sources_are_not_cached(tmp_path):
    cache = AnalysisCache(tmp_path)
    for _ in range(2):
        with pytest.raises(ImportAnalysisError):
            cache.analyze(b"def (:\n", "pkg.broken", False, "pkg/broken.py")
    cache.analyze(SOURCE, "pkg.mod", False, "f")
    cache.flush()
    assert [ModuleAnalysis.from_json(t).module_name for t in stored_entries(tmp_path).values()] == [
        "pkg.mod"
    ]


def test_index_serves_precomputed_analyses_without_parsing(tmp_path, parse_calls):
    files = []
    for name, source in [("a", b"import b\n"), ("b", b"import os\n")]:
        path = tmp_path / f"{name}.json"
        path.write_text(analyze_module(source, name, False, f"{name}.py").to_json())
        files.append(path)
    parse_calls.clear()
    index = AnalysisIndex.from_files(files)
    assert index.analyze(b"import b\n", "a", False, "a.py").imports == (ImportRef("b"),)
    assert parse_calls == []
    # Edited since it was analysed: analysed again, and reported.
    assert index.analyze(b"import c\n", "a", False, "a.py").imports == (ImportRef("c"),)
    assert (index.hits, index.misses, parse_calls) == (1, ["a"], ["a"])


def test_index_names_a_broken_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="bad.json"):
        AnalysisIndex.from_files([bad])
