"""Side-by-side benchmarks of torchpack and torch.package: ``python -m bench`` (see README).

Every measurement runs in a fresh process; the contenders alternate round by round and the
summary shows medians, the ratio torchpack / torch.package, and the raw disk limit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .bazel_case import bazel_case, not_measurable
from .child import SCAN_RECORD
from .model import token_table, weight_bytes, width_for
from .report import Target, draw_chart, ratio
from .runner import REPO_ROOT, Arm, CaseResult, alternate

TORCHPACK = "torchpack"
TORCH_PACKAGE = "torch.package"
# torch.package's import scanner recurses and fails on this generated module; both exporters
# mock it so that they package the same tree.
UNSCANNABLE_BY_TORCH_PACKAGE = ["sympy.polys.numberfields.resolvent_lookup"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--size-mib", type=float, default=1024, help="model size (1 GiB)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each contender")
    parser.add_argument("--deps", nargs="+", default=["sympy", "mpmath"], help="packages to intern")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "bench")
    parser.add_argument("--bazel-rounds", type=int, default=3, help="0: skip the Bazel case")
    parser.add_argument("--scan-mib", type=float, default=24, help="pickle of the scan case")
    return parser.parse_args(argv)


def export_case(work: Path, width: int, rounds: int) -> CaseResult:
    print("export (and the raw write of as many bytes):")
    arms = [
        Arm(
            TORCH_PACKAGE,
            {
                "kind": "export",
                "impl": TORCH_PACKAGE,
                "path": str(work / "theirs.pt"),
                "width": width,
            },
        ),
        Arm(
            TORCHPACK,
            {"kind": "export", "impl": TORCHPACK, "path": str(work / "ours.pt"), "width": width},
        ),
        # The integrity manifest's sha256 pass, which torch.package does not make, left out.
        Arm(
            f"{TORCHPACK} without manifest",
            {
                "kind": "export",
                "impl": TORCHPACK,
                "path": str(work / "ours-no-manifest.pt"),
                "width": width,
                "manifest": False,
            },
        ),
    ]
    raw_job = {"kind": "raw_write", "path": str(work / "raw.bin"), "nbytes": weight_bytes(width)}
    return alternate([*arms, Arm("raw", raw_job)], rounds)


def load_case(work: Path, width: int, rounds: int) -> CaseResult:
    print("load of the same archive (written by torchpack), then a first forward pass:")
    archive = str(work / "ours.pt")
    job = {"kind": "load", "path": archive, "width": width}
    arms = [
        Arm(TORCH_PACKAGE, {**job, "impl": TORCH_PACKAGE, "mmap": False}),
        Arm(TORCHPACK, {**job, "impl": TORCHPACK, "mmap": False}),
        # Without checking the storages against the manifest, as torch.package never does.
        Arm(
            f"{TORCHPACK} verify=False", {**job, "impl": TORCHPACK, "mmap": False, "verify": False}
        ),
        Arm(f"{TORCHPACK} mmap", {**job, "impl": TORCHPACK, "mmap": True}),
        Arm("raw", {"kind": "raw_read", "path": archive}),
    ]
    return alternate(arms, rounds)


def resolve_case(work: Path, modules: list[str], rounds: int) -> CaseResult:
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
        Arm(f"{TORCHPACK} warm cache", warm),
    ]
    return alternate(arms, rounds)


def scan_case(work: Path, size_mib: float, rounds: int) -> CaseResult:
    print(f"safe=True pre-scan of a {size_mib:g} MiB pickle, against unpickling it:")
    from torchpack import PackageExporter

    archive = work / "tokens.pt"
    with PackageExporter(archive) as exporter:
        exporter.save_pickle(*SCAN_RECORD.split("/"), token_table(size_mib))
    job = {"kind": "scan", "path": str(archive)}
    arms = [Arm(mode, {**job, "mode": mode}) for mode in ("unpickle", "scan", "safe load")]
    return alternate(arms, rounds)


def targets_of(cases: dict[str, CaseResult]) -> list[Target]:
    export, load, resolve, scan = (cases[name] for name in ("export", "load", "resolve", "scan"))
    theirs_first = load.median(TORCH_PACKAGE, "first_forward_seconds")
    # Each time target is judged as shipped (with the integrity manifest, verifying loads)
    # and doing the same work as torch.package (no sha256 pass).
    targets = []
    for variant in (TORCHPACK, f"{TORCHPACK} without manifest"):
        ours_export = export.median(variant, "seconds")
        targets += [
            Target(
                f"export time, {variant} / torch.package",
                ratio(ours_export, export.median(TORCH_PACKAGE, "seconds")),
                1.0,
                "x",
            ),
            Target(
                f"export time, {variant} / raw write",
                ratio(ours_export, export.median("raw", "seconds")),
                1.25,
                "x",
            ),
        ]
    theirs_load = load.median(TORCH_PACKAGE, "load_seconds")
    targets += [
        Target(
            "export peak memory above the model, torchpack",
            export.median(TORCHPACK, "peak_above_model_mib"),
            64,
            " MiB",
        ),
        Target(
            "eager load time, torchpack / torch.package",
            ratio(load.median(TORCHPACK, "load_seconds"), theirs_load),
            1.0,
            "x",
        ),
        Target(
            "eager load time, torchpack verify=False / torch.package",
            ratio(load.median(f"{TORCHPACK} verify=False", "load_seconds"), theirs_load),
            1.0,
            "x",
        ),
        Target(
            "mmap time to first forward / torch.package's",
            ratio(load.median(f"{TORCHPACK} mmap", "first_forward_seconds"), theirs_first),
            0.1,
            "x",
        ),
        Target(
            "dependency resolution cold, torchpack / torch.package",
            ratio(resolve.median(TORCHPACK, "seconds"), resolve.median(TORCH_PACKAGE, "seconds")),
            0.5,
            "x",
        ),
        Target(
            "dependency resolution warm cache, torchpack / torch.package",
            ratio(
                resolve.median(f"{TORCHPACK} warm cache", "seconds"),
                resolve.median(TORCH_PACKAGE, "seconds"),
            ),
            0.1,
            "x",
        ),
        Target(
            "safe=True pre-scan / unpickling the same pickle",
            ratio(scan.median("scan", "seconds"), scan.median("unpickle", "seconds")),
            1.5,
            "x",
        ),
    ]
    return targets


def print_medians(name: str, case: CaseResult) -> None:
    print(f"{name} (medians):")
    for arm, medians in case.to_json()["medians"].items():
        shown = ", ".join(f"{k}={v:.3f}" for k, v in medians.items() if v is not None)
        print(f"  {arm}: {shown}")


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    width = width_for(args.size_mib)
    before = machine()
    print(f"torchpack vs torch.package, {args.rounds} rounds, model of 16 blocks x {width} wide")
    # Archives are written beside the results: the same disk for both exporters and the raw
    # write, and no copy of a GiB left behind in /tmp.
    with tempfile.TemporaryDirectory(dir=args.out, prefix="work-") as folder:
        work = Path(folder)
        cases = {
            "export": export_case(work, width, args.rounds),
            "load": load_case(work, width, args.rounds),
            "resolve": resolve_case(work, args.deps, args.rounds),
            "scan": scan_case(work, args.scan_mib, args.rounds),
        }
        bazel_reason = not_measurable() if args.bazel_rounds else "skipped (--bazel-rounds 0)"
        if bazel_reason is None:
            cases["bazel"] = bazel_case(work, args.bazel_rounds)
    targets = targets_of(cases)
    not_measured = {}
    if bazel_reason is not None:
        not_measured["Bazel build (cold, no-op, after a one-file edit)"] = bazel_reason

    for name, case in cases.items():
        print_medians(name, case)
    print("targets:")
    for target in targets:
        print(target.line())
    for name, reason in not_measured.items():
        print(f"not measured: {name}: {reason}")

    results = {
        "settings": {
            "size_mib": args.size_mib,
            "width": width,
            "rounds": args.rounds,
            "deps": args.deps,
            "scan_mib": args.scan_mib,
        },
        "machine_before": before,
        "machine_after": machine(),
        "cases": {name: case.to_json() for name, case in cases.items()},
        "targets": [t.to_json() for t in targets],
        "not_measured": not_measured,
    }
    json_path = args.out / "results.json"
    json_path.write_text(json.dumps(results, indent=2, allow_nan=False, default=str) + "\n")
    seconds = {
        "export": {arm: cases["export"].median(arm, "seconds") for arm in cases["export"].runs},
        "load to first forward": {
            arm: cases["load"].median(arm, "first_forward_seconds")
            or cases["load"].median(arm, "seconds")
            for arm in cases["load"].runs
        },
        "dependency resolution": {
            arm: cases["resolve"].median(arm, "seconds") for arm in cases["resolve"].runs
        },
        "safe pre-scan": {arm: cases["scan"].median(arm, "seconds") for arm in cases["scan"].runs},
    }
    if "bazel" in cases:
        seconds["bazel build"] = {
            arm: cases["bazel"].median(arm, "seconds") for arm in cases["bazel"].runs
        }
    chart_path = args.out / "results.png"
    draw_chart(chart_path, seconds, targets)
    print(f"results: {json_path}\nchart: {chart_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
