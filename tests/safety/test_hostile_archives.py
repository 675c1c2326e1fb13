"""Every bad archive of the corpus gives a documented torchpack exception naming the archive
and the record: no crash, no hang, nothing written outside."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from bad_archives import Case, build_corpus
from conftest import run_cli, run_python

from torchpack import PackageImporter

CASES = [
    "empty",
    "random_bytes",
    "truncated",
    "no_end_of_central_directory",
    "bad_crc",
    "short_storage",
    "truncated_pickle",
    "garbage_pickle",
    "deep_pickle",
    "missing_module",
    "no_version",
    "future_version",
    "syntax_error_source",
    "source_not_utf8",
    "dotdot_name",
    "absolute_name",
    "duplicate_name",
    "compressed_record",
    "zip_bomb_declared_size",
    "zip_bomb_inflated",
    "symlink_out",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return {case.name: case for case in build_corpus(tmp_path_factory.mktemp("corpus"))}


def _exercise(case: Case) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own TypedStorage warnings are not the point
        importer = PackageImporter(case.path, safe=case.stage == "load_safe")
        if case.stage in ("load", "load_safe"):
            importer.load_pickle("data", "t.pkl")
        elif case.stage == "import":
            importer.import_module("victim")


def test_corpus_is_complete(corpus):
    assert sorted(corpus) == sorted(CASES)


@pytest.mark.parametrize("name", CASES)
def test_bad_archive_raises_documented_error(corpus, name):
    case = corpus[name]
    before = set(os.listdir(case.path.parent.parent))
    with pytest.raises(case.error, match=case.message) as info:
        _exercise(case)
    assert info.value.archive == os.fspath(case.path)
    assert info.value.record == case.record
    assert os.fspath(case.path) in str(info.value)
    if case.record:
        assert repr(case.record) in str(info.value)
    assert set(os.listdir(case.path.parent.parent)) == before


def test_the_valid_package_of_the_corpus_loads(corpus):
    valid = corpus["empty"].path.parent / "valid.pt"
    importer = PackageImporter(valid, safe=True, verify=True)
    assert importer.load_pickle("data", "t.pkl")["t"].sum().item() == sum(range(64))
    assert importer.import_module("victim").VALUE == 42


def test_deep_pickle_loads_without_crash_when_not_safe(corpus):
    # The C unpickler builds nesting iteratively: without safe=True the deep list loads as what
    # it is (the scan that refuses it costs time only safe loading pays).
    loaded = PackageImporter(corpus["deep_pickle"].path).load_pickle("data", "t.pkl")
    depth = 1
    while loaded:
        loaded = loaded[0]
        depth += 1
    assert loaded == [] and depth == 100_000


def test_whole_corpus_in_a_fresh_process_never_crashes_or_hangs(corpus):
    """A segfault or a hang would kill pytest itself; here it shows as a failed subprocess."""
    folder = corpus["empty"].path.parent
    script = f"""
import sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, {str(Path(__file__).parent)!r})
from bad_archives import build_corpus
from torchpack import PackageImporter
from torchpack.errors import ArchiveError
from pathlib import Path
for case in build_corpus(Path({str(folder / "again")!r})):
    try:
        importer = PackageImporter(case.path, safe=case.stage == "load_safe")
        importer.load_pickle("data", "t.pkl") if case.stage != "import" else None
        importer.import_module("victim")
    except ArchiveError:
        print("refused", case.name)
"""
    result = run_python(script)
    assert result.stdout.count("refused") == len(CASES)


@pytest.mark.parametrize("command", ["inspect", "audit", "verify"])
def test_cli_reports_bad_archives_without_traceback(corpus, command):
    for name in CASES:
        case = corpus[name]
        if case.stage != "open" or name == "symlink_out":
            continue
        result = run_cli(command, str(case.path), timeout=60)
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert str(case.path) in result.stderr
