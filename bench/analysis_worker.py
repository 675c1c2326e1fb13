"""Is Python start-up the bulk of a per-file analysis action? One-shot processes vs the worker.

Usage: ``python bench/analysis_worker.py [--repeat N]``.

Runs ``python -S -m torchpack.bazel.analyze`` the way Bazel does, over every ``.py`` file of
torchpack and the examples: once as one process per file (what a plain action costs), once as
a single persistent worker fed WorkRequests in Bazel's proto protocol. Prints milliseconds per
file and the ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from torchpack.bazel.worker_protocol import WorkRequest, read_response, write_request

REPO = Path(__file__).resolve().parent.parent


def module_arguments(source: Path, output: Path) -> list[str]:
    parts = list(source.relative_to(REPO).with_suffix("").parts)
    arguments = []
    if parts[-1] == "__init__":
        parts.pop()
        arguments.append("--is-package")
    return [
        *arguments,
        "--module",
        ".".join(parts),
        "--source",
        str(source),
        "--output",
        str(output),
    ]


def one_shot(requests: list[list[str]]) -> float:
    start = time.perf_counter()
    for arguments in requests:
        command = [sys.executable, "-S", "-m", "torchpack.bazel.analyze", *arguments]
        subprocess.run(command, cwd=REPO, check=True)
    return time.perf_counter() - start


def worker(requests: list[list[str]]) -> float:
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-S", "-m", "torchpack.bazel.analyze", "--persistent_worker"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    for request_id, arguments in enumerate(requests, start=1):
        write_request(process.stdin, WorkRequest(arguments, request_id))
        response = read_response(process.stdout)
        assert response is not None and response.exit_code == 0, response
    process.stdin.close()
    process.wait()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is reported")
    args = parser.parse_args()
    sources = sorted((REPO / "torchpack").rglob("*.py")) + sorted((REPO / "examples").rglob("*.py"))
    with tempfile.TemporaryDirectory() as folder:
        requests = [
            module_arguments(source, Path(folder) / f"{index}.json")
            for index, source in enumerate(sources)
        ]
        plain = min(one_shot(requests) for _ in range(args.repeat))
        served = min(worker(requests) for _ in range(args.repeat))
    count = len(requests)
    print(f"{count} files")
    print(f"one process per file: {1000 * plain / count:7.1f} ms/file")
    print(f"persistent worker:    {1000 * served / count:7.1f} ms/file")
    print(f"ratio (one-shot / worker): {plain / served:.1f}x")


if __name__ == "__main__":
    main()
