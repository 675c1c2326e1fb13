"""Tensors in packages: every CPU dtype, shared storages, views, tied weights, map_location,
and no warnings on the way in or out."""

from __future__ import annotations

import hashlib
import importlib
import io
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.package
from torch import nn

from torchpack import PackageExporter, PackageImporter

STORAGE_RECORD = re.compile(r"[^/]+/\.data/\d+\.storage")

MODEL_SOURCES = {
    "tmodels/__init__.py": "",
    "tmodels/nets.py": """
        import torch
        from torch import nn


        class SmallCNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3, padding=1)
                self.bn = nn.BatchNorm2d(8)
                self.pool = nn.AdaptiveAvgPool2d(1)
                self.fc = nn.Linear(8, 5)

            def forward(self, x):
                x = torch.relu(self.bn(self.conv(x)))
                return self.fc(self.pool(x).flatten(1))


        class TiedLM(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(10, 6)
                self.head = nn.Linear(6, 10, bias=False)
                self.head.weight = self.embed.weight

            def forward(self, tokens):
                return self.head(self.embed(tokens))
    """,
}


@pytest.fixture
def nets(source_tree):
    source_tree(MODEL_SOURCES)
    return importlib.import_module("tmodels.nets")


@pytest.fixture
def always_warn_typed_storage():
    """torch warns about TypedStorage once per process; make every use warn while testing."""
    before = torch.storage._get_always_warn_typed_storage_removal()
    torch.storage._set_always_warn_typed_storage_removal(True)
    yield
    torch.storage._set_always_warn_typed_storage_removal(before)


# -- helpers --------------------------------------------------------------------------------


def export(path: Path, objects: dict[str, Any], intern: tuple[str, ...] = ()) -> Path:
    with PackageExporter(path) as exporter:
        for pattern in intern:
            exporter.intern(pattern)
        for name, obj in objects.items():
            exporter.save_pickle("data", f"{name}.pkl", obj)
    return path


def roundtrip(tmp_path: Path, obj: Any, **load_kwargs: Any) -> tuple[Any, Path]:
    path = export(tmp_path / "tensors.pt", {"obj": obj}, intern=("tmodels.**",))
    return PackageImporter(path).load_pickle("data", "obj.pkl", **load_kwargs), path


def storage_records(path: Path) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(path) as archive:
        return [info for info in archive.infolist() if STORAGE_RECORD.fullmatch(info.filename)]


def raw_bytes(t: torch.Tensor) -> torch.Tensor:
    """The whole storage of ``t`` as uint8 (works for every dtype, quantized ones too)."""
    return torch.empty(0, dtype=torch.uint8).set_(t.untyped_storage()).clone()


def _supports_equal(dtype: torch.dtype) -> bool:
    try:
        sample = torch.zeros(dtype.itemsize, dtype=torch.uint8).view(dtype)
        torch.equal(sample, sample.clone())
    except (RuntimeError, NotImplementedError, TypeError):
        return False
    return True


def assert_same_tensor(loaded: Any, original: torch.Tensor) -> None:
    assert type(loaded) is type(original)
    assert loaded.dtype == original.dtype
    assert loaded.shape == original.shape
    assert loaded.stride() == original.stride()
    assert loaded.storage_offset() == original.storage_offset()
    assert loaded.requires_grad == original.requires_grad
    assert loaded.device.type == "cpu"
    if original.is_quantized:
        assert loaded.qscheme() == original.qscheme()
        if original.qscheme() == torch.per_tensor_affine:
            assert loaded.q_scale() == original.q_scale()
            assert loaded.q_zero_point() == original.q_zero_point()
        else:
            assert torch.equal(loaded.q_per_channel_scales(), original.q_per_channel_scales())
            assert torch.equal(
                loaded.q_per_channel_zero_points(), original.q_per_channel_zero_points()
            )
            assert loaded.q_per_channel_axis() == original.q_per_channel_axis()
        if original.dtype in (torch.qint8, torch.quint8, torch.qint32):
            assert torch.equal(loaded.int_repr(), original.int_repr())
            assert torch.equal(loaded, original)
    elif _supports_equal(original.dtype):
        assert torch.equal(loaded.detach(), original.detach())
    assert torch.equal(raw_bytes(loaded), raw_bytes(original))


