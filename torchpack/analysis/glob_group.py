"""Bazel/Buck-style globs over separator-delimited names (``torch.nn.*``)."""

from __future__ import annotations

import re
from collections.abc import Iterable

GlobPattern = str | Iterable[str]

__all__ = ["GlobGroup", "GlobPattern"]


def _pattern_list(patterns: GlobPattern, what: str) -> tuple[str, ...]:
    if isinstance(patterns, str):
        return (patterns,)
    if isinstance(patterns, (bytes, bytearray)):
        raise TypeError(f"GlobGroup {what} patterns must be str, not {type(patterns).__name__}")
    # Materialise once: a generator would otherwise be exhausted by compilation
    # and the repr would show nothing useful.
    result = tuple(patterns)
    for p in result:
        if not isinstance(p, str):
            raise TypeError(f"GlobGroup {what} pattern {p!r} is not a str")
    return result


def _compile(pattern: str, separator: str) -> re.Pattern[str]:
    sep = re.escape(separator)
    # Candidates get the separator prepended before matching, so every segment
    # (the first included) is "separator + body"; that lets "**" match zero
    # segments by simply matching nothing.
    any_segment = f"(?:{sep}[^{sep}]+)*"
    within_segment = f"[^{sep}]*"
    parts = []
    for segment in pattern.split(separator):
        if "**" in segment:
            if segment != "**":
                raise ValueError(
                    f"invalid glob pattern {pattern!r}: '**' can only appear as an "
                    f"entire segment (between {separator!r} separators)"
                )
            parts.append(any_segment)
        else:
            parts.append(sep + within_segment.join(re.escape(s) for s in segment.split("*")))
    return re.compile("".join(parts))


class GlobGroup:
    """A set of include/exclude glob patterns matched against dotted names.

    Segments are separated by ``separator``.  A pattern segment is a literal,
    a literal with ``*`` wildcards (matching anything but the separator,
    including nothing), or exactly ``**`` (zero or more whole segments).
    A candidate matches if it matches any include pattern and no exclude
    pattern, e.g. ``torch.**`` matches ``torch`` and ``torch.nn.functional``;
    ``torch.*`` matches ``torch.nn`` only; ``torch*.**`` matches ``torchvision``.
    """

    def __init__(
        self, include: GlobPattern, *, exclude: GlobPattern = (), separator: str = "."
    ) -> None:
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"GlobGroup separator must be a single character, got {separator!r}")
        self.separator = separator
        self.include_patterns = _pattern_list(include, "include")
        self.exclude_patterns = _pattern_list(exclude, "exclude")
        self._include = [_compile(p, separator) for p in self.include_patterns]
        self._exclude = [_compile(p, separator) for p in self.exclude_patterns]

    def matches(self, candidate: str) -> bool:
        """Return True if ``candidate`` matches an include and no exclude pattern."""
        candidate = self.separator + candidate
        return any(p.fullmatch(candidate) for p in self._include) and not any(
            p.fullmatch(candidate) for p in self._exclude
        )

    def __repr__(self) -> str:
        sep = "" if self.separator == "." else f", separator={self.separator!r}"
        return (
            f"GlobGroup(include={list(self.include_patterns)!r}, "
            f"exclude={list(self.exclude_patterns)!r}{sep})"
        )

    __str__ = __repr__
