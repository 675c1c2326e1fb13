"""Export time of the real-library models, torchpack against torch.package.

    .venv/bin/python -m bench.models_export [--rounds N] [CASE ...]

Each export runs in a fresh process (the library imported and the model built before the
clock starts), the two exporters alternating; prints the median seconds of each and the ratio
torch.package / torchpack. Cases are those of ``examples/real_libraries.py`` whose library
is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from examples.real_libraries import CASES

from .runner import REPO_ROOT

_CHILD = """
import sys
from examples.real_libraries import export

exporter = None
if sys.argv[2] == "torch.package":
    from torch.package import PackageExporter as exporter
print(export(sys.argv[1], sys.argv[3], exporter))
"""


def export_seconds(case: str, exporter: str, folder: Path) -> float | None:
    """One export of ``case`` by ``exporter`` in a fresh process; None if it failed."""
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, case, exporter, str(folder / f"{case}.pt")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        print(f"  {exporter} failed on {case}: {result.stderr.strip().splitlines()[-1:]}")
        return None
    return float(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.models_export", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("cases", nargs="*", default=[])
    args = parser.parse_args(argv)
    installed = [
        case for case in CASES if importlib.util.find_spec(CASES[case].library) is not None
    ]
    print(f"{'case':24} {'torchpack':>10} {'torch.package':>14} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for case in args.cases or installed:
            times: dict[str, list[float]] = {"torchpack": [], "torch.package": []}
            for round_index in range(args.rounds):
                order = ["torchpack", "torch.package"]
                for exporter in order if round_index % 2 == 0 else order[::-1]:
                    seconds = export_seconds(case, exporter, folder)
                    if seconds is not None:
                        times[exporter].append(seconds)
            ours, theirs = (
                statistics.median(times[name]) if times[name] else None
                for name in ("torchpack", "torch.package")
            )
            ratio = f"{theirs / ours:6.1f}x" if ours and theirs else "    n/a"
            shown = [f"{value:.2f} s" if value else "failed" for value in (ours, theirs)]
            print(f"{case:24} {shown[0]:>10} {shown[1]:>14} {ratio:>7}", flush=True)


if __name__ == "__main__":
    main()
