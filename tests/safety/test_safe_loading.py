"""safe=True: pickles resolve only the package's own code, harmless helpers and allowed globals."""

from __future__ import annotations

import datetime
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.fx

from torchpack import PackageExporter, PackageImporter
from torchpack.errors import MalformedArchiveError, UnsafeGlobalError


def _global_call(module: str, name: str, *args: object) -> bytes:
    """A protocol-2 pickle that calls ``module.name(*args)`` when loaded."""
    return (
        b"\x80\x02c"
        + module.encode()
        + b"\n"
        + name.encode()
        + b"\n"
        + pickle.dumps(args, protocol=2)[2:-1]
        + b"R."
    )


def _stack_global(module: str, name: str) -> bytes:
    """A protocol-4 pickle of the global ``module`` / ``name`` (a dotted name reaches through)."""
    short = [b"\x8c" + bytes([len(part)]) + part.encode() for part in (module, name)]
    return b"\x80\x04" + short[0] + short[1] + b"\x93."


def _package(path: Path, pickles: dict[str, bytes]) -> Path:
    with PackageExporter(path) as exporter:
        exporter.save_source_string(
            "victim", "import os\n\nclass Point:\n    def __init__(self, x):\n        self.x = x\n"
        )
        for name, data in pickles.items():
            exporter.save_binary("data", name, data)
    return path


MARKER = "torchpack-safe-marker"

HOSTILE = {
    "exec.pkl": ("builtins.exec", _global_call("builtins", "exec", f"open({MARKER!r}, 'w')")),
    "system.pkl": ("os.system", _global_call("os", "system", f"touch {MARKER}")),
    "posix.pkl": ("posix.system", _global_call("posix", "system", f"touch {MARKER}")),
    "popen.pkl": ("subprocess.Popen", _global_call("subprocess", "Popen", ["touch", MARKER])),
    "hub.pkl": ("torch.hub.load", _global_call("torch.hub", "load", "x/y", "z")),
    "runpy.pkl": ("runpy.run_path", _global_call("runpy", "run_path", "/nonexistent.py")),
    "importlib.pkl": (
        "importlib.import_module",
        _global_call("importlib", "import_module", "antigravity"),
    ),
    "getattr.pkl": ("builtins.getattr", _global_call("builtins", "getattr", 1, "real")),
    "reach_through.pkl": ("victim.os.system", _stack_global("victim", "os.system")),
    "eval.pkl": ("builtins.eval", _global_call("builtins", "eval", "1+1")),
}


@pytest.mark.parametrize("record", sorted(HOSTILE))
def test_hostile_globals_are_refused_before_they_run(tmp_path, monkeypatch, record):
    monkeypatch.chdir(tmp_path)
    global_name, data = HOSTILE[record]
    importer = PackageImporter(_package(tmp_path / "evil.pt", {record: data}), safe=True)
    with pytest.raises(UnsafeGlobalError) as info:
        importer.load_pickle("data", record)
    assert info.value.global_name == global_name
    assert info.value.record == f"data/{record}"
    assert f"allow_globals=[{global_name!r}]" in str(info.value)
    assert str(tmp_path / "evil.pt") in str(info.value)
    assert not (tmp_path / MARKER).exists()


def test_without_safe_the_same_pickle_runs(tmp_path, monkeypatch):
    # The threat is real: torch.package-compatible loading executes what the pickle names.
    monkeypatch.chdir(tmp_path)
    _, data = HOSTILE["exec.pkl"]
    PackageImporter(_package(tmp_path / "evil.pt", {"exec.pkl": data})).load_pickle(
        "data", "exec.pkl"
    )
    assert (tmp_path / MARKER).exists()


def test_allow_globals_admits_what_the_caller_trusts(tmp_path):
    path = tmp_path / "dates.pt"
    with PackageExporter(path) as exporter:
        exporter.save_pickle("data", "date.pkl", datetime.date(2026, 11, 28))
    with pytest.raises(UnsafeGlobalError, match="'datetime.date'"):
        PackageImporter(path, safe=True).load_pickle("data", "date.pkl")
    for allowed in (["datetime.date"], "datetime.*"):
        loaded = PackageImporter(path, safe=True, allow_globals=allowed).load_pickle(
            "data", "date.pkl"
        )
        assert loaded == datetime.date(2026, 11, 28)


