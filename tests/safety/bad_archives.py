"""Builds the corpus of hostile and malformed packages that the safety tests load.

Every case starts from a valid package (a tensor pickle, a text resource and an interned
module ``victim``) and breaks one thing, the way an attacker would: real ZIP bytes edited,
pickles whose ``__reduce__`` calls what the attacker wants, crafted opcodes, real tensors.
``cases.json`` in the folder describes each case for ``corpus_runner.py``, which loads them in a
fresh process with a memory limit. Run this file with an output folder to get the corpus::

    .venv/bin/python tests/safety/bad_archives.py OUT_DIR
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import struct
import sys
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import blake3
import torch

from torchpack import PackageExporter
from torchpack.archive.zip_checksums import fill_in_crcs
from torchpack.errors import (
    ArchiveError,
    IntegrityError,
    MalformedArchiveError,
    MissingModuleError,
    UnsafeGlobalError,
)

PICKLE = "data/t.pkl"
STORAGE = ".data/0.storage"
MODULE = "victim.py"
MANIFEST = ".data/manifest.blake3"
ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Case:
    """A broken package, and what loading it must raise.

    ``stage`` is how far the runner goes: ``open`` (PackageImporter), ``load`` (load_pickle of
    data/t.pkl), ``import`` (import_module of ``victim``) or ``text`` (load_text of
    data/notes.txt); ``options`` are PackageImporter's keywords; ``then`` is Python run on
    ``result`` if the stage succeeds (it must not: it shows what the package would do).
    """

    name: str
    path: Path
    stage: str
    error: type[ArchiveError]
    record: str | None
    message: str
    options: dict[str, Any] = field(default_factory=dict)
    then: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "path": os.fspath(self.path), "error": self.error.__name__}


class Reduce:
    """Pickles as ``function(*args)``: how an attacker makes a pickle call what they want."""

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self.function = function
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.function, self.args


class ReduceWithState(Reduce):
    """Pickles as ``function(*args)``, then BUILD with ``state``."""

    def __init__(self, function: Callable[..., Any], args: tuple, state: Any) -> None:
        super().__init__(function, *args)
        self.state = state

    def __reduce__(self) -> tuple[Any, ...]:  # type: ignore[override]
        return self.function, self.args, self.state


def make_valid(path: Path) -> Path:
    return make_package(path, {"t": torch.arange(64, dtype=torch.float32)})


def make_package(
    path: Path, obj: Any = None, raw: bytes | None = None, externs: tuple[str, ...] = ()
) -> Path:
    """The corpus's package, with ``data/t.pkl`` holding ``obj`` pickled, or ``raw`` bytes;
    ``externs`` are modules it lists as extern (which a crafted pickle may name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with PackageExporter(path) as exporter:
        for module in externs:
            exporter.extern(module)
            exporter.add_dependency(module)
        exporter.save_source_string("victim", "VALUE = 41 + 1\n")
        exporter.save_text("data", "notes.txt", "hello")
        if raw is not None:
            exporter.save_binary("data", "t.pkl", raw)
        else:
            exporter.save_pickle("data", "t.pkl", obj)
    return path


def archive_records(path: Path) -> tuple[str, list[tuple[str, bytes]]]:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        top = infos[0].filename.split("/", 1)[0]
        return top, [(info.filename.split("/", 1)[1], archive.read(info)) for info in infos]


def manifest_for(records: list[tuple[str, bytes]]) -> bytes:
    lines = sorted(
        f"{blake3.blake3(data).hexdigest()}  {name}"
        for name, data in records
        if name not in (MANIFEST, ".data/version", "byteorder", ".data/serialization_id")
    )
    return "".join(line + "\n" for line in lines).encode()


def rebuild(
    valid: Path,
    target: Path,
    change: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]],
    *,
    recompute_manifest: bool = True,
    compress: str | None = None,
) -> Path:
    """Rewrite ``valid`` with the standard library after ``change`` edits its records.

    The manifest is recomputed so that the damage is the case's own, not a digest mismatch.
    """
    top, records = archive_records(valid)
    records = change(records)
    if recompute_manifest:
        manifest = manifest_for(records)
        records = [(n, manifest if n == MANIFEST else d) for n, d in records]
    with zipfile.ZipFile(target, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the duplicate-name case is deliberate
        for name, data in records:
            info = zipfile.ZipInfo(name if name.startswith("/") else f"{top}/{name}")
            info.compress_type = zipfile.ZIP_DEFLATED if name == compress else zipfile.ZIP_STORED
            archive.writestr(info, data)
    return target


def _replace(record: str, data: bytes | None) -> Callable:
    def change(records: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        if data is None:
            return [(n, d) for n, d in records if n != record]
        return [(n, data if n == record else d) for n, d in records]

    return change


def _add(record: str, data: bytes) -> Callable:
    return lambda records: [*records, (record, data)]


def _patch_central_entry(path: Path, record_suffix: str, field_offset: int, value: bytes) -> None:
    """Overwrite a field of a record's central-directory entry (offsets as in the ZIP spec)."""
    data = bytearray(path.read_bytes())
    position = data.find(b"PK\x01\x02")
    while position != -1:
        name_length = struct.unpack_from("<H", data, position + 28)[0]
        name = bytes(data[position + 46 : position + 46 + name_length]).decode()
        if name.endswith(record_suffix):
            data[position + field_offset : position + field_offset + len(value)] = value
            path.write_bytes(bytes(data))
            return
        position = data.find(b"PK\x01\x02", position + 4)
    raise AssertionError(f"no central entry for {record_suffix}")


def _data_offset(path: Path, record: str) -> int:
    with zipfile.ZipFile(path) as archive:
        (info,) = [i for i in archive.infolist() if i.filename.split("/", 1)[1] == record]
    raw = path.read_bytes()
    name_length, extra_length = struct.unpack_from("<2H", raw, info.header_offset + 26)
    return info.header_offset + 30 + name_length + extra_length


def edit_in_place(path: Path, record: str, at: int, new: bytes) -> Path:
    """Change bytes of a record where they are, and recompute every CRC: a careful attacker."""
    data = bytearray(path.read_bytes())
    start = _data_offset(path, record) + at
    data[start : start + len(new)] = new
    path.write_bytes(bytes(data))
    fill_in_crcs(os.fspath(path), {})
    return path


def split_view(folder: Path) -> Path:
    """A genuine package with an attacker's prepended, and the ZIP64 locator pointing into it.

    Python's zipfile follows the end records at the end (shifting offsets by the prefix): the
    genuine package. PyTorch's reader follows the locator: the attacker's, whose tensors differ.
    """
    genuine = make_valid(folder / "genuine" / "split_view.pt").read_bytes()
    attacker = make_package(
        folder / "attacker" / "split_view.pt", {"t": -torch.arange(64, dtype=torch.float32)}
    ).read_bytes()
    forged = bytearray(genuine)
    locator = forged.rfind(b"PK\x06\x07")
    struct.pack_into("<Q", forged, locator + 8, attacker.rfind(b"PK\x06\x06"))
    target = folder / "split_view.pt"
    target.write_bytes(attacker + bytes(forged))
    return target


def _unzipped(valid: Path, folder: Path) -> Path:
    with zipfile.ZipFile(valid) as archive:
        archive.extractall(folder)
    return folder / valid.stem


def _scripted(path: Path) -> Path:
    torch.manual_seed(0)
    return make_package(path, torch.jit.script(torch.nn.Linear(3, 2)))


def _script_code_record(path: Path) -> str:
    top, records = archive_records(path)
    (code,) = [n for n, _ in records if n.startswith(".data/ts_code/code/") and n.endswith(".py")]
    return code


def _stack_global(module: str, name: str, *args: bytes) -> bytes:
    """Protocol 4: the global ``module``/``name`` (a dotted name reaches through), called
    with the given pickled arguments if any."""
    strings = [b"\x8c" + bytes([len(part)]) + part.encode() for part in (module, name)]
    call = b"(" + b"".join(args) + b"tR" if args else b""
    return b"\x80\x04" + strings[0] + strings[1] + b"\x93" + call + b"."


def _text(value: str) -> bytes:
    return b"X" + struct.pack("<I", len(value.encode())) + value.encode()


def ran_marker(folder: Path, name: str) -> Path:
    """The file a case's package creates if the command it smuggles in runs."""
    return folder / f"{name}.ran"


def build_corpus(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    valid = make_valid(folder / "valid.pt")
    original = valid.read_bytes()
    _, records = archive_records(valid)
    pickle_bytes = dict(records)[PICKLE]
    cases: list[Case] = []

    def case(name: str, stage: str, error: type, record: str | None, message: str, **kw) -> Path:
        path = folder / f"{name}.pt"
        cases.append(Case(name, path, stage, error, record, message, **kw))
        return path

    def hostile(name: str, error: type, message: str, obj: Any = None, raw: bytes | None = None,
                externs: tuple[str, ...] = (), **kw: Any) -> None:  # fmt: skip
        make_package(case(name, "load", error, PICKLE, message, **kw), obj, raw, externs)

    # -- the ZIP container ------------------------------------------------------------------
    case("empty", "open", MalformedArchiveError, None, "empty").write_bytes(b"")
    case("random_bytes", "open", MalformedArchiveError, None, "not a readable").write_bytes(
        bytes((i * 7919 + 13) % 256 for i in range(4096))
    )
    case("truncated", "open", MalformedArchiveError, None, "not a readable").write_bytes(
        original[: len(original) // 2]
    )
    case(
        "no_end_of_central_directory", "open", MalformedArchiveError, None, "not a readable"
    ).write_bytes(original[:-22])
    bad_crc = case("bad_crc", "load", MalformedArchiveError, PICKLE, "CRC mismatch")
    bad_crc.write_bytes(original)
    _patch_central_entry(bad_crc, PICKLE, 16, b"\xde\xad\xbe\xef")
    rebuild(
        valid,
        case("short_storage", "load", MalformedArchiveError, STORAGE, "storage holds 100 bytes"),
        lambda rs: [(n, d[:100] if n == STORAGE else d) for n, d in rs],
    )
    rebuild(
        valid,
        case("dotdot_name", "open", MalformedArchiveError, "valid/../escaped.txt", "'..'"),
        _add("../escaped.txt", b"escaped"),
        recompute_manifest=False,
    )
    rebuild(
        valid,
        case("absolute_name", "open", MalformedArchiveError, "/tmp/escaped.txt", "absolute"),
        _add("/tmp/escaped.txt", b"escaped"),
        recompute_manifest=False,
    )
    rebuild(
        valid,
        case("duplicate_name", "open", MalformedArchiveError, PICKLE, "twice"),
        _add(PICKLE, b"\x80\x02N."),
        recompute_manifest=False,
    )
    rebuild(
        valid,
        # PyTorch's reader finds names regardless of case: it could read either copy.
        case("names_differing_in_case", "open", MalformedArchiveError, "data/T.pkl", "in case"),
        _add("data/T.pkl", b"\x80\x02N."),
    )
    rebuild(
        valid,
        case("compressed_record", "open", MalformedArchiveError, PICKLE, "compressed"),
        lambda rs: rs,
        compress=PICKLE,
    )
    bomb = case("zip_bomb_declared_size", "open", MalformedArchiveError, STORAGE, "past the end")
    bomb.write_bytes(original)
    for offset in (20, 24):  # compressed and uncompressed size
        _patch_central_entry(bomb, STORAGE, offset, struct.pack("<L", 0xFFFF0000))
    code = ".data/ts_code/code/__torch__/bomb.py"
    inflated = case("zip_bomb_inflated", "open", MalformedArchiveError, code, "zip bomb")
    rebuild(valid, inflated, _add(code, b"x" * 4096), compress=code)
    _patch_central_entry(inflated, code, 24, struct.pack("<L", 0xF0000000))
    # Data prepended and the ZIP64 locator pointed into it: zipfile and PyTorch read two
    # different packages (mmap=True gave the attacker's tensors unchecked).
    split = split_view(folder / "split_view_parts")
    shutil.move(split, case("split_view", "load", MalformedArchiveError, None, "ZIP64 locator",
                            options={"mmap": True}))  # fmt: skip
    case("prefix_bytes", "open", MalformedArchiveError, None, "not a readable").write_bytes(
        b"\0" * 64 + original
    )
    rebuild(
        valid,
        case("version_5000_digits", "open", MalformedArchiveError, ".data/version", "number"),
        _replace(".data/version", b"9" * 5000),
    )
    deep_name = "a/" * 21_000 + "x.txt"
    rebuild(
        valid,
        case(
            "record_21000_folders_deep", "open", MalformedArchiveError, f"valid/{deep_name}", "deep"
        ),  # fmt: skip
        _add(deep_name, b"deep"),
    )

    # -- integrity ----------------------------------------------------------------------------
    scripted = _scripted(folder / "scripted_parts" / "scripted.pt")
    code = _script_code_record(scripted)
    edited_code = case("torchscript_code_edited", "load", IntegrityError, code, "changed",
                       options={"verify": True})  # fmt: skip
    rebuild(
        scripted,
        edited_code,
        lambda rs: [
            (
                n,
                d.replace(
                    b"return torch.linear(input, weight, bias)",
                    b"return torch.linear(input, weight, bias) * 2",
                )
                if n == code
                else d,
            )
            for n, d in rs
        ],  # fmt: skip
        recompute_manifest=False,
    )
    edited_weights = case("torchscript_weights_edited", "load", IntegrityError, STORAGE,
                          "changed", options={"verify": True})  # fmt: skip
    shutil.copy(scripted, edited_weights)
    edit_in_place(edited_weights, STORAGE, 0, b"\x00\x00\x80\x7f")  # weight[0, 0] = inf

    # -- pickles ------------------------------------------------------------------------------
    rebuild(
        valid,
        case("truncated_pickle", "load", MalformedArchiveError, PICKLE, "truncated or corrupt"),
        _replace(PICKLE, pickle_bytes[: len(pickle_bytes) // 2]),
    )
    rebuild(
        valid,
        case("garbage_pickle", "load", MalformedArchiveError, PICKLE, "truncated or corrupt"),
        _replace(PICKLE, b"\x80\x03\xff\xfe\xfd garbage"),
    )
    depth = 100_000
    safe = {"safe": True}
    rebuild(
        valid,
        case(
            "deep_pickle", "load", MalformedArchiveError, PICKLE, "nests deeper than", options=safe
        ),  # fmt: skip
        _replace(PICKLE, b"\x80\x02" + b"(" * depth + b"l" * depth + b"."),
    )
    # No MARK at all: a million TUPLE1, then hashed as a dict key (the C stack overflows).
    deep_tuple = b"\x80\x02}N" + b"\x85" * 1_000_000 + b"K\x01s."
    hostile("deep_tuple_as_dict_key", MalformedArchiveError, "nests deeper than", raw=deep_tuple,
            options=safe)  # fmt: skip
    rebuild(
        valid,
        case("missing_module", "load", MissingModuleError, PICKLE, "'nowhere_module'"),
        _replace(PICKLE, b"\x80\x02cnowhere_module\nThing\n)\x81."),
    )
    # Memory: a few bytes of pickle asking for gigabytes.
    hostile("bytearray_3gib", MalformedArchiveError, "max_rebuild_bytes",
            Reduce(bytearray, 3 << 30), options=safe)  # fmt: skip
    hostile("list_of_range_2_31", MalformedArchiveError, "max_rebuild_bytes",
            Reduce(list, range(2**31)), options=safe)  # fmt: skip
    hostile("tensor_constructor_2_40", UnsafeGlobalError, "calls it",
            Reduce(torch.Tensor, 2**20, 2**20), options=safe)  # fmt: skip
    hostile("module_constructor", UnsafeGlobalError, "constructor",
            Reduce(torch.nn.Linear, 100_000, 100_000), options=safe)  # fmt: skip
    small = torch.ones(2).storage()
    hostile("tensor_bigger_than_its_storage", MalformedArchiveError, "its storage holds 8",
            Reduce(torch._utils._rebuild_tensor_v2, small, 0, (1 << 30,), (1,), False,
                   collections.OrderedDict()), options=safe)  # fmt: skip
    # Memory safety: torch does not check these invariants by default.
    csr = (torch.tensor([0, 1, 2]), torch.tensor([0, 1 << 24]), torch.ones(2), (2, 2))
    hostile("sparse_csr_out_of_range", MalformedArchiveError, "invariants",
            Reduce(torch._utils._rebuild_sparse_tensor, torch.sparse_csr, csr), options=safe,
            then="result @ torch.ones(2, 1)")  # fmt: skip
    coo = (torch.tensor([[0, 1 << 24]]), torch.ones(2), (2,))
    hostile("sparse_coo_out_of_range", MalformedArchiveError, "invariants",
            Reduce(torch._utils._rebuild_sparse_tensor, torch.sparse_coo, coo), options=safe,
            then="result.to_dense()")  # fmt: skip
    nested = (torch.ones(4), torch.tensor([[3], [3]]), torch.tensor([[1], [1]]),
              torch.tensor([0, 1 << 24]))  # fmt: skip
    hostile("nested_outside_its_buffer", MalformedArchiveError, "outside its buffer",
            Reduce(torch._utils._rebuild_nested_tensor, *nested), options=safe,
            then="result.unbind()[1].sum()")  # fmt: skip
    # BUILD on a class: every later torch.save in the process would break.
    hostile("build_on_an_allowed_class", MalformedArchiveError, "sets attributes on",
            raw=b"\x80\x02ctorch\nUntypedStorage\nN}X\x06\x00\x00\x00nbytescbuiltins\nint\n"
                b"s\x86b.", externs=("torch",), options=safe,
            then="import io; torch.save(torch.ones(1), io.BytesIO())")  # fmt: skip
    # BUILD on a fresh Parameter: torch.Tensor.__setstate__ calls set_(), which grows storages.
    hostile("build_on_a_parameter", UnsafeGlobalError, "BUILD",
            ReduceWithState(torch.nn.Parameter, (torch.ones(2), False),
                            (small, 0, (1 << 30,), (1,))), options=safe)  # fmt: skip
    # allow_globals globs that reach through modules to os.system (which would leave a file).
    for name, allowed, module, qualname in [
        ("numpy_glob_reaches_os", "numpy.**", "numpy.f2py", "os.system"),
        ("torch_nn_glob_reaches_os", "torch.nn.**", "torch.nn.functional", "torch.os.system"),
    ]:
        hostile(name, UnsafeGlobalError, "os.system",
                raw=_stack_global(module, qualname, _text(f"touch {ran_marker(folder, name)}")),
                externs=(module,),
                options={"safe": True, "allow_globals": [allowed]})  # fmt: skip
    # Persistent ids and rebuild arguments that made torch or Python raise their own errors.
    for name, pid in [
        ("persistent_id_not_a_tuple", b"K\x01"),
        ("persistent_id_empty", b")"),
        ("persistent_id_kind_not_ascii", b"C\x02\xff\xfe\x85"),
        ("persistent_storage_id_short", b"(X\x07\x00\x00\x00storageK\x01t"),
        ("persistent_storage_on_cuda_7",
         b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n" + _text("0") + _text("cuda:7")
         + b"K\x02t"),
    ]:  # fmt: skip
        # In the valid package: torch is extern there, and storage 0 exists.
        rebuild(valid, case(name, "load", MalformedArchiveError, PICKLE, "persistent id|storage"),
                _replace(PICKLE, b"\x80\x02" + pid + b"Q."))  # fmt: skip
    hostile("wrapper_subclass_of_int", MalformedArchiveError, "not a tensor subclass",
            Reduce(torch._utils._rebuild_wrapper_subclass, int, torch.float32, (2,), (1,), 0,
                   torch.strided, "cpu", False), options=safe)  # fmt: skip
    hostile("tensor_copied_to_cuda_7", MalformedArchiveError, "cuda:7",
            Reduce(torch._utils._rebuild_device_tensor_from_cpu_tensor, torch.ones(2),
                   torch.float32, "cuda:7", False), options=safe)  # fmt: skip

    # -- interned source ----------------------------------------------------------------------
    rebuild(
        valid,
        case("no_version", "open", MalformedArchiveError, ".data/version", "missing"),
        _replace(".data/version", None),
    )
    rebuild(
        valid,
        case("future_version", "open", MalformedArchiveError, ".data/version", "version 99"),
        _replace(".data/version", b"99\n"),
    )
    rebuild(
        valid,
        case("syntax_error_source", "import", MalformedArchiveError, MODULE, "does not compile"),
        _replace(MODULE, b"def broken(:\n"),
    )
    rebuild(
        valid,
        case("source_not_utf8", "import", MalformedArchiveError, MODULE, "does not compile"),
        _replace(MODULE, b"VALUE = '\xff\xfe'\n"),
    )
    rebuild(
        valid,
        case("source_nested_too_deep", "import", MalformedArchiveError, MODULE, "compile"),
        _replace(MODULE, b"VALUE = 1" + b"+1" * 200_000 + b"\n"),
    )

    # -- unzipped folders ---------------------------------------------------------------------
    root = _unzipped(valid, folder / "symlink_out")
    secret = folder / "secret.txt"
    secret.write_text("outside the package")
    (root / "data" / "notes.txt").unlink()
    (root / "data" / "notes.txt").symlink_to(secret)
    cases.append(Case("symlink_out", root, "open", MalformedArchiveError, "data/notes.txt",
                      "outside"))  # fmt: skip
    root = _unzipped(valid, folder / "fifo_record")
    (root / "data" / "notes.txt").unlink()
    os.mkfifo(root / "data" / "notes.txt")
    cases.append(Case("fifo_record", root, "text", MalformedArchiveError, "data/notes.txt",
                      "not a regular file"))  # fmt: skip
    if ROOT:
        root = _unzipped(valid, folder / "device_record")
        (root / "data" / "notes.txt").unlink()
        os.mknod(root / "data" / "notes.txt", 0o644 | 0o020000, os.makedev(1, 5))  # /dev/zero
        cases.append(Case("device_record", root, "text", MalformedArchiveError,
                          "data/notes.txt", "not a regular file"))  # fmt: skip
    root = _unzipped(valid, folder / "folders_nested_300_deep")
    deep = root
    # Past the name rules' 256, short of the depth at which shutil.rmtree (which cleans test
    # folders up) would exhaust the recursion limit itself.
    for _ in range(300):
        deep = deep / "z"
        deep.mkdir()
    cases.append(Case("folders_nested_300_deep", root, "open", MalformedArchiveError,
                      "/".join(["z"] * 257), "folders deep"))  # fmt: skip
    fifo = folder / "fifo.pt"
    os.mkfifo(fifo)
    cases.append(Case("fifo_archive_mapped", fifo, "open", ArchiveError, None,
                      "not a regular file", options={"mmap": True}))  # fmt: skip

    (folder / "cases.json").write_text(json.dumps([c.to_json() for c in cases], indent=1))
    return cases


if __name__ == "__main__":
    out = Path(sys.argv[1])
    if out.exists():
        shutil.rmtree(out)
    for built in build_corpus(out):
        print(f"{built.name:32} {os.fspath(built.path)}")