# -- every dtype ----------------------------------------------------------------------------


def _random_bytes(dtype: torch.dtype, shape: tuple[int, int] = (3, 4)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1234)
    rows, cols = shape
    size = (rows, cols * dtype.itemsize)
    return torch.randint(0, 256, size, dtype=torch.uint8, generator=generator).view(dtype)


def _float(dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(99)
    return (torch.randn(3, 4, generator=generator) * 4).to(dtype)


def _complex(dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    return torch.randn(3, 4, dtype=torch.complex128, generator=generator).to(dtype)


def _quantized(dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    zero_point = {torch.qint8: -3, torch.quint8: 17, torch.qint32: 1000}[dtype]
    values = torch.randn(3, 4, generator=generator)
    return torch.quantize_per_tensor(values, 0.05, zero_point, dtype)


def _quantized_per_channel() -> torch.Tensor:
    generator = torch.Generator().manual_seed(6)
    scales = torch.tensor([0.1, 0.02, 0.5], dtype=torch.float64)
    zero_points = torch.tensor([0, 3, -2])
    return torch.quantize_per_channel(
        torch.randn(3, 4, generator=generator), scales, zero_points, 0, torch.qint8
    )


def _packed_quantized(dtype: torch.dtype) -> torch.Tensor:
    # quint4x2 / quint2x4 cannot be produced by quantize_per_tensor on CPU; fill the bytes.
    q = torch._empty_affine_quantized([16], scale=0.25, zero_point=2, dtype=dtype)
    nbytes = q.untyped_storage().nbytes()
    q.untyped_storage().copy_(torch.arange(7, 7 + nbytes, dtype=torch.uint8).untyped_storage())
    return q


CASES: dict[str, Any] = {
    "float32": lambda: _float(torch.float32),
    "float64": lambda: _float(torch.float64),
    "float16": lambda: _float(torch.float16),
    "bfloat16": lambda: _float(torch.bfloat16),
    "float8_e4m3fn": lambda: _float(torch.float8_e4m3fn),
    "float8_e4m3fnuz": lambda: _float(torch.float8_e4m3fnuz),
    "float8_e5m2": lambda: _float(torch.float8_e5m2),
    "float8_e5m2fnuz": lambda: _float(torch.float8_e5m2fnuz),
    "float8_e8m0fnu": lambda: _float(torch.float8_e8m0fnu),
    "float4_e2m1fn_x2": lambda: _random_bytes(torch.float4_e2m1fn_x2),
    "complex64": lambda: _complex(torch.complex64),
    "complex128": lambda: _complex(torch.complex128),
    "complex32": lambda: _complex(torch.complex32),
    "int8": lambda: _random_bytes(torch.int8),
    "int16": lambda: _random_bytes(torch.int16),
    "int32": lambda: _random_bytes(torch.int32),
    "int64": lambda: _random_bytes(torch.int64),
    "uint8": lambda: _random_bytes(torch.uint8),
    "uint16": lambda: _random_bytes(torch.uint16),
    "uint32": lambda: _random_bytes(torch.uint32),
    "uint64": lambda: _random_bytes(torch.uint64),
    "bool": lambda: torch.tensor([[True, False, True], [False, False, True]]),
    "bits8": lambda: _random_bytes(torch.bits8),
    "bits16": lambda: _random_bytes(torch.bits16),
    "bits1x8": lambda: _random_bytes(torch.bits1x8),
    "bits2x4": lambda: _random_bytes(torch.bits2x4),
    "bits4x2": lambda: _random_bytes(torch.bits4x2),
    "qint8": lambda: _quantized(torch.qint8),
    "quint8": lambda: _quantized(torch.quint8),
    "qint32": lambda: _quantized(torch.qint32),
    "qint8_per_channel": _quantized_per_channel,
    "quint4x2": lambda: _packed_quantized(torch.quint4x2),
    "quint2x4": lambda: _packed_quantized(torch.quint2x4),
}
if hasattr(torch, "bcomplex32"):  # torch 2.14: complex numbers of two bfloat16
    CASES["bcomplex32"] = lambda: _complex(torch.bcomplex32)

# Sub-byte integer dtypes exist as names only: torch.save itself cannot serialize them.
NOT_SERIALIZABLE_BY_TORCH = {f"int{n}" for n in range(1, 8)} | {f"uint{n}" for n in range(1, 8)}


def _all_torch_dtypes() -> dict[str, torch.dtype]:
    dtypes = {}
    for name in dir(torch):
        value = getattr(torch, name)
        if isinstance(value, torch.dtype):
            dtypes[str(value).removeprefix("torch.")] = value
    return dtypes


def _tensors_inside(t: torch.Tensor) -> list[torch.Tensor]:
    """The tensors whose storages a pickle of ``t`` holds (per-channel qparams are tensors)."""
    if t.is_quantized and t.qscheme() != torch.per_tensor_affine:
        return [t, t.q_per_channel_scales(), t.q_per_channel_zero_points()]
    return [t]


def make_tensor(case: str) -> torch.Tensor:
    with warnings.catch_warnings():
        # Creating complex32 / quantized tensors warns once per process (experimental or
        # deprecated dtypes); that is torch's business, not the package's.
        warnings.simplefilter("ignore")
        return CASES[case]()


def test_cases_cover_every_torch_dtype():
    covered = {str(make_tensor(case).dtype).removeprefix("torch.") for case in CASES}
    missing = set(_all_torch_dtypes()) - covered - NOT_SERIALIZABLE_BY_TORCH
    assert missing == set()
    for name in NOT_SERIALIZABLE_BY_TORCH:
        dtype = _all_torch_dtypes()[name]
        with pytest.raises(Exception):  # noqa: B017 - whatever torch raises, it cannot save it
            torch.save(torch.zeros(4, dtype=torch.uint8).view(dtype), io.BytesIO())


@pytest.mark.parametrize("case", list(CASES))
def test_every_dtype_round_trips(tmp_path, case):
    original = make_tensor(case)
    loaded, path = roundtrip(tmp_path, original)
    assert_same_tensor(loaded, original)
    sizes = sorted(record.file_size for record in storage_records(path))
    assert sizes == sorted(t.untyped_storage().nbytes() for t in _tensors_inside(original))


@pytest.mark.parametrize("case", list(CASES))
def test_every_dtype_loads_in_torch_package(tmp_path, case):
    original = make_tensor(case)
    path = export(tmp_path / "tensors.pt", {"obj": original})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.package's own TypedStorage warnings
        loaded = torch.package.PackageImporter(str(path)).load_pickle("data", "obj.pkl")
    assert_same_tensor(loaded, original)


@pytest.mark.parametrize("case", list(CASES))
def test_every_dtype_saved_by_torch_package_loads(tmp_path, case):
    original = make_tensor(case)
    path = tmp_path / "theirs.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.package.PackageExporter(str(path)) as exporter:
            exporter.save_pickle("data", "obj.pkl", original)
    assert_same_tensor(PackageImporter(path).load_pickle("data", "obj.pkl"), original)


def test_many_dtypes_in_one_pickle(tmp_path):
    originals = {case: make_tensor(case) for case in CASES}
    loaded, path = roundtrip(tmp_path, originals)
    assert set(loaded) == set(originals)
    for case, tensor in originals.items():
        assert_same_tensor(loaded[case], tensor)
    expected = sum(len(_tensors_inside(t)) for t in originals.values())
    assert len(storage_records(path)) == expected


# -- shared storages and views --------------------------------------------------------------


def _views() -> dict[str, torch.Tensor]:
    base = torch.arange(24, dtype=torch.float32)
    matrix = base.view(4, 6)
    return {
        "base": base,
        "slice": base[1:],
        "matrix": matrix,
        "transposed": matrix.t(),
        "strided": matrix[:, ::2],
        "block": matrix[1:3, 2:5],
        "reinterpreted": base.view(torch.int32),
        "scalar": base[5],
    }


def test_shared_storage_is_written_once(tmp_path):
    views = _views()
    _, path = roundtrip(tmp_path, views)
    [record] = storage_records(path)
    assert record.file_size == 24 * 4


def test_shared_storage_across_pickles_is_written_once(tmp_path):
    weights = torch.randn(100)
    path = export(tmp_path / "two.pt", {"first": weights, "second": {"alias": weights[10:]}})
    [record] = storage_records(path)
    assert record.file_size == weights.nbytes
    importer = PackageImporter(path)
    assert torch.equal(importer.load_pickle("data", "first.pkl"), weights)
    assert torch.equal(importer.load_pickle("data", "second.pkl")["alias"], weights[10:])


def test_views_load_as_views_of_one_storage(tmp_path):
    views = _views()
    loaded, _ = roundtrip(tmp_path, views)
    pointers = {name: t.untyped_storage().data_ptr() for name, t in loaded.items()}
    assert len(set(pointers.values())) == 1, pointers
    for name, original in views.items():
        assert_same_tensor(loaded[name], original)
        assert loaded[name].is_contiguous() == original.is_contiguous()
    assert loaded["slice"].storage_offset() == 1
    assert loaded["transposed"].stride() == (1, 6)
    assert loaded["block"].storage_offset() == 8
    # Really aliased: writing through one view shows through the others.
    loaded["base"][8] = -1.0
    assert loaded["slice"][7].item() == -1.0
    assert loaded["matrix"][1, 2].item() == -1.0
    assert loaded["transposed"][2, 1].item() == -1.0
    assert loaded["strided"][1, 1].item() == -1.0
    assert loaded["block"][0, 0].item() == -1.0
    assert loaded["reinterpreted"][8].item() == torch.tensor(-1.0).view(torch.int32).item()


def test_view_saved_alone_keeps_its_whole_storage(tmp_path):
    base = torch.arange(10, dtype=torch.int64)
    loaded, path = roundtrip(tmp_path, base[3:5])
    assert loaded.tolist() == [3, 4]
    assert loaded.storage_offset() == 3
    assert loaded.untyped_storage().nbytes() == base.nbytes
    [record] = storage_records(path)
    assert record.file_size == base.nbytes


LAYOUTS = {
    "empty": lambda: torch.empty(0),
    "empty_2d": lambda: torch.zeros(3, 0),
    "zero_length_view": lambda: torch.arange(5.0)[5:],
    "expanded": lambda: torch.arange(3.0).view(3, 1).expand(3, 4),
    "channels_last": lambda: (
        torch.arange(120.0).view(2, 3, 4, 5).to(memory_format=torch.channels_last)
    ),
    "conj": lambda: torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64).conj(),
    "sparse_coo": lambda: torch.sparse_coo_tensor([[0, 1], [1, 0]], [1.0, 2.0], (2, 2)),
    "sparse_csr": lambda: torch.tensor([[0.0, 1.0], [2.0, 0.0]]).to_sparse_csr(),
}


@pytest.mark.parametrize("case", list(LAYOUTS))
def test_other_layouts_round_trip(tmp_path, case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sparse tensor construction is "beta"
        original = LAYOUTS[case]()
    loaded, _ = roundtrip(tmp_path, original)
    assert loaded.layout == original.layout
    assert loaded.shape == original.shape
    assert loaded.dtype == original.dtype
    if original.layout == torch.strided:
        assert loaded.stride() == original.stride()
        assert loaded.storage_offset() == original.storage_offset()
        assert loaded.is_conj() == original.is_conj()
        assert torch.equal(loaded, original)
    else:
        assert torch.equal(loaded.to_dense(), original.to_dense())


def test_bare_storages_round_trip(tmp_path):
    untyped = torch.arange(10, dtype=torch.uint8).untyped_storage()
    loaded, path = roundtrip(tmp_path, {"storage": untyped, "tensor": torch.arange(3)})
    buffer = io.BytesIO()
    torch.save(untyped, buffer)
    buffer.seek(0)
    # torch.load (and torch.package) hand a bare storage back as a uint8 TypedStorage.
    assert type(loaded["storage"]) is type(torch.load(buffer))
    restored = loaded["storage"]
    if isinstance(restored, torch.storage.TypedStorage):
        restored = restored._untyped_storage
    assert restored.tolist() == untyped.tolist()
    assert len(storage_records(path)) == 2


def test_tied_weights_stay_tied(tmp_path, nets):
    torch.manual_seed(0)
    model = nets.TiedLM().eval()
    assert model.head.weight is model.embed.weight
    loaded, path = roundtrip(tmp_path, model)
    assert loaded.head.weight is loaded.embed.weight
    assert len(list(loaded.parameters())) == 1
    assert len(storage_records(path)) == 1
    tokens = torch.tensor([[1, 2, 3, 9]])
    with torch.no_grad():
        assert torch.equal(loaded(tokens), model(tokens))
    with torch.no_grad():
        loaded.embed.weight[0, 0] = 123.0
    assert loaded.head.weight[0, 0].item() == 123.0


def test_tied_weights_in_state_dict_share_storage(tmp_path, nets):
    model = nets.TiedLM()
    loaded, path = roundtrip(tmp_path, model.state_dict())
    assert loaded.keys() == model.state_dict().keys()
    assert loaded["embed.weight"].untyped_storage().data_ptr() == (
        loaded["head.weight"].untyped_storage().data_ptr()
    )
    assert len(storage_records(path)) == 1


def test_requires_grad_and_parameters_preserved(tmp_path):
    torch.manual_seed(0)
    original = {
        "param": nn.Parameter(torch.randn(3)),
        "frozen_param": nn.Parameter(torch.randn(3), requires_grad=False),
        "leaf": torch.randn(2, 2, requires_grad=True),
        "plain": torch.randn(2),
        "double_param": nn.Parameter(torch.randn(2, dtype=torch.float64)),
    }
    loaded, _ = roundtrip(tmp_path, original)
    for name, tensor in original.items():
        assert type(loaded[name]) is type(tensor), name
        assert loaded[name].requires_grad == tensor.requires_grad, name
        assert loaded[name].is_leaf
        assert torch.equal(loaded[name].detach(), tensor.detach())
    assert isinstance(loaded["param"], nn.Parameter)
    assert isinstance(loaded["frozen_param"], nn.Parameter)
    assert not isinstance(loaded["leaf"], nn.Parameter)
    (loaded["leaf"] * 2).sum().backward()
    assert torch.equal(loaded["leaf"].grad, torch.full((2, 2), 2.0))


def test_model_round_trip(tmp_path, nets):
    torch.manual_seed(0)
    model = nets.SmallCNN()
    model.train()
    model(torch.randn(4, 3, 8, 8))  # move the BatchNorm running statistics
    model.eval()
    loaded, _ = roundtrip(tmp_path, model)
    assert type(loaded).__name__ == "SmallCNN"
    assert not loaded.training
    for (name, tensor), (loaded_name, loaded_tensor) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert name == loaded_name
        assert_same_tensor(loaded_tensor, tensor)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


# -- map_location ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "map_location",
    ["cpu", torch.device("cpu"), {"cpu": "cpu"}, lambda storage, location: storage],
    ids=["str", "device", "dict", "callable"],
)
def test_map_location(tmp_path, map_location):
    views = _views()
    loaded, _ = roundtrip(tmp_path, views, map_location=map_location)
    for name, tensor in views.items():
        assert loaded[name].device == torch.device("cpu")
        assert_same_tensor(loaded[name], tensor)
    assert len({t.untyped_storage().data_ptr() for t in loaded.values()}) == 1


def test_callable_map_location_sees_every_storage_once(tmp_path):
    calls = []

    def remember(storage, location):
        calls.append((location, storage.nbytes()))
        return None  # fall back to the default restore

    a, b = torch.randn(5), torch.arange(3, dtype=torch.int16)
    loaded, _ = roundtrip(tmp_path, {"a": a, "a_view": a[2:], "b": b}, map_location=remember)
    assert sorted(calls) == sorted([("cpu", a.nbytes), ("cpu", b.nbytes)])
    assert torch.equal(loaded["a"], a) and torch.equal(loaded["b"], b)
    assert torch.equal(loaded["a_view"], a[2:])


def test_callable_map_location_can_replace_storages(tmp_path):
    original = torch.arange(6, dtype=torch.float32)

    def zeroed(storage, location):
        return torch.zeros(storage.size(), dtype=storage.dtype).untyped_storage()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded, _ = roundtrip(tmp_path, original, map_location=zeroed)
    assert torch.equal(loaded, torch.zeros(6))


# -- warnings -------------------------------------------------------------------------------


def _payload(nets: Any) -> dict[str, Any]:
    torch.manual_seed(0)
    tensors = {case: make_tensor(case) for case in CASES}
    tensors = {case: t for case, t in tensors.items() if not t.is_quantized}
    return {"model": nets.SmallCNN().eval(), "tied": nets.TiedLM(), "views": _views(), **tensors}


def test_no_warnings_saving_and_loading(tmp_path, nets, always_warn_typed_storage):
    payload = _payload(nets)
    path = tmp_path / "quiet.pt"
    with warnings.catch_warnings(record=True) as saved:
        warnings.simplefilter("always")
        export(path, payload, intern=("tmodels.**",))
    with warnings.catch_warnings(record=True) as loaded:
        warnings.simplefilter("always")
        importer = PackageImporter(path)
        result = {name: importer.load_pickle("data", f"{name}.pkl") for name in payload}
        result["model"](torch.randn(1, 3, 4, 4))
    assert [str(w.message) for w in saved] == []
    assert [str(w.message) for w in loaded] == []
    assert set(result) == set(payload)


def test_no_warnings_for_any_dtype(tmp_path, always_warn_typed_storage):
    originals = {case: make_tensor(case) for case in CASES}
    noisy = {}
    for case, tensor in originals.items():
        path = tmp_path / f"{case}.pt"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            export(path, {"t": tensor})
            PackageImporter(path).load_pickle("data", "t.pkl")
        if caught:
            noisy[case] = sorted({f"{w.filename}:{w.lineno}: {w.message}"[:200] for w in caught})
    assert noisy == {}


def test_torch_package_warns_where_torchpack_does_not(tmp_path, nets, always_warn_typed_storage):
    """Oracle contrast: the warning check does catch torch.package's TypedStorage warnings."""
    model = nets.SmallCNN()
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        with torch.package.PackageExporter(str(tmp_path / "theirs.pt")) as exporter:
            exporter.intern("tmodels.**")
            exporter.save_pickle("data", "model.pkl", model)
    assert any("TypedStorage is deprecated" in str(w.message) for w in theirs)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        export(tmp_path / "ours.pt", {"model": model}, intern=("tmodels.**",))
    assert [str(w.message) for w in ours] == []


# -- storages are streamed as-is ------------------------------------------------------------


def _storage_bytes(tensors: Any) -> list[bytes]:
    unique = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        unique[storage.data_ptr()] = raw_bytes(tensor).numpy().tobytes()
    return sorted(unique.values())


def test_storage_records_hold_exactly_the_tensor_bytes(tmp_path, nets):
    torch.manual_seed(0)
    model = nets.SmallCNN()
    big = torch.randn(512, 1024)  # 2 MiB
    path = export(tmp_path / "model.pt", {"model": model, "big": big}, intern=("tmodels.**",))
    state = list(model.state_dict().values()) + [big]
    expected = _storage_bytes(state)
    with zipfile.ZipFile(path) as archive:
        records = storage_records(path)
        sizes = sorted(record.file_size for record in records)
        contents = sorted(archive.read(record) for record in records)
    assert sizes == sorted(len(data) for data in expected)
    assert sizes == sorted(
        {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in state}.values()
    )
    assert [hashlib.sha256(c).digest() for c in contents] == [
        hashlib.sha256(e).digest() for e in expected
    ]


def test_each_save_of_a_model_reuses_its_storages(tmp_path, nets):
    model = nets.SmallCNN()
    once = export(tmp_path / "once.pt", {"model": model}, intern=("tmodels.**",))
    twice = export(
        tmp_path / "twice.pt",
        {"model": model, "again": model, "state": model.state_dict()},
        intern=("tmodels.**",),
    )
    assert len(storage_records(twice)) == len(storage_records(once)) == len(model.state_dict())
    importer = PackageImporter(twice)
    first = importer.load_pickle("data", "model.pkl")
    second = importer.load_pickle("data", "again.pkl")
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
