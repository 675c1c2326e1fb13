"""A package's sources and resources as real files, in a content-addressed cache folder.

Much library code finds files through its own ``__file__``: transformers lists its folders
(``os.listdir(os.path.dirname(__file__))``) to learn what its lazy modules hold, tokenizers
and configs are opened beside the module that reads them. An archive has no such files, so the
importer can write every record outside ``.data/`` (sources, resources, pickles; never tensor
storages) into ``<cache>/files/<key>/``, a folder laid out like site-packages, and point
``__file__`` and ``__path__`` there. Module names stay mangled and modules are still compiled
from the archive's verified bytes: the files are only what code reads.

``key`` is the sha256 of the records' names and contents, so two archives share a folder only
when those are identical. The folder is written under a temporary name beside its final place
and renamed into it when complete: a reader never sees half a folder, and concurrent loads of
the same package (threads or processes) each write their own copy, one of which wins the
rename while the others are discarded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import ArchiveError

_CACHE_ENV = "TORCHPACK_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$TORCHPACK_CACHE_DIR``, else ``$XDG_CACHE_HOME/torchpack``, else ``~/.cache/torchpack``."""
    explicit = os.environ.get(_CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "torchpack" if xdg else Path.home() / ".cache" / "torchpack"


def extract_records(
    archive: str, records: Iterable[str], read: Callable[[str], bytes], cache_dir: Path
) -> Path:
    """The folder under ``cache_dir`` that holds ``records`` as files, written if missing.

    ``read(record)`` returns a record's (verified) bytes. Raises ``OSError`` if the cache
    cannot be written, :class:`~torchpack.errors.ArchiveError` for a record name that is not a
    plain relative path.
    """
    contents = {record: read(record) for record in sorted(records)}
    digest = hashlib.sha256()
    for record, data in contents.items():
        _check_record_name(archive, record)
        digest.update(f"{len(record)}:{record}:{len(data)}:".encode())
        digest.update(data)
    files = cache_dir / "files"
    final = files / digest.hexdigest()[:32]
    if final.is_dir():
        return final
    # Private when this creates it: other users must not plant files that code will read.
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    files.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=files))
    try:
        for record, data in contents.items():
            path = staging.joinpath(*record.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            # Read-only: a package's code must not change the files every later load shares.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            staging.rename(final)
        except OSError:
            if not final.is_dir():
                raise
            # Another load of the same package finished first; its folder is identical.
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return final


def _check_record_name(archive: str, record: str) -> None:
    parts = record.split("/")
    if record.startswith("/") or any(part in ("", ".", "..") or "\0" in part for part in parts):
        raise ArchiveError(
            archive, "record name is not a plain relative path; not extracted", record
        )
