"""Smoke test of the benchmark harness with tiny sizes: it runs, and reports every target.

No timings are checked here; speed targets live in the benchmark's own output.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT


def test_bench_runs_and_writes_results_and_chart(tmp_path):
    out = tmp_path / "bench"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--size-mib",
            "1",
            "--rounds",
            "2",
            "--deps",
            "bench",
            "--bazel-rounds",
            "0",
            "--scan-mib",
            "0.5",
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    results = json.loads((out / "results.json").read_text())
    export, load, resolve = (results["cases"][name] for name in ("export", "load", "resolve"))
    assert set(export["runs"]) == {
        "torch.package",
        "torchpack",
        "torchpack without manifest",
        "raw",
    }
    assert set(load["runs"]) == {
        "torch.package",
        "torchpack",
        "torchpack verify=False",
        "torchpack mmap",
        "raw",
    }
    assert set(resolve["runs"]) == {"torch.package", "torchpack", "torchpack warm cache"}
    scan = results["cases"]["scan"]
    assert set(scan["runs"]) == {"unpickle", "scan", "safe load"}
    assert 0.3 < scan["medians"]["scan"]["pickle_mib"] < 0.7
    for case in (export, load, resolve, scan):
        assert all(len(runs) == 2 for runs in case["runs"].values())
    assert export["medians"]["torchpack"]["seconds"] > 0
    assert 0.9 < export["medians"]["torchpack"]["model_mib"] < 1.1
    assert export["medians"]["torchpack"]["peak_above_model_mib"] is not None
    assert resolve["medians"]["torchpack"]["modules"] >= 1

    statuses = {target["name"]: target["status"] for target in results["targets"]}
    # Export and eager load are judged as shipped and without the sha256 pass.
    assert len(statuses) == 11
    assert set(statuses.values()) <= {"met", "MISSED"}
    for name, status in statuses.items():
        assert f"{name}: " in result.stdout and status in result.stdout
    for name, reason in results["not_measured"].items():
        assert reason and f"not measured: {name}: {reason}" in result.stdout
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith("work-")], "archives left behind"
