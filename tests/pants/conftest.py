"""Real Pants runs in throw-away workspaces outside the checkout, offline.

Pants 2.17.1 runs from `.venv-pants` (scripts/setup_pants.sh installs it, with the settings
that make it work offline in `.venv-pants/offline.toml`). Every run is without pantsd, so no
server outlives it, and runs in a new network namespace (`unshare --net`), whose one device,
loopback, is down: nothing can be downloaded, so a passing run proves that the workspace's
settings suffice offline. Pants' caches (`local_store_dir`, `named_caches_dir`) live in the
session's temporary folder, shared by every workspace like a CI machine's cache. The processes
of each run are read from Pants' own workunit log (its `workunit_logger` backend): each
process's description and whether it ran or came from the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bazel.conftest import copy_workspace
from conftest import REPO_ROOT

PANTS_VENV = REPO_ROOT / ".venv-pants"
PANTS = PANTS_VENV / "bin" / "pants"
OFFLINE_SETTINGS = PANTS_VENV / "offline.toml"
PANTS_TIMEOUT = 900
# What the plugin reads from a torchpack checkout: its source, the backend, the analyzer list.
TORCHPACK_FILES = ["BUILD.bazel"]
TORCHPACK_FOLDERS = ["torchpack", "pants-plugins"]


@dataclass(frozen=True)
class PantsProcess:
    """One process Pants ran or took from its cache, from the workunit log."""

    description: str
    source: str  # "Ran", "HitLocally", "HitRemotely", "Memoized"


@dataclass
class PantsRun:
    returncode: int
    stdout: str
    stderr: str
    processes: list[PantsProcess]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def ran(self) -> list[str]:
        """Descriptions of the processes that really ran (not served by a cache)."""
        return sorted(p.description for p in self.processes if p.source == "Ran")


def read_workunit_log(folder: Path) -> list[PantsProcess]:
    """The `process` workunits of the one run whose log `folder` holds."""
    (log,) = folder.glob("*.json")
    processes = []
    for workunit in json.loads(log.read_text(encoding="utf-8")):
        metadata = workunit.get("metadata") or {}
        if workunit["name"] == "process" and "source" in metadata:
            description = workunit["description"].removeprefix("Scheduling: ")
            processes.append(PantsProcess(description, metadata["source"]))
    return processes


@dataclass
class PantsWorkspace:
    """A workspace and the caches it shares with the session's other workspaces."""

    root: Path
    caches: Path
    torchpack_python: str | None = None  # $TORCHPACK_PYTHON, unset if None
    logs: list[Path] = field(default_factory=list)
    built: PantsRun | None = None  # the first run, for tests that compare with it

    def pants(self, *args: str, check: bool = True) -> PantsRun:
        log_folder = self.root.parent / f"{self.root.name}-workunits-{len(self.logs)}"
        log_folder.mkdir()
        self.logs.append(log_folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PANTS_")}
        env.pop("TORCHPACK_PYTHON", None)
        if self.torchpack_python is not None:
            env["TORCHPACK_PYTHON"] = self.torchpack_python
        env.update(
            PANTS_PANTSD="false",
            PANTS_DYNAMIC_UI="false",
            PANTS_LOCAL_STORE_DIR=str(self.caches / "lmdb_store"),
            PANTS_NAMED_CACHES_DIR=str(self.caches / "named_caches"),
            PANTS_BACKEND_PACKAGES="+['pants.backend.experimental.tools.workunit_logger']",
            PANTS_WORKUNIT_LOGGER_ENABLED="true",
            PANTS_WORKUNIT_LOGGER_LOGDIR=str(log_folder),
        )
        command = ["unshare", "--net", "--", str(PANTS), *args]
        result = subprocess.run(
            command, cwd=self.root, env=env, capture_output=True, text=True, timeout=PANTS_TIMEOUT
        )
        if check:
            assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-8000:]}"
        return PantsRun(
            result.returncode, result.stdout, result.stderr, read_workunit_log(log_folder)
        )


def copy_torchpack(destination: Path) -> Path:
    """The parts of this checkout that a workspace adopting the Pants backend points at."""
    return copy_workspace(destination, TORCHPACK_FILES, TORCHPACK_FOLDERS)


@pytest.fixture(scope="session")
def pants_workspaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """``make(name, populate)``: a workspace that ``populate(folder)`` writes, at its own path."""
    if not (PANTS.exists() and OFFLINE_SETTINGS.exists()):
        pytest.fail("Pants is not installed: run `bash scripts/setup.sh` (scripts/setup_pants.sh)")
    probe = subprocess.run(["unshare", "--net", "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"cannot run Pants without a network (`unshare --net`): {probe.stderr}")
    base = tmp_path_factory.mktemp("pants")

    def make(name: str, populate: Callable[[Path], object]) -> PantsWorkspace:
        populate(base / name)
        return PantsWorkspace(base / name, base / "caches")

    yield make
    # Without pantsd, no Pants process may outlive its run.
    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and _runs_in(pid, base)]
    assert not left, f"processes left running in {base}: {left}"


def _runs_in(pid: str, folder: Path) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/cwd").startswith(str(folder))
    except OSError:  # gone, or not ours to look at
        return False
