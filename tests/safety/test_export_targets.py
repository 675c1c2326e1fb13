"""Where an export may write: through symbolic links, never over devices, FIFOs or mount points,
keeping a replaced file's mode."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT

from torchpack import PackageExporter, PackageImporter

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, mount)")


def _export(path: Path, text: str) -> None:
    with PackageExporter(path) as exporter:
        exporter.save_text("res", "version.txt", text)
        exporter.save_pickle("res", "t.pkl", torch.arange(4.0))


def test_an_export_writes_through_a_symbolic_link(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    _export(store / "blob-1234.pt", "old")
    link = tmp_path / "model.pt"
    link.symlink_to(store / "blob-1234.pt")
    _export(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(store / "blob-1234.pt")
    assert PackageImporter(store / "blob-1234.pt").load_text("res", "version.txt") == "new"
    # Byte for byte what a direct export to the link's name writes (the top folder is "model").
    direct = tmp_path / "direct"
    direct.mkdir()
    _export(direct / "model.pt", "new")
    assert (store / "blob-1234.pt").read_bytes() == (direct / "model.pt").read_bytes()
    assert not [p for p in store.iterdir() if p.name.startswith(".")]  # no staging left


def test_a_dangling_link_is_followed_to_where_it_points(tmp_path):
    link = tmp_path / "model.pt"
    link.symlink_to(tmp_path / "target.pt")
    _export(link, "new")
    assert link.is_symlink()
    assert PackageImporter(tmp_path / "target.pt").load_text("res", "version.txt") == "new"


def test_a_re_export_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "secret.pt"
    _export(path, "old")
    path.chmod(0o600)
    _export(path, "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PackageImporter(path).load_text("res", "version.txt") == "new"


@pytest.mark.parametrize("kind", ["fifo", "folder", *(["device"] if os.geteuid() == 0 else [])])
def test_non_regular_targets_are_refused_before_any_work(tmp_path, kind):
    target = tmp_path / "target.pt"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null
    before = os.lstat(target)
    with pytest.raises(ValueError, match="regular file|is a folder"):
        PackageExporter(target)
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.pt"]


@root_only
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare")
def test_a_bind_mounted_target_is_refused_before_any_work(tmp_path):
    source = tmp_path / "source.pt"
    target = tmp_path / "target.pt"
    _export(source, "mounted")
    _export(target, "underneath")
    script = textwrap.dedent(
        f"""
        import torch
        from torchpack import PackageExporter
        try:
            PackageExporter({str(target)!r})
        except ValueError as err:
            print("refused:", err)
        """
    )
    script_file = tmp_path / "export.py"
    script_file.write_text(script)
    # A private mount namespace: the mount cannot outlive the test, whatever happens.
    command = f"mount --bind {source} {target} && {sys.executable} {script_file}"
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    if "mount:" in result.stderr:
        pytest.skip(f"cannot bind-mount here: {result.stderr.strip()}")
    assert "refused:" in result.stdout and "mount point" in result.stdout, result.stderr
