"""Smoke test of the benchmark harness with tiny sizes: every case runs, and every target is
reported with its status.

No timings are checked here; speed targets live in the benchmark's own output.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT

from bench.report import compare
from bench.runner import CaseResult


def test_bench_runs_and_writes_results_and_chart(tmp_path):
    out = tmp_path / "bench"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--rounds",
            "2",
            "--size-mib",
            "1",
            "--deps",
            "bench",
            "--modules",
            "40",
            "--library-rounds",
            "1",
            "--scan-mib",
            "0.5",
            "--bazel-rounds",
            "0",
            "--out",
            str(out),
        ],  # fmt: skip
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    results = json.loads((out / "results.json").read_text())
    cases = results["cases"]
    assert set(cases["export"]["runs"]) == {
        "torch.package", "torchpack", "torchpack without manifest", "raw write",
    }  # fmt: skip
    assert set(cases["load"]["runs"]) == {
        "torch.package", "torchpack", "torchpack verify=False", "torchpack mmap", "safetensors",
        "raw read",
    }  # fmt: skip
    assert set(cases["small modules"]["runs"]) == {
        "torch.package", "torchpack", "torchpack, no __pycache__", "torch.package script",
        "torchpack build, empty cache", "torchpack build, warm cache",
    }  # fmt: skip
    assert set(cases["real library"]["runs"]) == {"torch.package", "torchpack"}
    assert set(cases["resolve"]["runs"]) == {"torch.package", "torchpack", "torchpack warm cache"}
    assert set(cases["safe pre-scan"]["runs"]) == {"unpickle", "scan", "safe load"}
    # Two rounds of each contender, one of the library export (--library-rounds 1).
    for name, case in cases.items():
        rounds = 1 if name == "real library" else 2
        assert all(len(runs) == rounds for runs in case["runs"].values()), name
    export = cases["export"]["medians"]["torchpack"]
    assert export["seconds"] > 0 and 0.9 < export["model_mib"] < 1.1
    assert export["peak_above_model_mib"] is not None
    mapped = cases["load"]["medians"]["torchpack mmap"]
    assert 0 < mapped["second_forward_seconds"] < mapped["first_forward_seconds"]
    # The generated library: 40 modules, every one interned (torch.package agrees).
    small = cases["small modules"]["medians"]
    assert small["torchpack"]["modules"] == small["torch.package"]["modules"] >= 30
    assert 0.3 < cases["safe pre-scan"]["medians"]["scan"]["pickle_mib"] < 0.7
    assert results["not_measured"] == {"bazel build": "skipped (--bazel-rounds 0)"}

    statuses = {target["name"]: target["status"] for target in results["targets"]}
    assert len(statuses) == 20
    assert set(statuses.values()) <= {"met", "MISSED", "reported"}
    for name, status in statuses.items():
        assert f"{name}: " in result.stdout and status in result.stdout
    assert "not measured: bazel build: skipped (--bazel-rounds 0)" in result.stdout
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith("work-")], "archives left behind"


def test_comparisons_pair_runs_of_the_same_round():
    # A host that slows down tenfold in round 2 for both contenders: paired, torchpack takes
    # half torch.package's time in most rounds; the ratio of medians would say 1.5x.
    result = CaseResult(
        {
            "torchpack": [{"seconds": 1.0}, {"seconds": 10.0}, {"seconds": 3.0}],
            "torch.package": [{"seconds": 2.0}, {"seconds": 20.0}, {"seconds": 1.0}],
        }
    )
    target = compare("export", result, "torchpack", "torch.package", 1.0)
    assert target.value == 0.5
    assert target.medians_ratio == 1.5
    assert target.status == "met"
    assert target.line() == "  export: 0.500x (target <= 1x; of medians 1.500x) met"
