"""Side-by-side benchmarks of torchpack against torch.package (and safetensors for loading):
``python -m bench`` (see README).

Every measurement runs in a fresh process; the contenders alternate round by round and the
summary shows medians, each target's ratio (the median of the ratios within rounds, with the
ratio of the medians beside it) and whether it is met, and the raw disk limit.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .cases import CASES
from .report import draw_chart
from .runner import REPO_ROOT, CaseResult


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each contender")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--size-mib", type=float, default=1024, help="model size (1 GiB)")
    parser.add_argument("--deps", nargs="+", default=["sympy", "mpmath"], help="packages to intern")
    parser.add_argument("--modules", type=int, default=312, help="size of the small-module library")
    parser.add_argument("--library-case", default="bert", help="examples/real_libraries.py case")
    parser.add_argument("--library-rounds", type=int, default=3, help="rounds of that export")
    parser.add_argument("--scan-mib", type=float, default=24, help="pickle of the scan case")
    parser.add_argument("--bazel-rounds", type=int, default=3, help="0: skip the Bazel case")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "bench")
    return parser.parse_args(argv)


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def compile_torchpack() -> None:
    """Both contenders run from compiled bytecode, as installed packages do: pip compiles
    torch's modules when it installs the wheel, and Python writes bytecode beside a package on
    its first import. torchpack here is an editable install, and a shell with
    ``PYTHONDONTWRITEBYTECODE`` set would recompile all of it in every measured process."""
    compileall.compile_dir(REPO_ROOT / "torchpack", quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    compile_torchpack()
    before = machine()
    print(f"torchpack vs torch.package, {args.rounds} rounds: {', '.join(args.cases)}")
    results: dict[str, CaseResult] = {}
    not_measured: dict[str, str] = {}
    # Archives are written beside the results: the same disk for every contender and the raw
    # write, and no copy of a GiB left behind in /tmp.
    with tempfile.TemporaryDirectory(dir=args.out, prefix="work-") as folder:
        for name in args.cases:
            case_folder = Path(folder) / name.replace(" ", "-")
            case_folder.mkdir()
            outcome = CASES[name].run(case_folder, args)
            if isinstance(outcome, str):
                not_measured[name] = outcome
            else:
                results[name] = outcome
    targets = [target for name, result in results.items() for target in CASES[name].targets(result)]

    for name, result in results.items():
        print(f"{name} (medians):")
        for arm, medians in result.to_json()["medians"].items():
            shown = ", ".join(f"{k}={v:.3f}" for k, v in medians.items() if v is not None)
            print(f"  {arm}: {shown}")
    print("targets:")
    for target in targets:
        print(target.line())
    for name, reason in not_measured.items():
        print(f"not measured: {name}: {reason}")

    settings = {
        key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
    }
    summary = {
        "settings": settings,
        "machine_before": before,
        "machine_after": machine(),
        "cases": {name: result.to_json() for name, result in results.items()},
        "targets": [target.to_json() for target in targets],
        "not_measured": not_measured,
    }
    json_path = args.out / "results.json"
    json_path.write_text(json.dumps(summary, indent=2, allow_nan=False, default=str) + "\n")
    chart_path = args.out / "results.png"
    seconds = {name: CASES[name].seconds(result) for name, result in results.items()}
    draw_chart(chart_path, seconds, targets)
    print(f"results: {json_path}\nchart: {chart_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
