"""``importlib.metadata`` for the distributions a package carries.

A package that interns a library also carries that library's ``METADATA`` file, as
``<name>-<version>.dist-info/METADATA`` at the top of the archive (where site-packages keeps
it), so that ``importlib.metadata.version("transformers")`` answers inside the package although
the installed copy, if any, is not used. The package's code finds these first; code outside
any package never sees them.
"""

from __future__ import annotations

import posixpath
import re
from importlib.metadata import Distribution
from pathlib import PurePosixPath

from ..archive.format import DIST_INFO_SUFFIX
from .resources import RecordSource


def normalize_distribution_name(name: str) -> str:
    """The name as ``importlib.metadata`` compares it (PEP 503, with underscores)."""
    return re.sub(r"[-_.]+", "_", name).lower()


class PackagedDistribution(Distribution):
    """One ``.dist-info`` folder of a package archive."""

    def __init__(self, archive: RecordSource, folder: str) -> None:
        self._archive = archive
        self._folder = folder

    def read_text(self, filename: str) -> str | None:
        record = posixpath.join(self._folder, str(filename))
        if not self._archive.has_record(record):
            return None
        return self._archive.read_record(record).decode("utf-8")

    def locate_file(self, path: str | PurePosixPath) -> PurePosixPath:
        # The distribution's files are those of the archive, named as records.
        return PurePosixPath(self._folder).parent / path

    def __repr__(self) -> str:
        return f"PackagedDistribution({self._folder!r})"


def packaged_distributions(archive: RecordSource) -> dict[str, PackagedDistribution]:
    """The archive's distributions by normalized name (``<name>-<version>.dist-info/``)."""
    found = {}
    for record in archive.resource_records():
        folder, _, file_name = record.partition("/")
        if file_name == "METADATA" and folder.endswith(DIST_INFO_SUFFIX):
            name = folder[: -len(DIST_INFO_SUFFIX)].rpartition("-")[0]
            found[normalize_distribution_name(name)] = PackagedDistribution(archive, folder)
    return found
