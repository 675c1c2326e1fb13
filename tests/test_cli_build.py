"""``python -m torchpack build``: the entry contract, pattern order, the analysis cache, errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, records_of

from torchpack import PackageImporter

MODELS = {
    "shop/__init__.py": "",
    "shop/model.py": """
        import torch

        from shop import helpers
        from shop.training import loop


        class Scaler(torch.nn.Module):
            def __init__(self, factor):
                super().__init__()
                self.factor = factor

            def forward(self, x):
                return helpers.times(x, self.factor)


        def single(data):
            return Scaler(2.0)


        def several(data):
            factor = float(data["factor.txt"].read_text())
            return {
                "model/model.pkl": Scaler(factor),
                "notes/readme.txt": "a scaler",
                "notes/blob.bin": b"\\x00\\x01",
            }


        def bad_key(data):
            return {"model.pkl": Scaler(1.0)}
    """,
    "shop/helpers.py": "def times(x, factor):\n    return x * factor\n",
    "shop/training/__init__.py": "",
    "shop/training/loop.py": "import json\n",
}


def build(root: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(root)]))
    result = subprocess.run(
        [sys.executable, "-m", "torchpack", "build", *arguments],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def shop(tmp_path):
    root = tmp_path / "src"
    for relative, text in MODELS.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (root / "factor.txt").write_text("3.0")
    return root


def test_one_object_is_saved_as_the_model(shop, tmp_path):
    out = tmp_path / "single.pt"
    result = build(shop, "--entry", "shop.model:single", "--intern", "shop.**", "-o", str(out))
    assert "wrote" in result.stderr
    assert {"model/model.pkl", "shop/model.py", "shop/training/loop.py"} <= records_of(out)
    model = PackageImporter(out).load_pickle("model", "model.pkl")
    assert torch.equal(model(torch.ones(2)), torch.full((2,), 2.0))


def test_a_mapping_saves_pickles_text_and_binary_with_data(shop, tmp_path):
    out = tmp_path / "several.pt"
    build(
        shop,
        *("--entry", "shop.model:several", "--data", f"factor.txt={shop / 'factor.txt'}"),
        *("--mock", "shop.training.**", "--intern", "shop.**", "-o", str(out)),
    )
    importer = PackageImporter(out)
    assert importer.load_text("notes", "readme.txt") == "a scaler"
    assert importer.load_binary("notes", "blob.bin") == b"\x00\x01"
    model = importer.load_pickle("model", "model.pkl")
    assert torch.equal(model(torch.ones(1)), torch.full((1,), 3.0))
    # --mock came first, so it won over --intern for shop.training.loop.
    assert "json" not in importer.extern_modules


def test_patterns_apply_in_command_line_order(shop, tmp_path):
    out = tmp_path / "order.pt"
    build(
        shop,
        *("--entry", "shop.model:single", "--intern", "shop.**", "--mock", "shop.training.**"),
        *("-o", str(out)),
    )
    # --intern came first: shop.training.loop is interned, its json import externed.
    assert "json" in PackageImporter(out).extern_modules


def test_cache_dir_skips_analysis_on_the_second_build(shop, tmp_path):
    arguments = ["--entry", "shop.model:single", "--intern", "shop.**"]
    arguments += ["--cache-dir", str(tmp_path / "cache")]
    first = build(shop, *arguments, "-o", str(tmp_path / "a" / "model.pt"))
    second = build(shop, *arguments, "-o", str(tmp_path / "b" / "model.pt"))
    assert "0 hit(s), 5 miss(es)" in first.stderr
    assert "5 hit(s), 0 miss(es)" in second.stderr
    digests = {hashlib.sha256((tmp_path / d / "model.pt").read_bytes()).digest() for d in "ab"}
    assert len(digests) == 1


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("shop.model", "must look like module:function"),
        ("shop.nowhere:build", "cannot import the entry module 'shop.nowhere'"),
        ("shop.model:missing", "'shop.model' has no function 'missing'"),
        ("shop.model:bad_key", "keys name where to save each object"),
    ],
)
def test_bad_entries_are_clear_errors_and_write_nothing(shop, tmp_path, entry, message):
    out = tmp_path / "never.pt"
    result = build(shop, "--entry", entry, "--intern", "shop.**", "-o", str(out), check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.glob("never*")) == []


def test_packaging_errors_name_the_module(shop, tmp_path):
    out = tmp_path / "denied.pt"
    result = build(
        shop,
        *("--entry", "shop.model:single", "--deny", "shop.helpers", "--intern", "shop.**"),
        *("-o", str(out)),
        check=False,
    )
    assert result.returncode == 1
    assert "shop.helpers" in result.stderr and "denied" in result.stderr
    assert not out.exists()


def test_builds_run_under_a_fixed_hash_seed(shop, tmp_path):
    """Set order inside the entry (and in torch.jit) must not change the archive."""
    (shop / "seeded.py").write_text(
        "def build(data):\n"
        "    return {'notes/order.txt': ','.join(set('abcdefghijklmnop'))}\n"
    )
    archives = []
    for seed in ("random", "1", "0"):
        out = tmp_path / seed / "order.pt"
        env_seed = dict(os.environ, PYTHONHASHSEED=seed)
        result = subprocess.run(
            [sys.executable, "-m", "torchpack", "build", "--entry", "seeded:build", "-o", str(out)],
            cwd=shop,
            env=dict(env_seed, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(shop)])),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        archives.append(out.read_bytes())
    assert archives[0] == archives[1] == archives[2]
