"""The Bazel build of the example package: cold, no-op, and after a one-file edit.

Builds run in a copy of the checkout's tracked files, so the checkout is never edited and its
own Bazel output is left alone; the copy's output base is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

from ..report import Target
from ..runner import REPO_ROOT, CaseResult

NAME = "bazel build"
TARGET = "//examples/models:resnet_pkg"
EDITED_FILE = "examples/models/resnet.py"


def run(work: Path, settings: argparse.Namespace) -> CaseResult | str:
    if not settings.bazel_rounds:
        return "skipped (--bazel-rounds 0)"
    return _not_measurable() or _measure(work, settings.bazel_rounds)


def targets(result: CaseResult) -> list[Target]:
    """None: the Bazel build is reported, not judged (there is no peer to compare with)."""
    return []


def seconds(result: CaseResult) -> dict[str, float | None]:
    return {arm: result.median(arm, "seconds") for arm in result.runs}


def _not_measurable() -> str | None:
    """Why the Bazel case cannot run here, or None if it can."""
    package = TARGET[2:].split(":")[0]
    build_files = [REPO_ROOT / package / name for name in ("BUILD", "BUILD.bazel")]
    if not any(f.is_file() and 'name = "resnet_pkg"' in f.read_text() for f in build_files):
        return f"{TARGET} does not exist in this checkout (the Bazel rules have not landed)"
    if shutil.which("bazel") is None:
        return "no bazel on PATH"
    return None


def _measure(work: Path, rounds: int) -> CaseResult:
    workspace = work / "workspace"
    _copy_tracked_files(workspace)
    edited = workspace / EDITED_FILE
    original = edited.read_bytes()
    result = CaseResult({"cold": [], "no-op": [], "after a one-file edit": []})
    try:
        print(f"bazel: first build of {TARGET} (fetches and sets up; not measured)")
        _build(workspace)
        for round_number in range(1, rounds + 1):
            _bazel(workspace, "clean")
            result.runs["cold"].append({"seconds": _build(workspace)})
            result.runs["no-op"].append({"seconds": _build(workspace)})
            edited.write_bytes(original + f"\n# benchmark edit {round_number}\n".encode())
            result.runs["after a one-file edit"].append({"seconds": _build(workspace)})
            shown = ", ".join(f"{k}={v[-1]['seconds']:.2f}s" for k, v in result.runs.items())
            print(f"  round {round_number}/{rounds} bazel: {shown}")
    finally:
        _bazel(workspace, "clean", "--expunge", check=False)
        _bazel(workspace, "shutdown", check=False)
    return result


def _copy_tracked_files(destination: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout
    # Plus this machine's untracked Bazel settings (user.bazelrc, which .bazelrc imports).
    local_settings = [p.name for p in REPO_ROOT.glob("*.bazelrc")]
    for name in [*filter(None, listed.decode().split("\0")), *local_settings]:
        source = REPO_ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _build(workspace: Path) -> float:
    start = time.perf_counter()
    _bazel(workspace, "build", TARGET)
    return time.perf_counter() - start


def _bazel(workspace: Path, *args: str, check: bool = True) -> None:
    # The rules' interpreter: this checkout's, with torch (the copy has no .venv of its own).
    env = dict(os.environ, TORCHPACK_PYTHON=str(REPO_ROOT / ".venv" / "bin" / "python"))
    result = subprocess.run(
        ["bazel", *args], cwd=workspace, env=env, capture_output=True, text=True, timeout=3600
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"bazel {' '.join(args)} failed:\n{result.stderr[-4000:]}")
