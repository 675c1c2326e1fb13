"""The installed distributions that interned libraries come from, for their ``METADATA``.

Libraries ask ``importlib.metadata.version("diffusers")`` about themselves and each other; in
a package their installed copy may be absent, so the package carries each interned library's
``METADATA`` (name, version, requirements: all ``version()``, ``metadata()`` and
``requires()`` read) and the importer serves it to the package's code
(:mod:`torchpack.loading.distributions`). Other files of a ``.dist-info`` folder (``RECORD``,
entry points) are not carried: they describe an installation, not the code.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable

from ..archive.format import metadata_record
from ..loading.distributions import normalize_distribution_name


def site_folder(module_name: str, is_package: bool, origin: str) -> str | None:
    """The folder on ``sys.path`` that ``origin``, the file of ``module_name``, lies under.

    String operations, not pathlib: it runs for every interned module.
    """
    stem = os.path.dirname(origin) if is_package else os.path.splitext(origin)[0]
    actual = os.path.normpath(stem)
    tail = os.sep + module_name.replace(".", os.sep)
    # A file that does not sit where its name says (save_source_file) has no distribution.
    if not actual.endswith(tail):
        return None
    return actual[: -len(tail)] or os.sep


def metadata_records(tops: Iterable[tuple[str, str]]) -> dict[str, bytes]:
    """``METADATA`` records for the distributions providing each ``(top-level name, folder)``.

    A distribution provides a name when its ``top_level.txt`` lists it or its ``RECORD`` has
    files under it. Sorted by record name, so archives stay byte-identical.
    """
    records: dict[str, bytes] = {}
    by_folder: dict[str, list[importlib.metadata.Distribution]] = {}
    for top, folder in sorted(set(tops)):
        if folder not in by_folder:
            by_folder[folder] = list(importlib.metadata.distributions(path=[folder]))
        for distribution in by_folder[folder]:
            if not _provides(distribution, top):
                continue
            text = distribution.read_text("METADATA")
            name = distribution.metadata["Name"] if text else None
            if not name:
                continue
            record = metadata_record(normalize_distribution_name(name), distribution.version)
            records[record] = text.encode("utf-8")
    return dict(sorted(records.items()))


def _provides(distribution: importlib.metadata.Distribution, top: str) -> bool:
    """Whether ``distribution`` installs the top-level module or package ``top``."""
    listed = distribution.read_text("top_level.txt")
    if listed:
        return top in listed.split()
    # RECORD lines are "path,hash,size"; read as text (torch's has tens of thousands).
    installed = "\n" + (distribution.read_text("RECORD") or "")
    return f"\n{top}/" in installed or f"\n{top}.py," in installed
