"""Bazel action: write the import analysis of one Python source file as JSON.

``python -S -m torchpack.bazel.analyze --module NAME [--is-package] --source F --output OUT``
(arguments may come from an ``@params`` file). With ``--persistent_worker`` it serves Bazel's
JSON worker protocol instead: one WorkRequest per stdin line, one WorkResponse per stdout line,
so one interpreter start-up serves every analysis of a build. Must stay torch-free.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from torchpack.analysis.import_scanner import ImportAnalysisError
from torchpack.analysis.module_analysis import analyze_module


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse would exit the process, which must outlive a bad request as a worker.
        raise _ArgumentError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="torchpack.bazel.analyze", fromfile_prefix_chars="@")
    parser.add_argument("--module", required=True, help="dotted module name of the file")
    parser.add_argument("--is-package", action="store_true", help="the file is an __init__.py")
    parser.add_argument("--source", required=True, help="the .py file")
    parser.add_argument("--output", required=True, help="where to write the JSON analysis")
    return parser


def analyze_file(arguments: Sequence[str]) -> None:
    """Run one analysis; raises ``_ArgumentError``, ``ImportAnalysisError`` or ``OSError``."""
    options = _parser().parse_args(arguments)
    source = Path(options.source).read_bytes()
    analysis = analyze_module(source, options.module, options.is_package, options.source)
    Path(options.output).write_text(analysis.to_json(), encoding="utf-8")


def read_requests(fd: int) -> Iterator[dict]:
    """The WorkRequests read from file descriptor ``fd``: JSON objects one after another.

    Bazel 4 pretty-prints each request over several lines and ends it without a newline, so
    requests are cut out of whatever bytes have arrived, not read line by line.
    """
    decoder = json.JSONDecoder()
    pending = ""
    while chunk := os.read(fd, 1 << 16):
        pending += chunk.decode("utf-8")
        while True:
            pending = pending.lstrip()
            try:
                request, end = decoder.raw_decode(pending)
            except json.JSONDecodeError:
                break  # incomplete: wait for more bytes
            yield request
            pending = pending[end:]


def serve(requests: int, responses: TextIO) -> None:
    """The persistent worker loop (JSON protocol, singleplex) on file descriptor ``requests``."""
    for request in read_requests(requests):
        try:
            analyze_file(request.get("arguments", []))
            exit_code, output = 0, ""
        except (_ArgumentError, ImportAnalysisError, OSError) as err:
            exit_code, output = 1, str(err)
        response = {
            "exitCode": exit_code,
            "output": output,
            "requestId": request.get("requestId", 0),
        }
        responses.write(json.dumps(response) + "\n")
        responses.flush()


def main(argv: Sequence[str]) -> int:
    if "--persistent_worker" in argv:
        serve(sys.stdin.fileno(), sys.stdout)
        return 0
    try:
        analyze_file(argv)
    except (_ArgumentError, ImportAnalysisError, OSError) as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
