"""Dependency resolution of a large pure-Python tree (sympy + mpmath), everything else mocked:
cold, and warm with an ``AnalysisCache`` (torch.package has no cache: both compare to its one
time)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..report import Target, compare
from ..runner import TORCH_PACKAGE, TORCHPACK, Arm, CaseResult, alternate

NAME = "resolve"
WARM = f"{TORCHPACK} warm cache"
# torch.package's import scanner recurses and fails on this generated module; both exporters
# mock it so that they package the same tree.
UNSCANNABLE_BY_TORCH_PACKAGE = ["sympy.polys.numberfields.resolvent_lookup"]


def run(work: Path, settings: argparse.Namespace) -> CaseResult:
    modules = settings.deps
    print(f"dependency resolution: intern {modules} with all they import, mock the rest:")
    cache = work / "analysis-cache"
    shutil.rmtree(cache, ignore_errors=True)
    job = {"kind": "resolve", "modules": modules, "exclude": UNSCANNABLE_BY_TORCH_PACKAGE}
    warm = {**job, "impl": TORCHPACK, "cache": str(cache)}
    # Fills the cache; not a measurement.
    alternate([Arm("priming the analysis cache", warm)], 1)
    arms = [
        Arm(TORCH_PACKAGE, {**job, "impl": TORCH_PACKAGE, "cache": None}),
        Arm(TORCHPACK, {**job, "impl": TORCHPACK, "cache": None}),
        Arm(WARM, warm),
    ]
    return alternate(arms, settings.rounds)


def targets(result: CaseResult) -> list[Target]:
    return [
        compare(
            "dependency resolution cold, torchpack / torch.package",
            result,
            TORCHPACK,
            TORCH_PACKAGE,
            0.5,
        ),
        compare(
            "dependency resolution warm cache, torchpack / torch.package",
            result,
            WARM,
            TORCH_PACKAGE,
            0.1,
        ),
    ]


def seconds(result: CaseResult) -> dict[str, float | None]:
    return {arm: result.median(arm, "seconds") for arm in result.runs}
