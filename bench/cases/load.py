"""Load of a ~1 GiB model and its first forward pass: torchpack eager (as shipped, verifying
every storage, and with ``verify=False``) and ``mmap=True``, torch.package eager, and
safetensors (``load_file`` of the same weights into the model built on the meta device)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..model import width_for
from ..report import Target, compare
from ..runner import TORCH_PACKAGE, TORCHPACK, Arm, CaseResult, alternate, run_child

NAME = "load"
UNVERIFIED = f"{TORCHPACK} verify=False"
MAPPED = f"{TORCHPACK} mmap"
SAFETENSORS = "safetensors"
RAW = "raw read"


def run(work: Path, settings: argparse.Namespace) -> CaseResult:
    width = width_for(settings.size_mib)
    archive, weights = work / "load.pt", work / "load.safetensors"
    # The inputs, written once (not measured): the archive by torchpack (torch.package loads
    # it too), the same weights by safetensors.
    run_child({"kind": "export", "impl": TORCHPACK, "path": str(archive), "width": width})
    run_child({"kind": "safetensors_save", "path": str(weights), "width": width})
    print("load of the same archive, then a first forward pass (safetensors: the same weights):")
    job = {"kind": "load", "path": str(archive), "width": width}
    arms = [
        Arm(TORCH_PACKAGE, {**job, "impl": TORCH_PACKAGE, "mmap": False}),
        Arm(TORCHPACK, {**job, "impl": TORCHPACK, "mmap": False}),
        # Without checking the storages against the manifest, as torch.package never does.
        Arm(UNVERIFIED, {**job, "impl": TORCHPACK, "mmap": False, "verify": False}),
        Arm(MAPPED, {**job, "impl": TORCHPACK, "mmap": True}),
        Arm(SAFETENSORS, {"kind": "safetensors_load", "path": str(weights), "width": width}),
        Arm(RAW, {"kind": "raw_read", "path": str(archive)}),
    ]
    return alternate(arms, settings.rounds)


def targets(result: CaseResult) -> list[Target]:
    load, first = "load_seconds", "first_forward_seconds"
    return [
        compare(
            "eager load time, torchpack / torch.package",
            result,
            TORCHPACK,
            TORCH_PACKAGE,
            1.0,
            load,
        ),
        compare(
            "eager load time, torchpack verify=False / torch.package",
            result,
            UNVERIFIED,
            TORCH_PACKAGE,
            1.0,
            load,
        ),
        compare(
            "eager load time, torchpack / raw read", result, TORCHPACK, RAW, None, load, "seconds"
        ),
        compare(
            "mmap time to first forward / torch.package's",
            result,
            MAPPED,
            TORCH_PACKAGE,
            0.1,
            first,
        ),
        compare(
            # The lowest ratio any loader could reach: the forward alone, weights in memory.
            "floor: a forward on resident weights / torch.package's time to first forward",
            result,
            MAPPED,
            TORCH_PACKAGE,
            None,
            "second_forward_seconds",
            first,
        ),
        compare(
            "mmap time to first forward / safetensors'", result, MAPPED, SAFETENSORS, 1.2, first
        ),
        compare(
            "mmap resident memory after the forward / safetensors'",
            result,
            MAPPED,
            SAFETENSORS,
            None,
            "resident_mib",
        ),
    ]


def seconds(result: CaseResult) -> dict[str, float | None]:
    return {
        arm: result.median(arm, "first_forward_seconds") or result.median(arm, "seconds")
        for arm in result.runs
    }
