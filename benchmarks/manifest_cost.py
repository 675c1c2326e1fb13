"""What the integrity manifest costs: export and load of a ~1 GiB model, with and without it.

Every measurement runs in a fresh process (so no run inherits another's page cache state or
allocator), and the variants alternate round by round so that a noisy neighbour slows them
alike. Prints the median time of each variant and its ratio to the baseline.

    .venv/bin/python benchmarks/manifest_cost.py [--gib 1.0] [--rounds 3] [--folder DIR]

Variants: ``export`` (torchpack as shipped: sha256 of every record, storages hashed in a
worker thread while they are written), ``export-no-manifest`` (``integrity_manifest=False``),
``export-torch.package`` (the reference); ``load-verify`` (default: every record checked
against its sha256) and ``load-no-verify`` (``verify=False``: only small records' CRCs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys, time, torch
gib, variant, path = float(sys.argv[1]), sys.argv[2], sys.argv[3]
layers = 8
numel = int(gib * (1 << 30) / 4 / layers)
torch.manual_seed(0)
model = {f"layer{i}.weight": torch.rand(numel) for i in range(layers)}
if variant.startswith("load"):
    from torchpack import PackageImporter
    start = time.perf_counter()
    loaded = PackageImporter(path, verify=variant == "load-verify").load_pickle("m", "model.pkl")
    elapsed = time.perf_counter() - start
    assert all(torch.equal(loaded[k], model[k]) for k in model)
    print(elapsed)
    sys.exit()
if variant == "export-torch.package":
    from torch.package import PackageExporter
    path = str(path)
else:
    from torchpack import PackageExporter
start = time.perf_counter()
options = {"integrity_manifest": False} if variant == "export-no-manifest" else {}
with PackageExporter(path, **options) as exporter:
    exporter.save_pickle("m", "model.pkl", model)
print(time.perf_counter() - start)
"""


def run(variant: str, gib: float, path: Path) -> float:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(gib), variant, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    export_variants = ["export", "export-no-manifest", "export-torch.package"]
    load_variants = ["load-verify", "load-no-verify"]
    times: dict[str, list[float]] = {v: [] for v in export_variants + load_variants}
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        path = Path(folder) / "model.pt"
        for round_number in range(args.rounds):
            for variant in export_variants:
                times[variant].append(run(variant, args.gib, path))
                path.unlink()
            run("export", args.gib, path)  # the archive the load variants read
            for variant in load_variants:
                times[variant].append(run(variant, args.gib, path))
            path.unlink()
            print(
                f"round {round_number + 1}: "
                + ", ".join(f"{v} {t[-1]:.2f}s" for v, t in times.items()),
                flush=True,
            )
    median = {v: statistics.median(t) for v, t in times.items()}
    print(f"\nmedians over {args.rounds} rounds, {args.gib} GiB of float32 tensors:")
    for variant, baseline in [
        ("export", "export-no-manifest"),
        ("export", "export-torch.package"),
        ("load-verify", "load-no-verify"),
    ]:
        ratio = median[variant] / median[baseline]
        print(
            f"  {variant:12} {median[variant]:6.2f}s  vs {baseline:21} "
            f"{median[baseline]:6.2f}s  ratio {ratio:.2f}"
        )


if __name__ == "__main__":
    main()
