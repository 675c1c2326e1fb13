"""This process's resident memory, now and at its peak (Linux ``/proc``, else ``ru_maxrss``)."""

from __future__ import annotations

import resource

MiB = 2**20


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def resident_mib(kind: str = "") -> float:
    """Resident memory: all of it, or only ``"Anon"`` (private) or ``"File"`` (mapped files)."""
    kib = _status_kib(f"Rss{kind}" if kind else "VmRSS")
    return (kib or 0) / 1024


def reset_peak() -> bool:
    """Start a new peak (VmHWM) from the current resident size; False if the kernel won't."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def peak_mib() -> float:
    """VmHWM: the peak since :func:`reset_peak` (or since start, as ``ru_maxrss``)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024
