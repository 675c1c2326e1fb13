"""Export is all or nothing: a killed process or a full disk leaves the previous archive intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import run_python

from torchpack import PackageExporter, PackageImporter

REPO = Path(__file__).resolve().parents[2]


def _previous_archive(target: Path) -> bytes:
    with PackageExporter(target) as exporter:
        exporter.save_text("res", "version.txt", "previous")
    return target.read_bytes()


def _staging_folders(folder: Path, target: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(f".{target.name}.")]


def _start_big_export(target: Path) -> subprocess.Popen[str]:
    script = f"""
import sys, torch
from torchpack import PackageExporter
big = torch.ones(16 << 20)  # 64 MiB, eight times
print("exporting", flush=True)
with PackageExporter({str(target)!r}) as exporter:
    exporter.save_text("res", "version.txt", "new")
    for i in range(8):
        exporter.save_pickle("res", f"t{{i}}.pkl", big.clone())
print("finished", flush=True)
"""
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_sigkill_mid_export_leaves_previous_archive(tmp_path):
    target = tmp_path / "model.pt"
    before = _previous_archive(target)
    child = _start_big_export(target)
    try:
        assert child.stdout is not None and child.stdout.readline() == "exporting\n"
        deadline = time.monotonic() + 120
        # Kill once the staging file holds part of the archive: mid-write.
        while time.monotonic() < deadline:
            staged = [f for d in _staging_folders(tmp_path, target) for f in d.iterdir()]
            if staged and staged[0].stat().st_size > 16 << 20:
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the export never started writing")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL
    assert target.read_bytes() == before
    assert PackageImporter(target, verify=True).load_text("res", "version.txt") == "previous"
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["model.pt"]
    # The killed process could not clean up its staging folder; the next export does.
    assert len(_staging_folders(tmp_path, target)) == 1
    with PackageExporter(target) as exporter:
        exporter.save_text("res", "version.txt", "next")
    assert _staging_folders(tmp_path, target) == []
    assert PackageImporter(target).load_text("res", "version.txt") == "next"


def test_full_disk_gives_clear_error_and_keeps_previous_archive(tmp_path):
    """RLIMIT_FSIZE makes every write past 8 MiB fail with EFBIG, as a full disk fails with
    ENOSPC: the same failed write() inside PyTorch's writer."""
    target = tmp_path / "model.pt"
    before = _previous_archive(target)
    script = f"""
import resource, signal, torch
from torchpack import PackageExporter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, resource.RLIM_INFINITY))
try:
    with PackageExporter({str(target)!r}) as exporter:
        exporter.save_pickle("res", "t.pkl", torch.zeros(8 << 20))
except OSError as err:
    print(err)
"""
    result = run_python(script)
    assert f"could not write record '.data/0.storage' of the package {target}" in result.stdout
    assert "is the disk full" in result.stdout
    assert target.read_bytes() == before
    assert _staging_folders(tmp_path, target) == []


def test_interrupt_mid_export_keeps_previous_archive(tmp_path):
    target = tmp_path / "model.pt"
    before = _previous_archive(target)

    class Interrupting:
        def __reduce__(self):
            raise KeyboardInterrupt

    try:
        with PackageExporter(target) as exporter:
            exporter.save_pickle("res", "t.pkl", torch.ones(1000))
            exporter.save_pickle("res", "boom.pkl", Interrupting())
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the interrupt was swallowed")
    assert target.read_bytes() == before
    assert _staging_folders(tmp_path, target) == []
