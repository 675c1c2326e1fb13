"""Property tests over mutated packages, run by ``test_mutations.py`` in a fresh process with a
memory limit and a timeout (a crash or a hang must fail the test, not the run).

Whatever a mutation does, loading ends in identical content or a torchpack error:

- bytes flipped, archives cut, records renamed or dropped: refused or loaded unchanged;
- pickles mutated opcode by opcode with CRCs and manifest recomputed (an attacker's edit):
  with ``safe=True`` they load (as anything) or raise an ``ArchiveError``, nothing else;
- structure mutated anywhere: if ``torchpack verify`` says OK, the package loads, the same.
"""

from __future__ import annotations

import collections
import os
import pickletools
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from bad_archives import PICKLE, archive_records, make_package, make_valid, rebuild
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchpack import PackageImporter
from torchpack.archive.manifest import verify_index
from torchpack.archive.zip_index import ZipIndex
from torchpack.errors import ArchiveError

EXAMPLES = int(os.environ.get("TORCHPACK_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EXPECTED_TENSOR = torch.arange(64, dtype=torch.float32)
_FOLDER = Path(tempfile.mkdtemp(prefix="torchpack-fuzz-"))
VALID = make_valid(_FOLDER / "valid.pt")
# A pickle with the opcodes a model's has: tensors, nested containers, a module, dtypes.
RICH = make_package(
    _FOLDER / "rich" / "valid.pt",
    {
        "t": EXPECTED_TENSOR,
        "module": torch.nn.Linear(2, 2),
        "nested": [(1, 2.5, "three"), {"four": [None, True, b"five"]}, {6, 7}],
        "ordered": collections.OrderedDict(a=torch.ones(2, dtype=torch.int8)),
        "dtype": torch.bfloat16,
    },
)


def _load(path: Path, safe: bool, verify: bool | None = None) -> str:
    """``loaded`` (content identical) or ``refused`` (a torchpack error); anything else fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importer = PackageImporter(path, safe=safe, verify=verify)
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


def _in_scratch(check: Callable[[Path], object]) -> object:
    """``check(path)`` for a fresh path named like the valid package (its top folder)."""
    with tempfile.TemporaryDirectory(dir=_FOLDER) as folder:
        return check(Path(folder) / "valid.pt")


def _with_bytes(data: bytes, check: Callable[[Path], object]) -> object:
    def written(path: Path) -> object:
        path.write_bytes(data)
        return check(path)

    return _in_scratch(written)


@SETTINGS
@given(st.data(), st.booleans())
def flipped_bytes(data, safe):
    raw = bytearray(VALID.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    _with_bytes(bytes(raw), lambda path: _load(path, safe))


@SETTINGS
@given(st.data())
def cut_archives(data):
    raw = VALID.read_bytes()
    start = data.draw(st.integers(0, len(raw) - 1))
    end = data.draw(st.integers(start, len(raw)))
    _with_bytes(raw[:start] + raw[end:], lambda path: _load(path, safe=False))


@SETTINGS
@given(st.data())
def renamed_records(data):
    raw = VALID.read_bytes()
    names = [b"data/t.pkl", b"data/notes.txt", b"victim.py", b".data/version", b".data/0.storage"]
    name = data.draw(st.sampled_from(names))
    position = data.draw(st.integers(0, len(name) - 1))
    replacement = data.draw(st.sampled_from([b"/", b".", b"x", b"X", b"\\", b"\x00", b":"]))
    renamed = name[:position] + replacement + name[position + 1 :]
    # Both copies (local header and central directory), or only the first one.
    count = data.draw(st.sampled_from([1, -1]))
    _with_bytes(raw.replace(name, renamed, count), lambda path: _load(path, safe=False))


@SETTINGS
@given(st.sampled_from([PICKLE, "data/notes.txt", "victim.py", ".data/0.storage"]))
def dropped_records(record):
    with tempfile.TemporaryDirectory(dir=_FOLDER) as folder:
        target = rebuild(
            VALID,
            Path(folder) / "valid.pt",
            lambda records: [(n, d) for n, d in records if n != record],
            recompute_manifest=False,
        )
        assert _load(target, safe=False) == "refused"


_OPCODES = sorted({op.code.encode("latin-1") for op in pickletools.opcodes})


@SETTINGS
@given(st.data())
def mutated_pickles_load_safely_or_are_refused(data):
    """An attacker's edit: the pickle changed, CRCs and manifest recomputed to match."""
    _, records = archive_records(RICH)
    pickled = bytearray(dict(records)[PICKLE])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(pickled)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "opcode", "duplicate"]))
        if action == "flip" and at < len(pickled):
            pickled[at] ^= data.draw(st.integers(1, 255))
        elif action == "insert":
            pickled[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del pickled[at : at + data.draw(st.integers(1, 8))]
        elif action == "opcode":
            pickled[at:at] = data.draw(st.sampled_from(_OPCODES))
        else:
            size = data.draw(st.integers(1, 32))
            pickled[at:at] = pickled[max(0, at - size) : at]
    changed = [(n, bytes(pickled) if n == PICKLE else d) for n, d in records]

    def load(path: Path) -> None:
        rebuild(RICH, path, lambda _: changed)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                PackageImporter(path, safe=True).load_pickle("data", "t.pkl")
        except ArchiveError as err:
            assert str(path) in str(err) and err.record is not None

    _in_scratch(load)


@SETTINGS
@given(st.data())
def verified_archives_load(data):
    """If ``torchpack verify`` (the torch-free reading) says OK, PyTorch reads the same."""
    raw = bytearray(VALID.read_bytes())
    directory = raw.rfind(b"PK\x01\x02", 0, raw.rfind(b"PK\x05\x06"))
    # Structure only: headers, directory and end records (record bytes are the manifest's).
    structural = [i for i in range(len(raw)) if i >= directory or _in_local_header(raw, i)]
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.sampled_from(structural))] ^= data.draw(st.integers(1, 255))

    def check(path: Path) -> None:
        try:
            _, problems = verify_index(ZipIndex(path))
        except ArchiveError:
            return
        if not problems:
            assert _load(path, safe=True, verify=True) == "loaded"

    _with_bytes(bytes(raw), check)


def _in_local_header(raw: bytearray, position: int) -> bool:
    start = raw.rfind(b"PK\x03\x04", 0, position + 1)
    return start >= 0 and position < start + 30 + int.from_bytes(
        raw[start + 26 : start + 28], "little"
    )


PROPERTIES = {
    "flipped_bytes": flipped_bytes,
    "cut_archives": cut_archives,
    "renamed_records": renamed_records,
    "dropped_records": dropped_records,
    "mutated_pickles_load_safely_or_are_refused": mutated_pickles_load_safely_or_are_refused,
    "verified_archives_load": verified_archives_load,
}
