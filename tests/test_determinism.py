"""The same export gives the same bytes, whatever the hash seed, working folder or output folder."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import run_python

import torchpack

SOURCES = {
    "dmodels/__init__.py": """
        from .net import Net
        from .registry import REGISTRY
    """,
    "dmodels/net.py": """
        import dext_lib
        import dmock_lib
        import numpy
        import torch
        from torch import nn

        from . import registry
        from .layers import Block


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.stem = nn.Conv2d(3, 6, 3)
                self.bn = nn.BatchNorm2d(6)
                self.blocks = nn.Sequential(Block(6), Block(6))
                self.head = nn.Linear(6, registry.REGISTRY["classes"])
                self.head.weight.data.mul_(dext_lib.GAIN)

            def forward(self, x):
                x = self.blocks(self.bn(self.stem(x)))
                return self.head(x.mean((2, 3)))

            def debug(self):
                dmock_lib.dump(self)
                return numpy.zeros(1)
    """,
    "dmodels/layers.py": """
        from torch import nn

        from .activations import act


        class Block(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.conv = nn.Conv2d(n, n, 1)

            def forward(self, x):
                return act(self.conv(x)) + x
    """,
    "dmodels/activations.py": """
        import math

        import torch

        from . import registry


        def act(x):
            return torch.tanh(x) * math.sqrt(registry.REGISTRY["gain"])
    """,
    "dmodels/registry.py": """
        import collections

        REGISTRY = collections.OrderedDict(classes=3, gain=2.0)
    """,
    "dmodels/special.py": """
        import torch


        class Special:
            def __init__(self, name, weights):
                self.name = name
                self.weights = weights

            def __reduce_package__(self, exporter):
                uid = exporter.get_unique_id()
                exporter.save_text("special_gen", f"{uid}.txt", self.name)
                exporter.save_pickle("special_gen", f"{uid}.pkl", self.weights)
                return (rebuild, (uid,))


        def rebuild(importer, uid):
            return Special(
                importer.load_text("special_gen", f"{uid}.txt"),
                importer.load_pickle("special_gen", f"{uid}.pkl"),
            )
    """,
    "dext_lib.py": "GAIN = 0.5\n",
    "dmock_lib.py": "def dump(obj):\n    print(obj)\n",
}

EXPORT = """
    import os
    import torch
    import torchpack
    from dmodels.net import Net
    from dmodels.special import Special

    torch.manual_seed(int(os.environ.get("MODEL_SEED", "0")))
    model = Net().eval()
    words = [f"word{i}" for i in range(40)] + ["alpha", "beta", "gamma", "δέλτα", ""]
    data = {
        "tags": set(words),
        "frozen": frozenset(words[::3]),
        "pairs": frozenset((w, len(w)) for w in words[:10]),
        "mixed": {1, 2.5, "three", b"four", (5, "six"), None},
        "nested": [set(words[:7]), {"inner": frozenset(words[7:15])}],
        "tensor": torch.arange(12).view(3, 4)[:, 1:],
        "special": [Special("first", torch.ones(3)), Special("second", torch.zeros(2))],
    }
    with torchpack.PackageExporter(TARGET) as exporter:
        exporter.intern("dmodels.**")
        exporter.extern(["dext_lib", "numpy.**"])
        exporter.mock("dmock_lib")
        exporter.save_pickle("model", "model.pkl", model)
        exporter.save_pickle("model", "state.pkl", model.state_dict(), pickle_protocol=4)
        exporter.save_pickle("data", "data.pkl", data)
        exporter.save_text("notes", "readme.txt", "deterministic\\n")
        exporter.save_binary("notes", "blob.bin", bytes(range(256)))
        exporter.save_module("dmodels.special")
    print("exported", TARGET)
"""


@pytest.fixture
def tree(source_tree) -> Path:
    return source_tree(SOURCES)


def export_in_subprocess(
    tree: Path, target: str, *, cwd: Path, hash_seed: str, model_seed: str = "0"
) -> Path:
    cwd.mkdir(parents=True, exist_ok=True)
    run_python(
        EXPORT.replace("TARGET", repr(target)),
        cwd=cwd,
        env={"PYTHONHASHSEED": hash_seed, "MODEL_SEED": model_seed},
        extra_path=[tree],
    )
    path = Path(target) if Path(target).is_absolute() else cwd / target
    assert path.is_file()
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_exports_are_byte_identical(tmp_path, tree):
    runs = [
        # (hash seed, working folder, output path: absolute, or relative to the working folder)
        ("0", tmp_path / "cwd_a", str(tmp_path / "out_a" / "model.pt")),
        ("1", tmp_path / "cwd_a", str(tmp_path / "out_b" / "model.pt")),
        ("12345", tmp_path / "cwd_b" / "deeper", str(tmp_path / "x" / "y" / "out_c" / "model.pt")),
        ("random", tmp_path / "out_d", "model.pt"),
    ]
    for _, _, target in runs:
        if Path(target).is_absolute():
            Path(target).parent.mkdir(parents=True, exist_ok=True)
    outputs = [
        export_in_subprocess(tree, target, cwd=cwd, hash_seed=seed) for seed, cwd, target in runs
    ]
    assert len(set(outputs)) == len(outputs)
    digests = {str(path): sha256(path) for path in outputs}
    assert len(set(digests.values())) == 1, digests


def test_export_content_is_rich_and_loads(tmp_path, tree):
    """Guards the determinism test: the export really holds what could go wrong."""
    path = export_in_subprocess(tree, str(tmp_path / "model.pt"), cwd=tmp_path, hash_seed="random")
    with zipfile.ZipFile(path) as archive:
        names = {name.split("/", 1)[1] for name in archive.namelist()}
        externs = archive.read("model/.data/extern_modules").decode().split()
    assert {
        "dmodels/net.py",
        "dmodels/layers.py",
        "dmodels/activations.py",
        "dmodels/registry.py",
        "dmodels/special.py",
        "dmock_lib.py",
        "_mock.py",
        "special_gen/0.txt",
        "special_gen/0.pkl",
        "special_gen/1.txt",
        "special_gen/1.pkl",
        "data/data.pkl",
        "model/model.pkl",
        "model/state.pkl",
        "notes/readme.txt",
        "notes/blob.bin",
    } <= names
    assert {"dext_lib", "numpy", "math", "collections"} <= set(externs)

    importer = torchpack.PackageImporter(path)
    data = importer.load_pickle("data", "data.pkl")
    words = [f"word{i}" for i in range(40)] + ["alpha", "beta", "gamma", "δέλτα", ""]
    assert data["tags"] == set(words)
    assert data["frozen"] == frozenset(words[::3])
    assert data["mixed"] == {1, 2.5, "three", b"four", (5, "six"), None}
    assert data["nested"][1]["inner"] == frozenset(words[7:15])
    assert torch.equal(data["tensor"], torch.arange(12).view(3, 4)[:, 1:])
    assert [s.name for s in data["special"]] == ["first", "second"]
    assert torch.equal(data["special"][0].weights, torch.ones(3))
    model = importer.load_pickle("model", "model.pkl")
    assert model(torch.randn(1, 3, 5, 5)).shape == (1, 3)


def test_in_process_export_matches_subprocess_export(tmp_path, tree):
    (tmp_path / "sub").mkdir()
    (tmp_path / "here").mkdir()
    child = export_in_subprocess(
        tree, str(tmp_path / "sub" / "model.pt"), cwd=tmp_path, hash_seed="random"
    )
    namespace: dict = {}
    code = EXPORT.replace("TARGET", repr(str(tmp_path / "here" / "model.pt")))
    exec(compile("\n".join(line[4:] for line in code.splitlines()), "<export>", "exec"), namespace)
    assert sha256(tmp_path / "here" / "model.pt") == sha256(child)


def test_different_model_gives_a_different_archive(tmp_path, tree):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = export_in_subprocess(
        tree, str(tmp_path / "a" / "model.pt"), cwd=tmp_path, hash_seed="0", model_seed="0"
    )
    second = export_in_subprocess(
        tree, str(tmp_path / "b" / "model.pt"), cwd=tmp_path, hash_seed="0", model_seed="1"
    )
    assert sha256(first) != sha256(second)
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        assert a.namelist() == b.namelist()
        assert a.read("model/dmodels/net.py") == b.read("model/dmodels/net.py")
        differing = [n for n in a.namelist() if a.read(n) != b.read(n)]
    assert any(name.endswith(".storage") for name in differing)
