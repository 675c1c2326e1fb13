"""Targets (met / MISSED / not measured), the printed summary, and the PNG chart."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .runner import CaseResult


@dataclass
class Target:
    """A value a case reports; with a ``limit``, judged met when at or below it.

    A comparison's ``value`` is its paired ratio (see ``CaseResult.paired_ratio``), and
    ``medians_ratio`` the ratio of the two medians, shown beside it.
    """

    name: str
    value: float | None
    limit: float | None
    unit: str
    medians_ratio: float | None = None

    @property
    def status(self) -> str:
        if self.value is None:
            return "not measured"
        if self.limit is None:
            return "reported"
        return "met" if self.value <= self.limit else "MISSED"

    def line(self) -> str:
        if self.value is None:
            return f"  {self.name}: not measured (a contender produced no value)"
        medians = "" if self.medians_ratio is None else f"; of medians {self.medians_ratio:.3f}x"
        if self.limit is None:
            return f"  {self.name}: {self.value:.3f}{self.unit} (reported{medians})"
        return (
            f"  {self.name}: {self.value:.3f}{self.unit} "
            f"(target <= {self.limit:.3g}{self.unit}{medians}) {self.status}"
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def compare(
    name: str,
    result: CaseResult,
    arm: str,
    peer: str,
    limit: float | None,
    value: str = "seconds",
    peer_value: str | None = None,
) -> Target:
    """``arm``'s ``value`` against ``peer``'s (``peer_value`` if another): judged on the
    ratio paired within rounds, the ratio of the medians shown beside it."""
    medians = ratio(result.median(arm, value), result.median(peer, peer_value or value))
    return Target(name, result.paired_ratio(arm, peer, value, peer_value), limit, "x", medians)


def draw_chart(
    path: Path, seconds: dict[str, dict[str, float | None]], targets: list[Target]
) -> None:
    """Left: median seconds of each case per contender. Right: each target's value and limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (times, goals) = plt.subplots(1, 2, figsize=(14, 6))
    cases = list(seconds)
    contenders = sorted({arm for arms in seconds.values() for arm in arms})
    width = 0.8 / max(1, len(contenders))
    for index, contender in enumerate(contenders):
        values = [seconds[case].get(contender) or 0.0 for case in cases]
        positions = [c + index * width for c in range(len(cases))]
        times.bar(positions, values, width, label=contender)
    times.set_xticks([c + 0.4 - width / 2 for c in range(len(cases))], cases, rotation=20)
    times.set_ylabel("median seconds")
    times.set_title("Median time per case (fresh process each run)")
    times.legend()

    measured = [t for t in targets if t.value is not None and t.limit is not None]
    names = [t.name for t in measured]
    colours = ["tab:green" if t.status == "met" else "tab:red" for t in measured]
    goals.barh(names, [t.value / t.limit for t in measured], color=colours)
    goals.axvline(1.0, color="black", linestyle="--", label="target")
    goals.set_xlabel("value / target (<= 1 is met)")
    goals.set_title("Targets")
    goals.invert_yaxis()
    goals.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
