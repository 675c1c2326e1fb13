"""The ``torchpack`` command line: ``python -m torchpack COMMAND ...`` or ``torchpack COMMAND``.

Each command lives in ``torchpack/cli/<command>.py`` and provides ``add_arguments(parser)`` and
``run(args) -> int``. Command modules are imported only when their command runs, so commands that
only read archives never pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import ArchiveError

# command name -> (module under torchpack.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("build", "run an entry function and package the objects it returns"),
    "inspect": ("inspect", "show a package's files, modules, pickles and tensors (runs nothing)"),
    "audit": ("audit", "list the globals pickles name and the code that runs on import"),
    "verify": ("verify", "check every record against the package's integrity manifest"),
    "why": ("why", "show the chain of imports that pulled a module into a package"),
    "diff": ("diff", "list modules, resources and tensors added, removed or changed"),
}


def _build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchpack",
        description="Build, inspect and check torch.package-compatible model archives.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in sorted(COMMANDS.items()):
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(f"torchpack.cli.{module_name}")
            module.add_arguments(subparser)
            subparser.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in arguments if not arg.startswith("-")), None)
    args = _build_parser(command if command in COMMANDS else None).parse_args(arguments)
    args.command_line = arguments
    try:
        return args.run(args)
    except ArchiveError as err:
        print(f"torchpack {command}: {err}", file=sys.stderr)
        return 2
