"""Runs measurements in fresh processes, alternating the contenders round by round."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
# The contenders' names in every case.
TORCHPACK = "torchpack"
TORCH_PACKAGE = "torch.package"


@dataclass
class Arm:
    """One contender in a case: a child job run once per round."""

    name: str
    job: dict[str, Any]


@dataclass
class CaseResult:
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def median(self, arm: str, value: str) -> float | None:
        values = [run[value] for run in self.runs.get(arm, []) if run.get(value) is not None]
        return statistics.median(values) if values else None

    def paired_ratio(
        self, arm: str, peer: str, value: str, peer_value: str | None = None
    ) -> float | None:
        """The median over rounds of ``arm``'s value over ``peer``'s in the same round.

        The runs of one round follow one another, and a contender's own runs are a round
        apart: on a host whose speed drifts (this VM's at backing fresh memory swings
        several-fold within a minute), a ratio of two medians can set one contender's fast
        round against the other's slow one, and pairing within rounds cancels most of the drift.
        """
        pairs = [
            mine[value] / theirs[peer_value or value]
            for mine, theirs in zip(self.runs.get(arm, []), self.runs.get(peer, []), strict=True)
            if mine.get(value) is not None and theirs.get(peer_value or value)
        ]
        return statistics.median(pairs) if pairs else None

    def to_json(self) -> dict[str, Any]:
        medians: dict[str, dict[str, float]] = {}
        for arm, runs in self.runs.items():
            numeric = {k for run in runs for k, v in run.items() if isinstance(v, int | float)}
            medians[arm] = {k: self.median(arm, k) for k in sorted(numeric)}
        return {"runs": self.runs, "medians": medians}


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in a new interpreter and return what it measured."""
    python_path = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(python_path))
    result = subprocess.run(
        [sys.executable, "-m", "bench.child", json.dumps(job)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"benchmark job {job} failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def alternate(arms: list[Arm], rounds: int) -> CaseResult:
    """A B C, B C A, C A B ...: every arm once per round, each run in a fresh process.

    The order rotates so that no arm always runs right after the same other one (a write
    leaves dirty pages and page cache behind for whoever comes next).
    """
    result = CaseResult({arm.name: [] for arm in arms})
    for round_number in range(1, rounds + 1):
        shift = (round_number - 1) % len(arms)
        for arm in arms[shift:] + arms[:shift]:
            measured = run_child(arm.job)
            result.runs[arm.name].append(measured)
            shown = ", ".join(f"{k}={_short(v)}" for k, v in measured.items())
            print(f"  round {round_number}/{rounds} {arm.name}: {shown}")
    return result


def _short(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
