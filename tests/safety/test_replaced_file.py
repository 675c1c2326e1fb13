"""An importer keeps reading the archive it opened after its path names a new file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from torchpack import PackageExporter, PackageImporter


def _export(path: Path, value: float) -> None:
    with PackageExporter(path) as exporter:
        exporter.save_pickle("data", "t.pkl", torch.full((1000,), value))
        exporter.save_text("data", "note.txt", f"value {value}")


@pytest.mark.parametrize("mmap", [False, True])
def test_replacing_the_path_does_not_change_an_open_importer(tmp_path: Path, mmap: bool) -> None:
    path = tmp_path / "p.pt"
    _export(path, 1.0)
    importer = PackageImporter(path, mmap=mmap)
    replacement = tmp_path / "new.pt"
    _export(replacement, 2.0)
    os.replace(replacement, path)  # what every export does to its target
    assert importer.load_text("data", "note.txt") == "value 1.0"
    assert torch.equal(importer.load_pickle("data", "t.pkl"), torch.full((1000,), 1.0))
    assert PackageImporter(path).load_text("data", "note.txt") == "value 2.0"
