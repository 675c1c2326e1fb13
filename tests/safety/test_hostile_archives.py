"""Every bad archive of the corpus gives a documented torchpack exception naming the archive and
the record: no crash, no hang, no blow-up, nothing run, nothing written outside.

Cases are loaded in a fresh process with a memory limit and a timeout (``corpus_runner.py``):
a segfault, a hang or a huge allocation fails the case, not the test run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from bad_archives import ROOT, Case, build_corpus, ran_marker
from conftest import run_cli, run_python

from torchpack import PackageImporter

HERE = Path(__file__).parent
MEMORY_LIMIT_MIB = 2048
CASES = [
    "empty",
    "random_bytes",
    "truncated",
    "no_end_of_central_directory",
    "bad_crc",
    "short_storage",
    "dotdot_name",
    "absolute_name",
    "duplicate_name",
    "names_differing_in_case",
    "compressed_record",
    "zip_bomb_declared_size",
    "zip_bomb_inflated",
    "split_view",
    "prefix_bytes",
    "version_5000_digits",
    "record_21000_folders_deep",
    "torchscript_code_edited",
    "torchscript_weights_edited",
    "truncated_pickle",
    "garbage_pickle",
    "deep_pickle",
    "deep_tuple_as_dict_key",
    "missing_module",
    "bytearray_3gib",
    "list_of_range_2_31",
    "tensor_constructor_2_40",
    "module_constructor",
    "tensor_bigger_than_its_storage",
    "sparse_csr_out_of_range",
    "sparse_coo_out_of_range",
    "nested_outside_its_buffer",
    "build_on_an_allowed_class",
    "build_on_a_parameter",
    "numpy_glob_reaches_os",
    "torch_nn_glob_reaches_os",
    "persistent_id_not_a_tuple",
    "persistent_id_empty",
    "persistent_id_kind_not_ascii",
    "persistent_storage_id_short",
    "persistent_storage_on_cuda_7",
    "wrapper_subclass_of_int",
    "tensor_copied_to_cuda_7",
    "no_version",
    "future_version",
    "syntax_error_source",
    "source_not_utf8",
    "source_nested_too_deep",
    "symlink_out",
    "folders_nested_300_deep",
    "fifo_record",
    *(["device_record"] if ROOT else []),
    "fifo_archive_mapped",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return {case.name: case for case in build_corpus(tmp_path_factory.mktemp("corpus"))}


def _run(folder: Path, names: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Outcomes of the cases, loaded in a fresh process; cases it did not reach are missing."""
    code = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import corpus_runner
sys.argv = ["corpus_runner", {str(folder)!r}, *{names!r}]
corpus_runner.main()
"""
    try:
        result = run_python(code, timeout=timeout, memory_limit_mib=MEMORY_LIMIT_MIB, check=False)
        output = result.stdout
    except subprocess.TimeoutExpired as timeout_error:
        output = timeout_error.stdout or ""
        output = output.decode() if isinstance(output, bytes) else output
    reports = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return {report["name"]: report for report in reports}


@pytest.fixture(scope="module")
def outcomes(corpus: dict[str, Case]) -> dict[str, dict[str, Any]]:
    folder = corpus["empty"].path.parent
    return _run(folder, [], timeout=600)


def test_corpus_is_complete(corpus):
    assert sorted(corpus) == sorted(CASES)


@pytest.mark.parametrize("name", CASES)
def test_bad_archive_raises_documented_error(corpus, outcomes, name):
    case = corpus[name]
    folder = corpus["empty"].path.parent
    report = outcomes.get(name)
    if report is None:  # the shared process crashed or hung before this case: run it alone
        report = _run(folder, [name], timeout=120).get(name)
    assert report is not None, f"{name}: the process crashed, hung or ran out of memory"
    assert report["raised"], f"{name} was not refused: {report}"
    assert case.error.__name__ in report["raised"], report
    assert report["archive"] == os.fspath(case.path)
    assert report["record"] == case.record
    assert re.search(case.message, report["message"]), report["message"]
    assert os.fspath(case.path) in report["message"]
    if case.record:
        assert repr(case.record) in report["message"]
    assert not ran_marker(folder, name).exists(), "the package ran a command"


def test_nothing_is_written_beside_the_corpus(corpus, outcomes):
    folder = corpus["empty"].path.parent
    before = {p.name for p in folder.iterdir()}
    _run(folder, ["split_view", "numpy_glob_reaches_os"], timeout=120)
    assert {p.name for p in folder.iterdir()} == before


def test_the_valid_package_of_the_corpus_loads(corpus):
    valid = corpus["empty"].path.parent / "valid.pt"
    importer = PackageImporter(valid, safe=True, verify=True)
    assert importer.load_pickle("data", "t.pkl")["t"].sum().item() == sum(range(64))
    assert importer.import_module("victim").VALUE == 42


def test_the_genuine_half_of_the_split_view_loads(corpus):
    genuine = corpus["empty"].path.parent / "split_view_parts" / "genuine" / "split_view.pt"
    loaded = PackageImporter(genuine, mmap=True).load_pickle("data", "t.pkl")["t"]
    assert torch.equal(loaded, torch.arange(64, dtype=torch.float32))


def test_deep_pickle_loads_without_crash_when_not_safe(corpus):
    # The C unpickler builds nesting iteratively: without safe=True the deep list loads as what
    # it is (the scan that refuses it costs time only safe loading pays).
    loaded = PackageImporter(corpus["deep_pickle"].path).load_pickle("data", "t.pkl")
    depth = 1
    while loaded:
        loaded = loaded[0]
        depth += 1
    assert loaded == [] and depth == 100_000


@pytest.mark.parametrize("command", ["inspect", "audit", "verify"])
def test_cli_reports_bad_archives_without_traceback(corpus, command):
    for name in CASES:
        case = corpus[name]
        # The split view is refused when opened too: verify must not print the genuine half's
        # manifest digest for it.
        if (case.stage != "open" and name != "split_view") or case.path.is_dir():
            continue
        result = run_cli(command, str(case.path), timeout=60, memory_limit_mib=MEMORY_LIMIT_MIB)
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert str(case.path) in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
