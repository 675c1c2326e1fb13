"""Long exports show records and bytes written on a terminal, and nothing anywhere else."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT

EXPORT = """
import sys, torch
import torchpack.archive.progress as progress
progress.SHOW_AFTER_SECONDS = {delay}
from torchpack import PackageExporter
with PackageExporter(sys.argv[1], progress={show}) as exporter:
    for index in range(3):
        exporter.save_pickle("weights", f"w{{index}}.pkl", torch.ones(2**18))
print("exported")
"""


def _run(tmp_path, *, terminal: bool, show: bool | None = None, delay: float = 0.0) -> str:
    """Export in a fresh process whose standard error is a terminal (a pty) or a pipe;
    returns what it wrote there."""
    code = textwrap.dedent(EXPORT.format(show=show, delay=delay))
    argv = [sys.executable, "-c", code, str(tmp_path / "out.pt")]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if not terminal:
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stderr
    controller, terminal_end = os.openpty()
    try:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=terminal_end, env=env)
        os.close(terminal_end)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the pty is closed once the process is gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=120) == 0
    finally:
        os.close(controller)
    return b"".join(chunks).decode()


def test_a_terminal_sees_records_and_bytes(tmp_path) -> None:
    shown = _run(tmp_path, terminal=True)
    lines = shown.replace("\r\n", "\n").split("\n")
    final = [line for line in lines if line][-1].split("\r")[-1]
    assert final.startswith(f"torchpack: writing {tmp_path / 'out.pt'}: ")
    # Three 1 MiB storages and their pickles, the sources, the manifest and the rest.
    records = int(final.split(": ")[-1].split(" records")[0])
    assert records >= 7
    assert final.endswith(" MiB") and float(final.split(", ")[-1].split()[0]) >= 3.0


@pytest.mark.parametrize("show", [None, True])
def test_a_pipe_sees_nothing_unless_asked(tmp_path, show) -> None:
    shown = _run(tmp_path, terminal=False, show=show)
    assert ("torchpack: writing" in shown) is bool(show)


def test_short_exports_and_refusals_stay_quiet_on_a_terminal(tmp_path) -> None:
    assert _run(tmp_path, terminal=True, delay=60.0) == ""
    assert _run(tmp_path, terminal=True, show=False) == ""
