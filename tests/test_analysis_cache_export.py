"""PackageExporter with an analysis cache: same archives, and no parsing when warm."""

import hashlib

import pytest
import torch

from torchpack import PackageExporter, PackageImporter
from torchpack.analysis.module_analysis import AnalysisCache

TREE = {
    "cached/__init__.py": "from .layers import Scale\n",
    "cached/layers.py": (
        "import torch\nfrom . import util\n\n"
        "class Scale(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return util.double(x)\n"
    ),
    "cached/util.py": "import math\n\ndef double(x):\n    return x * 2\n",
}


def export(target, analysis_cache):
    """The archive's sha256 (its top-level folder is named after the file: keep names equal)."""
    from cached import Scale

    target.parent.mkdir(exist_ok=True)
    with PackageExporter(target, analysis_cache=analysis_cache) as exporter:
        exporter.intern("cached.**")
        exporter.save_pickle("model", "model.pkl", Scale())
    return hashlib.sha256(target.read_bytes()).hexdigest()


def test_warm_cache_skips_parsing_and_gives_the_same_archive(tmp_path, source_tree, parse_calls):
    source_tree(TREE)
    uncached = export(tmp_path / "plain" / "model.pt", None)
    assert sorted(parse_calls) == ["cached", "cached.layers", "cached.util"]

    parse_calls.clear()
    cold = export(tmp_path / "cold" / "model.pt", tmp_path / "cache")  # a folder path works too
    assert len(parse_calls) == 3
    parse_calls.clear()
    cache = AnalysisCache(tmp_path / "cache")
    warm = export(tmp_path / "warm" / "model.pt", cache)
    assert parse_calls == []
    assert (cache.hits, cache.misses) == (3, 0)
    assert uncached == cold == warm

    model = PackageImporter(tmp_path / "warm" / "model.pt").load_pickle("model", "model.pkl")
    assert torch.equal(model(torch.ones(2)), torch.full((2,), 2.0))


def test_edited_module_is_analysed_again(tmp_path, source_tree, parse_calls):
    root = source_tree(TREE)
    cache = AnalysisCache(tmp_path / "cache")
    export(tmp_path / "a.pt", cache)
    (root / "cached/util.py").write_text("import json\n\ndef double(x):\n    return x * 2\n")
    parse_calls.clear()
    export(tmp_path / "b.pt", cache)
    assert parse_calls == ["cached.util"]
    assert "json" in PackageImporter(tmp_path / "b.pt").extern_modules


def test_a_cache_that_cannot_be_written_fails_the_export_and_leaves_no_archive(
    tmp_path, source_tree
):
    source_tree(TREE)
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache's folder should be")
    target = tmp_path / "out" / "model.pt"
    with pytest.raises(OSError, match=f"analysis cache {blocked}"):
        export(target, blocked)
    assert not target.exists()


def test_a_failed_export_keeps_the_analyses_it_made(tmp_path, source_tree, parse_calls):
    """The next attempt (the pattern fixed) parses only what the failed one did not."""
    from torchpack import PackagingError

    source_tree(TREE)
    from cached import Scale

    cache = AnalysisCache(tmp_path / "cache")
    with (
        pytest.raises(PackagingError),
        PackageExporter(tmp_path / "failed.pt", analysis_cache=cache) as exporter,
    ):
        exporter.deny("cached.util")  # first match wins: before the intern
        exporter.intern("cached.**")
        exporter.save_pickle("model", "model.pkl", Scale())
    assert sorted(parse_calls) == ["cached", "cached.layers"]  # a denied module is not read
    assert not (tmp_path / "failed.pt").exists()
    parse_calls.clear()
    export(tmp_path / "fixed" / "model.pt", AnalysisCache(tmp_path / "cache"))
    assert parse_calls == ["cached.util"]