def test_package_classes_tensors_and_nn_modules_load_safely(tmp_path, source_tree):
    source_tree(
        {
            "safe_models.py": """
                import torch

                class Net(torch.nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.body = torch.nn.Sequential(
                            torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU()
                        )
                        self.register_buffer("scale", torch.ones(2, dtype=torch.float64))

                    def forward(self, x):
                        return self.body(x)
            """
        }
    )
    import safe_models

    torch.manual_seed(0)
    model = safe_models.Net().eval()
    extras = {
        "ints": torch.arange(5, dtype=torch.int64),
        "half": torch.ones(3, dtype=torch.float16),
        "param": torch.nn.Parameter(torch.zeros(2)),
        "shape": torch.Size([2, 3]),
        "dtype": torch.bfloat16,
        "device": torch.device("cpu"),
        "set": {1, 2},
        "channels_last": torch.zeros(1, 2, 2, 2).to(memory_format=torch.channels_last),
    }
    path = tmp_path / "model.pt"
    with PackageExporter(path) as exporter:
        exporter.intern("safe_models")
        exporter.save_pickle("model", "model.pkl", model)
        exporter.save_pickle("model", "extras.pkl", extras)
    importer = PackageImporter(path, safe=True, verify=True)
    loaded = importer.load_pickle("model", "model.pkl")
    x = torch.randn(1, 1, 5, 5)
    assert torch.equal(loaded(x), model(x))
    loaded_extras = importer.load_pickle("model", "extras.pkl")
    assert loaded_extras["shape"] == torch.Size([2, 3])
    assert loaded_extras["dtype"] is torch.bfloat16
    assert torch.equal(loaded_extras["channels_last"], extras["channels_last"])


def test_nn_functions_are_not_classes(tmp_path):
    # torch.nn.modules.* admits Module classes only, not every function reachable there.
    path = tmp_path / "f.pt"
    with PackageExporter(path) as exporter:
        exporter.save_pickle("data", "conv.pkl", torch.nn.Conv2d(1, 1, 1))
        exporter.save_binary("data", "f.pkl", _stack_global("torch.nn.modules.conv", "F"))
    assert isinstance(
        PackageImporter(path, safe=True).load_pickle("data", "conv.pkl"), torch.nn.Conv2d
    )
    with pytest.raises(UnsafeGlobalError, match="torch.nn.modules.conv.F"):
        PackageImporter(path, safe=True).load_pickle("data", "f.pkl")


