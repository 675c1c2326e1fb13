"""The commands that look inside packages, on real ones: transformers' BERT with the library
interned (thousands of modules), as ``examples/real_libraries.py`` packages it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AVAILABLE, REPO_ROOT, run_cli

from torchpack.archive.zip_index import ZipIndex
from torchpack.cli.import_chain import ImportGraph, shortest_chain
from torchpack.cli.package_contents import inspect_package

pytestmark = pytest.mark.skipif("bert" not in AVAILABLE, reason="needs transformers")


@pytest.fixture(scope="module")
def bert(real_library_exports: tuple[Path, str]) -> Path:
    return real_library_exports[0] / "bert.pt"


@pytest.fixture(scope="module")
def bert_report(bert: Path) -> dict:
    result = run_cli("inspect", "--json", str(bert))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_inspect_summary_fits_on_a_screen(bert: Path, bert_report: dict) -> None:
    interned = bert_report["interned_modules"]
    assert len(interned) > 1000  # what the summary stands for
    result = run_cli("inspect", str(bert))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) < 30
    version = bert_report["distributions"]["transformers"]
    (model,) = [p for p in bert_report["pickles"] if p["record"] == "model/model.pkl"]
    from_transformers = sum(module.startswith("transformers.") for module, _ in model["globals"])
    for expected in (
        f"distributions:    transformers {version}\n",
        f"interned modules: {len(interned)}, ",
        f"  transformers            {len(interned)} modules, ",
        "  outside the standard library: PIL (",
        f"  model/model.pkl: {len(model['globals'])} globals from builtins, collections, torch (",
        f"), transformers ({from_transformers})\n",
    ):
        assert expected in result.stdout


def test_inspect_full_lists_every_module_and_the_tree(bert: Path, bert_report: dict) -> None:
    result = run_cli("inspect", "--full", str(bert))
    assert result.returncode == 0, result.stderr
    lines = set(result.stdout.splitlines())
    for module in [*bert_report["interned_modules"], *bert_report["extern_modules"]]:
        assert f"  {module}" in lines
    assert "    │   │   │   ├── modeling_bert.py" in lines  # transformers/models/bert/


@pytest.mark.skipif("unet" not in AVAILABLE, reason="needs diffusers")
def test_diff_into_head_ends_quietly(real_library_exports: tuple[Path, str]) -> None:
    # transformers against diffusers: thousands of lines, more than a pipe holds, so the diff
    # is still writing when head has read its three lines and gone.
    folder = real_library_exports[0]
    diff = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torchpack",
            "diff",
            str(folder / "bert.pt"),
            str(folder / "unet.pt"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    head = subprocess.run(["head", "-n", "3"], stdin=diff.stdout, capture_output=True, timeout=120)
    diff.stdout.close()  # head has the only reading end now
    stderr = diff.stderr.read()
    assert diff.wait(timeout=120) == 141, stderr
    assert stderr == b""
    assert len(head.stdout.splitlines()) == 3


@pytest.mark.parametrize(
    "target",
    [
        "transformers.utils.logging",
        "transformers.models.t5.modeling_t5",
        "numpy",
        "jinja2",
        "string",
    ],
)
def test_why_scans_few_of_thousands_of_sources(bert: Path, target: str) -> None:
    # A search over the whole graph scans every interned module (2,371 in transformers 5.18).
    index = ZipIndex(str(bert))
    contents = inspect_package(index)
    graph = ImportGraph(index, contents)
    chain = shortest_chain(graph, target)
    assert chain is not None
    assert (chain[0], chain[-1]) == ("model/model.pkl", target)
    assert all(b in graph.successors(a) for a, b in zip(chain, chain[1:], strict=False))
    assert graph.scanned < 100 < len(contents.interned_modules)


def test_why_prints_the_chain_of_a_real_package(bert: Path) -> None:
    result = run_cli("why", str(bert), "transformers.utils.logging")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "transformers.utils.logging is interned; pulled in by:\n"
        "  model/model.pkl\n  -> transformers\n  -> transformers.utils.logging\n"
    )


def test_audit_reports_what_transformers_can_reach_without_failing(bert: Path) -> None:
    # transformers downloads from the hub, runs ffmpeg and git, and loads libraries with ctypes,
    # all in functions a model's user may never call: reported, not failed.
    result = run_cli("audit", str(bert))
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    hub = next(line for line in lines if line.startswith("  transformers.utils.hub   uses"))
    assert "network: huggingface_hub." in hub and "hf_hub_download" in hub
    imports = next(line for line in lines if line.startswith("  transformers.utils.import_utils"))
    assert "process: subprocess" in imports and "native library: ctypes.CDLL" in imports
    assert "CALLED ON IMPORT" not in result.stdout
    assert lines[-1].startswith("OK: ")
