"""Export of a model built with a real library interned (transformers' BERT, from a small
config, the patterns of ``examples/real_libraries.py``), torchpack against torch.package."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from examples.real_libraries import CASES

from ..report import Target, compare
from ..runner import TORCH_PACKAGE, TORCHPACK, Arm, CaseResult, alternate

NAME = "real library"


def run(work: Path, settings: argparse.Namespace) -> CaseResult | str:
    case = settings.library_case
    library = CASES[case].library
    if importlib.util.find_spec(library) is None:
        return f"{library} is not installed (scripts/setup.sh installs it)"
    print(f"export of {case} with {library} interned (the model built before the clock starts):")
    job = {"kind": "library_export", "case": case}
    arms = [
        Arm(impl, {**job, "impl": impl, "path": str(work / f"{case}-{index}.pt")})
        for index, impl in enumerate((TORCH_PACKAGE, TORCHPACK))
    ]
    return alternate(arms, settings.library_rounds)


def targets(result: CaseResult) -> list[Target]:
    return [
        compare(
            "real library export, torchpack / torch.package",
            result,
            TORCHPACK,
            TORCH_PACKAGE,
            1 / 3,
        )
    ]


def seconds(result: CaseResult) -> dict[str, float | None]:
    return {arm: result.median(arm, "seconds") for arm in result.runs}
