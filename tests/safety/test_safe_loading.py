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

from torchpack import PackageExporter, PackageImporter
from torchpack.errors import UnsafeGlobalError


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
