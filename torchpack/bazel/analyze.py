"""Bazel action: write the import analysis of one Python source file as JSON.

``python -S -m torchpack.bazel.analyze --module NAME [--is-package] --source F --output OUT``
(arguments may come from an ``@params`` file). With ``--persistent_worker`` it serves Bazel's
persistent worker protocol instead (the default proto form, see ``worker_protocol``), so one
interpreter start-up serves every analysis of a build. Must stay torch-free.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from torchpack.analysis.import_scanner import ImportAnalysisError
from torchpack.analysis.module_analysis import analyze_module
from torchpack.bazel.worker_protocol import WorkResponse, read_requests, write_response


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


def serve(requests: BinaryIO, responses: BinaryIO) -> None:
    """The persistent worker loop (singleplex): one WorkResponse per WorkRequest, in order.

    Nothing else may be written to ``responses``: Bazel reads it as protobuf messages.
    """
    for request in read_requests(requests):
        try:
            analyze_file(request.arguments)
            exit_code, output = 0, ""
        except (_ArgumentError, ImportAnalysisError, OSError) as err:
            exit_code, output = 1, str(err)
        write_response(responses, WorkResponse(exit_code, output, request.request_id))


def main(argv: Sequence[str]) -> int:
    if "--persistent_worker" in argv:
        serve(sys.stdin.buffer, sys.stdout.buffer)
        return 0
    try:
        analyze_file(argv)
    except (_ArgumentError, ImportAnalysisError, OSError) as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