def test_example_loads_with_safe_and_verify(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    archive = tmp_path / "resnet18.pt"
    subprocess.run(
        [sys.executable, "-m", "examples.package_resnet", str(archive)],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    # From a folder where the model's source is not importable, as a user would.
    result = subprocess.run(
        [sys.executable, str(repo / "examples" / "load_package.py"), str(archive)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "output matches the one recorded at packaging time" in result.stdout
    assert "safe=True, verify=True" in (repo / "examples" / "load_package.py").read_text()


# -- torch's own objects load with safe=True, verify=True -------------------------------------


@pytest.fixture
def model_source(source_tree):
    source_tree(
        {
            "safe_zoo.py": """
                import torch
                import torch.nn.functional as F

                class Scaled(torch.Tensor):
                    pass

                class Activations(torch.nn.Module):
                    # What Hugging Face's GELUActivation and friends hold: torch functions.
                    def __init__(self):
                        super().__init__()
                        self.functions = [torch._C._nn.gelu, F.gelu, torch.relu, F.relu,
                                          torch.tanh, torch.special.erf]
                        self.linear = torch.nn.Linear(3, 3)

                    def forward(self, x):
                        for function in self.functions:
                            x = function(x)
                        return self.linear(x)

                class Outer:
                    class Inner:
                        def __init__(self, value):
                            self.value = value

                class Doubling:
                    # __setstate__ edits its tensor in place while the load goes on.
                    def __init__(self):
                        self.weights = torch.arange(1 << 20, dtype=torch.float32)

                    def __setstate__(self, state):
                        self.__dict__.update(state)
                        self.weights.mul_(2)
            """
        }
    )
    import safe_zoo

    return safe_zoo


def _torch_objects(zoo):
    torch.manual_seed(0)
    parameter = torch.nn.Parameter(torch.ones(2))
    parameter.note = "kept"
    with_attribute = torch.arange(3.0)
    with_attribute.unit = "m"
    traced = torch.fx.symbolic_trace(
        torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    )
    return {
        "script": torch.jit.script(torch.nn.Linear(3, 2)),
        "eager_with_script": torch.nn.ModuleDict(
            {"eager": torch.nn.Linear(3, 2), "scripted": torch.jit.script(torch.nn.Linear(2, 2))}
        ),
        "fx": traced,
        "nn": torch.nn.Sequential(
            torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.LSTM(4, 4)
        ),
        "state_dict": torch.nn.Linear(2, 2).state_dict(),
        "activations": zoo.Activations(),
        "subclass": torch.arange(4.0).as_subclass(zoo.Scaled),
        "parameter": parameter,
        "with_attribute": with_attribute,
        "sparse_coo": torch.eye(3).to_sparse(),
        "sparse_csr": torch.eye(3).to_sparse_csr(),
        "nested": torch.nested.nested_tensor([torch.ones(2), torch.arange(3.0)]),
        "quantized": torch.quantize_per_tensor(torch.arange(3.0), 0.5, 1, torch.quint8),
        "quantized_per_channel": torch.quantize_per_channel(
            torch.ones(2, 3), torch.tensor([0.1, 0.2]), torch.tensor([0, 1]), 0, torch.qint8
        ),
        "meta": torch.empty(2, 3, device="meta"),
        "conj": torch.tensor([1 + 2j]).conj(),
        "bfloat16": torch.ones(2, dtype=torch.bfloat16),
        "nested_class": zoo.Outer.Inner(7),
        "doubling": zoo.Doubling(),
        "plain": {"set": {1, 2}, "bytes": b"ab", "range": range(3), "size": torch.Size([2])},
    }


def _same(a, b):
    if isinstance(a, torch.nn.Module):
        return all(_same(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(),
                                                strict=True))  # fmt: skip
    if isinstance(a, torch.Tensor):
        if a.is_nested:
            return all(torch.equal(x, y) for x, y in zip(a.unbind(), b.unbind(), strict=True))
        if a.device.type == "meta":
            return a.shape == b.shape
        if a.is_quantized:
            return torch.equal(a.dequantize(), b.dequantize())
        if a.layout != torch.strided:
            return torch.equal(a.to_dense(), b.to_dense())
        # The package's class is its own copy of the original: the same name.
        same_type = type(a).__qualname__ == type(b).__qualname__
        plain_a, plain_b = (t.as_subclass(torch.Tensor).resolve_conj() for t in (a, b))
        return same_type and torch.equal(plain_a, plain_b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("protocol", [3, 4])
def test_torch_objects_load_with_safe_and_verify(tmp_path, model_source, protocol):
    zoo = model_source
    objects = _torch_objects(zoo)
    path = tmp_path / "zoo.pt"
    with PackageExporter(path) as exporter:
        exporter.intern("safe_zoo")
        for name, obj in objects.items():
            exporter.save_pickle("zoo", f"{name}.pkl", obj, pickle_protocol=protocol)
    importer = PackageImporter(path, safe=True, verify=True)
    loaded = {name: importer.load_pickle("zoo", f"{name}.pkl") for name in objects}
    x = torch.randn(5, 3)
    assert torch.equal(loaded["script"](x), objects["script"](x))
    assert torch.equal(loaded["eager_with_script"]["scripted"](x[:, :2]),
                       objects["eager_with_script"]["scripted"](x[:, :2]))  # fmt: skip
    assert torch.equal(loaded["fx"](torch.ones(1, 4)), objects["fx"](torch.ones(1, 4)))
    assert torch.equal(loaded["activations"](x), objects["activations"](x))
    assert loaded["activations"].functions[0] is torch._C._nn.gelu
    assert loaded["activations"].functions[2] is torch.relu
    assert loaded["parameter"].note == "kept" and loaded["with_attribute"].unit == "m"
    assert loaded["nested_class"].value == 7
    assert torch.equal(loaded["doubling"].weights, 2 * torch.arange(1 << 20, dtype=torch.float32))
    compared = ["nn", "state_dict", "subclass", "sparse_coo", "sparse_csr", "nested", "quantized",
                "quantized_per_channel", "meta", "conj", "bfloat16", "plain"]  # fmt: skip
    for name in compared:
        assert _same(objects[name], loaded[name]), name
    assert loaded["state_dict"]._metadata == objects["state_dict"]._metadata


def test_calling_a_torch_function_is_refused(tmp_path):
    class CallGelu:
        def __reduce__(self):
            return torch._C._nn.gelu, (torch.ones(2),)

    path = tmp_path / "calls.pt"
    with PackageExporter(path) as exporter:
        exporter.save_pickle("data", "gelu.pkl", CallGelu())
        exporter.save_pickle("data", "held.pkl", {"act": torch._C._nn.gelu})
        exporter.save_pickle("data", "from_file.pkl", {"f": torch.from_file})
    importer = PackageImporter(path, safe=True)
    assert importer.load_pickle("data", "held.pkl")["act"] is torch._C._nn.gelu
    with pytest.raises(UnsafeGlobalError, match="torch operator function may be held"):
        importer.load_pickle("data", "gelu.pkl")
    with pytest.raises(UnsafeGlobalError, match="from_file"):
        importer.load_pickle("data", "from_file.pkl")


def test_a_glob_admits_only_what_is_defined_under_it(tmp_path):
    path = tmp_path / "dates.pt"
    with PackageExporter(path) as exporter:
        exporter.save_pickle("data", "date.pkl", datetime.date(2026, 11, 28))
        exporter.save_binary("data", "alias.pkl", _stack_global("datetime", "sys.exit"))
        exporter.add_dependency("datetime")
    importer = PackageImporter(path, safe=True, allow_globals=["datetime.**"])
    assert importer.load_pickle("data", "date.pkl") == datetime.date(2026, 11, 28)
    with pytest.raises(UnsafeGlobalError, match="sys.exit"):
        importer.load_pickle("data", "alias.pkl")


def test_rebuild_memory_is_bounded_by_an_option(tmp_path):
    class Big:
        def __reduce__(self):
            return bytearray, (32 << 20,)

    path = tmp_path / "big.pt"
    with PackageExporter(path) as exporter:
        exporter.save_pickle("data", "big.pkl", Big())
    with pytest.raises(MalformedArchiveError, match="max_rebuild_bytes"):
        PackageImporter(path, safe=True, max_rebuild_bytes=16 << 20).load_pickle("data", "big.pkl")
    loaded = PackageImporter(path, safe=True).load_pickle("data", "big.pkl")
    assert len(loaded) == 32 << 20
