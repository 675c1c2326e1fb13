"""The conformance tests (tests/conformance/, written against torch.package) pass with
torch.package swapped for torchpack, the way a user switching would swap it."""

import os
import re
import subprocess
import sys

from conftest import REPO_ROOT

CONFORMANCE = REPO_ROOT / "tests" / "conformance"


def test_conformance_suite_passes_with_torch_package_swapped_for_torchpack(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "swap_torch_package",
            "-q",
            "-p",
            "no:cacheprovider",
            # Its own temporary folder: pytest's default one is shared by every pytest run of
            # the user, and clearing other runs' old folders there can fail (deeply nested
            # corpora) after every test passed.
            "--basetemp",
            str(tmp_path / "conformance"),
            str(CONFORMANCE),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(CONFORMANCE), str(REPO_ROOT)]),
            "CONFORMANCE_IMPLEMENTATION": "torchpack",
        },
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 15, summary
    assert "skipped" not in summary and "failed" not in summary, summary
