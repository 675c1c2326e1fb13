"""Property: a mutated package either loads with identical content or raises a torchpack error.

Bytes flipped, archives cut short, record names changed, records dropped: whatever hypothesis
does to a valid package, loading must never crash, hang, or quietly return different content.
The suite runs a bounded number of examples; for a longer run::

    TORCHPACK_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/safety/test_mutations.py
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from bad_archives import PICKLE, make_valid, rebuild
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchpack import PackageImporter
from torchpack.errors import ArchiveError

EXAMPLES = int(os.environ.get("TORCHPACK_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EXPECTED_TENSOR = torch.arange(64, dtype=torch.float32)


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_valid(tmp_path_factory.mktemp("fuzz") / "valid.pt")


def _load_and_compare(data: bytes, safe: bool) -> str:
    """``loaded`` (content identical) or ``refused`` (a torchpack error); anything else fails."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.pt"
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importer = PackageImporter(path, safe=safe)
                tensor = importer.load_pickle("data", "t.pkl")["t"]
                notes = importer.load_text("data", "notes.txt")
                value = importer.import_module("victim").VALUE
        except ArchiveError as err:
            assert str(path) in str(err)
            return "refused"
    assert torch.equal(tensor, EXPECTED_TENSOR)
    assert notes == "hello"
    assert value == 42
    return "loaded"


@SETTINGS
@given(st.data(), st.booleans())
def test_flipped_bytes(valid, data, safe):
    raw = bytearray(valid.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    _load_and_compare(bytes(raw), safe)


@SETTINGS
@given(st.data())
def test_cut_archives(valid, data):
    raw = valid.read_bytes()
    start = data.draw(st.integers(0, len(raw) - 1))
    end = data.draw(st.integers(start, len(raw)))
    assert _load_and_compare(raw[:start] + raw[end:], safe=False) in ("loaded", "refused")


@SETTINGS
@given(st.data())
def test_renamed_records(valid, data):
    raw = valid.read_bytes()
    names = [b"data/t.pkl", b"data/notes.txt", b"victim.py", b".data/version", b".data/0.storage"]
    name = data.draw(st.sampled_from(names))
    position = data.draw(st.integers(0, len(name) - 1))
    replacement = data.draw(st.sampled_from([b"/", b".", b"x", b"\\", b"\x00", b":"]))
    renamed = name[:position] + replacement + name[position + 1 :]
    # Both copies (local header and central directory), or only the first one.
    count = data.draw(st.sampled_from([1, -1]))
    _load_and_compare(raw.replace(name, renamed, count), safe=False)


@SETTINGS
@given(st.sampled_from([PICKLE, "data/notes.txt", "victim.py", ".data/0.storage"]))
def test_dropped_records(valid, record):
    with tempfile.TemporaryDirectory() as folder:
        target = rebuild(
            valid,
            Path(folder) / "dropped.pt",
            lambda records: [(n, d) for n, d in records if n != record],
            recompute_manifest=False,
        )
        assert _load_and_compare(target.read_bytes(), safe=False) == "refused"
