"""Eager loads map their fresh storages' pages ahead of the reads (``archive/prefault.py``)."""

from __future__ import annotations

import ctypes
import mmap
import threading

import pytest
import torch

from torchpack import PackageExporter, PackageImporter
from torchpack.archive import prefault

MiB = 1 << 20


def resident_bytes_at(address: int) -> int:
    """Resident bytes of the mapping that holds ``address``, from /proc/self/smaps."""
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            first = line.split(maxsplit=1)[0]
            if not first.endswith(":"):
                start, end = (int(part, 16) for part in first.split("-"))
                inside = start <= address < end
            elif inside and first == "Rss:":
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(not prefault.can_prefault(), reason="needs Linux's madvise")
def test_prefault_maps_fresh_memory_without_changing_it():
    memory = mmap.mmap(-1, 64 * MiB)  # a mapping of its own, never touched
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    assert resident_bytes_at(address) < MiB
    assert prefault.prefault(address + 5, 40 * MiB)
    assert resident_bytes_at(address) >= 40 * MiB
    memory[7] = 9
    assert prefault.prefault(address, 64 * MiB)
    assert memory[7] == 9 and memory[8] == 0


@pytest.mark.parametrize("madvise", ["available", "missing"])
@pytest.mark.parametrize("verify", [None, False])
def test_storages_across_chunks_load_whole(tmp_path, monkeypatch, madvise, verify):
    """Storages over several 4 MiB chunks, and one that is not a whole number of them,
    load byte for byte, whether or not the system can map pages ahead."""
    if madvise == "missing":
        monkeypatch.setattr(prefault, "_load_madvise", lambda: None)
    torch.manual_seed(0)
    tensors = [torch.randn(3 * MiB), torch.randint(0, 255, (9 * MiB + 3,), dtype=torch.uint8)]
    path = tmp_path / "chunks.pt"
    with PackageExporter(path) as exporter:
        exporter.save_pickle("data", "tensors.pkl", tensors)
    loaded = PackageImporter(path, verify=verify).load_pickle("data", "tensors.pkl")
    assert all(torch.equal(a, b) for a, b in zip(loaded, tensors, strict=True))
    assert not [t for t in threading.enumerate() if t.name.startswith("torchpack-read")]
