"""The build keeps the garbage collector off the objects imports make, and only those."""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO_ROOT

from torchpack import PackageImporter
from torchpack.cli.collector import imports_spared


@pytest.fixture
def collector_state():
    """Whatever a test does to the collector is undone."""
    yield
    gc.unfreeze()
    gc.enable()


def test_imports_are_made_with_the_collector_paused_then_frozen(collector_state):
    with imports_spared() as imports_done:
        assert not gc.isenabled()
        imported = [object() for _ in range(10)]
        imports_done()
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(imported)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # a process that goes on collects them again


def test_an_import_that_fails_leaves_the_collector_as_it_was(collector_state):
    with pytest.raises(ImportError), imports_spared():
        raise ImportError("no module named model")
    assert gc.isenabled() and gc.get_freeze_count() == 0


@pytest.mark.parametrize("managed", ["disabled", "frozen"])
def test_a_program_that_manages_the_collector_is_left_alone(collector_state, managed):
    if managed == "disabled":
        gc.disable()
    else:
        gc.freeze()
    state = (gc.isenabled(), gc.get_freeze_count())
    with imports_spared() as imports_done:
        assert (gc.isenabled(), gc.get_freeze_count()) == state
        imports_done()
    assert (gc.isenabled(), gc.get_freeze_count()) == state


CHURN = """
import atexit
from pathlib import Path

import torch


class Cycle:
    def __init__(self):
        self.me = self
        self.payload = b"\x01" * (100 * 1024)  # written: resident


def build(data):
    # 3 GiB of cyclic garbage, only ever freed by the collector.
    for _ in range(30_000):
        Cycle()
    atexit.register(Path(data["marker"]).write_text, "atexit ran")
    return torch.nn.Linear(4, 2)
"""


def test_what_the_entry_makes_is_still_collected_and_the_process_ends_normally(tmp_path):
    (tmp_path / "churn.py").write_text(textwrap.dedent(CHURN))
    marker, output = tmp_path / "marker.txt", tmp_path / "model.pt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(tmp_path)]))
    result = subprocess.run(
        [sys.executable, "-m", "torchpack", "build", "--entry", "churn:build",
         "--data", f"marker={marker}", "-o", str(output)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert peak_mib < 1500, f"the build's peak memory was {peak_mib:.0f} MiB: cycles not collected"
    assert marker.read_text() == "atexit ran"
    model = PackageImporter(output).load_pickle("model", "model.pkl")
    assert model(torch.ones(1, 4)).shape == (1, 2)


def test_only_the_program_leaves_objects_frozen_for_its_exit(tmp_path):
    """``main()`` called in a process that goes on leaves the collector as it found it;
    ``program()``, whose process ends next, freezes everything for the shutdown."""
    (tmp_path / "churn.py").write_text(textwrap.dedent(CHURN).replace("30_000", "10"))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(tmp_path)]),
        PYTHONHASHSEED="0",  # no restart: this process is the build
    )
    code = textwrap.dedent(
        f"""
        import gc, sys
        from torchpack.cli import main, program
        arguments = ["build", "--entry", "churn:build", "--data", "marker={tmp_path / "m"}"]
        assert main([*arguments, "-o", "{tmp_path / "a.pt"}"]) == 0
        print(gc.get_freeze_count(), gc.isenabled())
        sys.argv = ["torchpack", *arguments, "-o", "{tmp_path / "b.pt"}"]
        assert program() == 0
        print(gc.get_freeze_count() > 100_000)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True", "True"]
