"""The ``safe=True`` pre-scan of a pickle without tensors (a tokenizer's tables), against
unpickling the same pickle, and the whole safe load."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..model import token_table
from ..report import Target, compare
from ..runner import Arm, CaseResult, alternate

NAME = "safe pre-scan"
RECORD = "tokens/table.pkl"


def run(work: Path, settings: argparse.Namespace) -> CaseResult:
    print(f"safe=True pre-scan of a {settings.scan_mib:g} MiB pickle, against unpickling it:")
    from torchpack import PackageExporter

    archive = work / "tokens.pt"
    with PackageExporter(archive) as exporter:
        exporter.save_pickle(*RECORD.split("/"), token_table(settings.scan_mib))
    job = {"kind": "scan", "path": str(archive), "record": RECORD}
    arms = [Arm(mode, {**job, "mode": mode}) for mode in ("unpickle", "scan", "safe load")]
    return alternate(arms, settings.rounds)


def targets(result: CaseResult) -> list[Target]:
    return [
        compare("safe=True pre-scan / unpickling the same pickle", result, "scan", "unpickle", 1.5)
    ]


def seconds(result: CaseResult) -> dict[str, float | None]:
    return {arm: result.median(arm, "seconds") for arm in result.runs}
