"""The ``torchpack`` command line: ``python -m torchpack COMMAND ...`` or ``torchpack COMMAND``.

Each command lives in ``torchpack/cli/<command>.py`` and provides ``add_arguments(parser)`` and
``run(args) -> int``. Command modules are imported only when their command runs, so commands that
only read archives never pay for importing torch.
"""

from __future__ import annotations

import importlib
import io
import os
import select
import signal
import sys

# Only what the restart under a fixed hash seed needs is imported up front (see _run).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

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
    import argparse

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


def program() -> int:
    """The ``torchpack`` program (``python -m torchpack``, the console script): :func:`main` on
    the process's arguments, in a process that then ends."""
    status = main()
    from .collector import before_exit

    before_exit()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    try:
        try:
            return _run(argv)
        finally:
            # Written out here rather than at exit, so that a reader gone early is seen below.
            sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_is_closed():
            raise  # a pipe of the command's own (build runs user code), not its output
        return _end_quietly()


def _run(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in arguments if not arg.startswith("-")), None)
    if command == "build" and os.environ.get("PYTHONHASHSEED") != "0":
        # Whatever iterates a set while building (torch.jit orders a module's constants that
        # way) must see the same order every time: build under a fixed hash seed. In place of
        # this process (same pid, nothing to wait for or forward), before importing the build.
        command_line = [sys.executable, "-m", "torchpack", *arguments]
        os.execve(sys.executable, command_line, dict(os.environ, PYTHONHASHSEED="0"))
    from ..errors import ArchiveError

    args = _build_parser(command if command in COMMANDS else None).parse_args(arguments)
    try:
        return args.run(args)
    except ArchiveError as err:
        print(f"torchpack {command}: {err}", file=sys.stderr)
        return 2


def _stdout_is_closed() -> bool:
    """Whether standard output is a pipe (or socket) whose reader has gone."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False  # replaced by an object in memory: it has no reader to lose
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _end_quietly() -> int:
    """As Unix tools end when the reader of their output stops (``torchpack diff A B | head``):
    no traceback, and the status a shell reports for a process ended by SIGPIPE."""
    # Output still buffered would fail again when Python flushes at exit: let it go nowhere.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE
