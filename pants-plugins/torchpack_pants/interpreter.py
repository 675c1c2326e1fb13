"""The interpreter that runs torchpack's processes: the user's Python with torch, not Pants' own.

Pants 2.17 runs on Python 3.7-3.9; torch (and torchpack) need the workspace's own interpreter.
Processes reach it through Pants' `jdk_home` link: the engine links `.jdk` in every sandbox to a
folder on the machine and puts only the link's name, never the folder, in the cache key. The
interpreter's folder is linked there, so that two checkouts at different paths, each with its
own `.venv`, share every analysis and link through one cache. What the interpreter *is* stays in
the keys: analyses take its version, links and tests its fingerprint (its version and every
installed distribution), so no cache serves an archive built against another torch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from pants.base.build_root import BuildRoot
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, collect_rules, rule
from pants.option.option_types import SkipOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.logging import LogLevel

# Where Pants links `jdk_home` in every sandbox.
_LINK = ".jdk"

# Printed by the interpreter itself: its path (pyenv's `python3` on PATH is a shim script that
# needs the user's environment; a virtual environment's own path is kept, since it is what
# selects the environment), its version, whether it can import torch, and the sorted
# distributions it can import (the fingerprint is the version and the distributions).
_PROBE = """
import importlib.metadata, importlib.util, platform, sys
print(sys.executable)
print(platform.python_implementation(), platform.python_version())
print("torch" if importlib.util.find_spec("torch") else "no torch")
names = sorted({(d.metadata["Name"] or "?").lower() + "==" + d.version
                for d in importlib.metadata.distributions()})
print("\\n".join(names))
"""


# What a shim (pyenv's) needs to find the interpreter it stands for: given to the probe only,
# which runs every time; the cached processes run the interpreter the probe names.
_SHIM_ENVIRONMENT = ("PATH", "HOME", "PYENV_ROOT")


class TorchpackSubsystem(Subsystem):
    options_scope = "torchpack"
    name = "torchpack"
    help = "torchpack's Pants backend: `torch_package` and `torch_package_test` targets."

    python = StrOption(
        default="",
        help=(
            "The interpreter that runs torchpack (it must have torch installed): absolute, or "
            "relative to the build root (`tools/py/.venv/bin/python`). Empty means the build "
            "root's `.venv/bin/python`. The environment variable `TORCHPACK_PYTHON` (absolute) "
            "wins over it, as with torchpack's Bazel rules."
        ),
    )
    skip = SkipOption("test")


class TorchpackPythonError(Exception):
    """The interpreter is missing or cannot run torchpack."""


@dataclass(frozen=True)
class TorchpackPython:
    """The chosen interpreter, as processes run it."""

    path: str  # absolute: the interpreter's own `sys.executable`
    version: str
    fingerprint_sha256: str

    @property
    def _home(self) -> str:
        return os.path.dirname(os.path.dirname(self.path))

    @property
    def executable(self) -> str:
        """argv[0] of a process: the interpreter through the sandbox's link."""
        relative = os.path.relpath(self.path, self._home)
        return f"{_LINK}/{relative}"

    def process(
        self,
        argv: tuple[str, ...],
        *,
        env: dict[str, str],
        key_on_distributions: bool,
        **kwargs: object,
    ) -> Process:
        """A `Process` running `executable argv...`, its key naming the interpreter, not its path.

        `key_on_distributions`: key on the whole fingerprint (a process that imports torch)
        rather than on the Python version alone (the torch-free analysis).
        """
        # Read by no one: they put what the interpreter is into the cache key.
        identity = (
            {"TORCHPACK_PYTHON_FINGERPRINT": self.fingerprint_sha256}
            if key_on_distributions
            else {"TORCHPACK_PYTHON_VERSION": self.version}
        )
        return Process(
            (self.executable, *argv),
            env={**env, **identity},
            jdk_home=self._home,
            **kwargs,  # type: ignore[arg-type]
        )


def chosen_interpreter(from_environment: str, from_option: str, build_root: str) -> tuple[str, str]:
    """`(absolute path, where the choice came from)`, first found first."""
    if from_environment:
        return from_environment, "$TORCHPACK_PYTHON"
    if from_option:
        return os.path.join(build_root, from_option), "the `[torchpack].python` option"
    return os.path.join(build_root, ".venv", "bin", "python"), "the build root's .venv"


@rule(desc="Describe torchpack's Python interpreter", level=LogLevel.DEBUG)
async def find_torchpack_python(
    subsystem: TorchpackSubsystem, build_root: BuildRoot
) -> TorchpackPython:
    environment = await Get(
        EnvironmentVars, EnvironmentVarsRequest(["TORCHPACK_PYTHON", *_SHIM_ENVIRONMENT])
    )
    path, origin = chosen_interpreter(
        environment.get("TORCHPACK_PYTHON", ""), subsystem.python, build_root.path
    )
    if not os.path.isabs(path) or not os.path.exists(path):
        raise TorchpackPythonError(
            f"torchpack: no Python interpreter at {path} ({origin}). Create a virtual "
            "environment with torch there, set `python` in the `[torchpack]` section of "
            "pants.toml, or set TORCHPACK_PYTHON to the absolute path of a Python that has torch "
            "installed."
        )
    result = await Get(
        FallibleProcessResult,
        Process(
            (path, "-c", _PROBE),
            env={name: environment[name] for name in _SHIM_ENVIRONMENT if name in environment},
            description=f"Describe torchpack's interpreter {path}",
            level=LogLevel.DEBUG,
            # Pants cannot watch an interpreter outside the workspace: ask it again every run
            # (with pantsd, once per pantsd), as Pants does for the interpreters it finds.
            cache_scope=ProcessCacheScope.PER_RESTART_SUCCESSFUL,
        ),
    )
    if result.exit_code != 0:
        raise TorchpackPythonError(
            f"torchpack: {path} ({origin}) failed to describe itself:\n"
            f"{result.stderr.decode(errors='replace')}"
        )
    executable, version, torch, *distributions = result.stdout.decode().splitlines()
    if torch != "torch":
        raise TorchpackPythonError(
            f"torchpack: {path} ({origin}) cannot import torch. Install torch into it, or choose "
            "another interpreter (`[torchpack].python` in pants.toml, or TORCHPACK_PYTHON)."
        )
    fingerprint = "\n".join([version, *distributions]) + "\n"
    return TorchpackPython(executable, version, hashlib.sha256(fingerprint.encode()).hexdigest())


def rules() -> list:
    return collect_rules()
