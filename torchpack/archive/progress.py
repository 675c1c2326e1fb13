"""Progress of a long export on a terminal: records and bytes written so far.

Shown on standard error only when it is a terminal and the export has taken longer than
:data:`SHOW_AFTER_SECONDS`, one line rewritten in place; nothing otherwise, so logs, pipes,
CI and Bazel actions (whose output is not a terminal) stay quiet.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

# Exports faster than this finish before a progress line would help.
SHOW_AFTER_SECONDS = 2.0
# At most this often, so that printing never costs more than the writing it reports.
_REFRESH_SECONDS = 0.25


class Progress:
    """Counts what an export writes; ``show``: None decides by the terminal, True always,
    False never."""

    def __init__(self, name: str, show: bool | None = None, stream: TextIO | None = None) -> None:
        self._name = name
        self._stream = stream if stream is not None else sys.stderr
        if show is None:
            isatty = getattr(self._stream, "isatty", None)
            show = bool(isatty and isatty())
        self._enabled = show
        self._delay = SHOW_AFTER_SECONDS
        self._start = time.monotonic()
        self._last_shown: float | None = None
        self.records = 0
        self.bytes = 0

    def wrote(self, nbytes: int) -> None:
        self.records += 1
        self.bytes += nbytes
        if not self._enabled:
            return
        now = time.monotonic()
        if now - self._start < self._delay:
            return
        if self._last_shown is not None and now - self._last_shown < _REFRESH_SECONDS:
            return
        self._last_shown = now
        self._print()

    def finish(self) -> None:
        """End the progress line with the totals, if one was shown."""
        if self._last_shown is not None:
            self._print()
            self._stream.write("\n")
            self._stream.flush()

    def _print(self) -> None:
        self._stream.write(
            f"\rtorchpack: writing {self._name}: {self.records} records, "
            f"{self.bytes / 2**20:.1f} MiB"
        )
        self._stream.flush()
