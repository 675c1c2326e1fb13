"""Export of a model whose code is a generated library of many small modules (300+), intern
everything: in one process (the library imported before the clock starts), and as whole
commands: ``torchpack build --cache-dir`` with an empty cache and a warm one, against a
torch.package script doing the same export.

Python leaves compiled bytecode beside modules it imports (pip does so for installed
libraries), which torchpack reads instead of compiling: the library is compiled, and torchpack
is also measured on a copy without it."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ..report import Target, compare
from ..runner import REPO_ROOT, TORCH_PACKAGE, TORCHPACK, Arm, CaseResult, alternate
from ..small_library import ENTRY, PACKAGE, write_library

NAME = "small modules"
NO_BYTECODE = f"{TORCHPACK}, no __pycache__"
SCRIPT = f"{TORCH_PACKAGE} script"
BUILD_COLD = "torchpack build, empty cache"
BUILD_WARM = "torchpack build, warm cache"

# What `torchpack build` does, written for torch.package: a whole process, as a user runs it.
_TORCH_PACKAGE_SCRIPT = f"""
import sys
sys.path.insert(0, sys.argv[1])
from torch.package import PackageExporter
import {ENTRY.split(":")[0]} as model_module
with PackageExporter(sys.argv[2]) as exporter:
    exporter.intern("{PACKAGE}.**")
    exporter.save_pickle("model", "model.pkl", model_module.{ENTRY.split(":")[1]}({{}}))
"""


def run(work: Path, settings: argparse.Namespace) -> CaseResult:
    compiled, source_only = work / "library", work / "library-no-bytecode"
    write_library(compiled, settings.modules, bytecode=True)
    write_library(source_only, settings.modules, bytecode=False)
    print(f"export of a model made of {settings.modules} small modules, all interned:")
    job = {"kind": "small_export", "package": PACKAGE}
    cache = work / "build-cache"
    build = [
        sys.executable, "-m", "torchpack", "build", "--entry", ENTRY,
        "--intern", f"{PACKAGE}.**", "--cache-dir", str(cache), "-o", str(work / "built.pt"),
    ]  # fmt: skip
    command = {"kind": "command", "cwd": str(REPO_ROOT), "pythonpath": str(compiled)}
    arms = [
        Arm(TORCH_PACKAGE, {**job, "impl": TORCH_PACKAGE, "root": str(compiled)}),
        Arm(TORCHPACK, {**job, "impl": TORCHPACK, "root": str(compiled)}),
        Arm(NO_BYTECODE, {**job, "impl": TORCHPACK, "root": str(source_only)}),
        Arm(
            SCRIPT,
            {
                **command,
                "argv": [
                    sys.executable,
                    "-c",
                    _TORCH_PACKAGE_SCRIPT,
                    str(compiled),
                    str(work / "script.pt"),
                ],
            },  # fmt: skip
        ),
        Arm(BUILD_COLD, {**command, "argv": build, "clear": str(cache)}),
        Arm(BUILD_WARM, {**command, "argv": build}),
    ]
    result = alternate(arms, settings.rounds)
    shutil.rmtree(cache, ignore_errors=True)
    return result


def targets(result: CaseResult) -> list[Target]:
    return [
        compare(
            "many small modules, one process, torchpack / torch.package",
            result,
            TORCHPACK,
            TORCH_PACKAGE,
            1.0,
        ),
        compare(
            "many small modules, one process, no __pycache__, torchpack / torch.package",
            result,
            NO_BYTECODE,
            TORCH_PACKAGE,
            None,
        ),
        compare(
            "many small modules, torchpack build (empty cache) / torch.package script",
            result,
            BUILD_COLD,
            SCRIPT,
            1.0,
        ),
        compare(
            "many small modules, torchpack build (warm cache) / torch.package script",
            result,
            BUILD_WARM,
            SCRIPT,
            None,
        ),
    ]


def seconds(result: CaseResult) -> dict[str, float | None]:
    return {arm: result.median(arm, "seconds") for arm in result.runs}
