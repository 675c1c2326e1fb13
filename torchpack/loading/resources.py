"""``importlib.resources`` for packaged code: resources are read from the archive."""

from __future__ import annotations

import io
import os
import posixpath
from collections.abc import Iterator
from importlib.resources.abc import Traversable, TraversableResources
from typing import Any, Protocol


class RecordSource(Protocol):
    def resource_records(self) -> list[str]: ...

    def has_record(self, name: str) -> bool: ...

    def read_record(self, name: str) -> bytes: ...

    def record_path(self, name: str) -> str | None: ...


class ArchivePath(Traversable):
    """A file or folder inside a package archive, as ``importlib.resources.files`` returns."""

    def __init__(self, archive: RecordSource, path: str) -> None:
        self._archive = archive
        self._path = path.strip("/")

    @property
    def name(self) -> str:
        return posixpath.basename(self._path)

    @property
    def record(self) -> str:
        """The record (or folder of records) this path names in the archive."""
        return self._path

    def _prefix(self) -> str:
        return f"{self._path}/" if self._path else ""

    def is_file(self) -> bool:
        return self._archive.has_record(self._path)

    def is_dir(self) -> bool:
        prefix = self._prefix()
        return any(record.startswith(prefix) for record in self._archive.resource_records())

    def iterdir(self) -> Iterator[ArchivePath]:
        prefix = self._prefix()
        children = dict.fromkeys(
            record[len(prefix) :].split("/", 1)[0]
            for record in self._archive.resource_records()
            if record.startswith(prefix)
        )
        return (ArchivePath(self._archive, prefix + child) for child in children)

    def joinpath(self, *descendants: str | os.PathLike[str]) -> ArchivePath:
        parts = [os.fspath(part).replace(os.sep, "/") for part in descendants]
        return ArchivePath(self._archive, posixpath.join(self._path, *parts))

    def __truediv__(self, child: str | os.PathLike[str]) -> ArchivePath:
        return self.joinpath(child)

    def open(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if mode not in ("r", "rb"):
            raise ValueError(
                f"package resources are read-only; cannot open {self._path!r} with mode {mode!r}"
            )
        if not self.is_file():
            raise FileNotFoundError(f"no resource {self._path!r} in the package")
        data = io.BytesIO(self._archive.read_record(self._path))
        return data if mode == "rb" else io.TextIOWrapper(data, *args, **kwargs)

    def __repr__(self) -> str:
        return f"ArchivePath({self._path!r})"


class PackageResourceReader(TraversableResources):
    """What a packaged module's loader hands ``importlib.resources``."""

    def __init__(self, archive: RecordSource, package_path: str) -> None:
        self._archive = archive
        self._root = ArchivePath(archive, package_path)

    def files(self) -> ArchivePath:
        return self._root

    def resource_path(self, resource: str) -> str:
        """The file holding ``resource``: only an unzipped package has one."""
        path = self._archive.record_path(self._root.joinpath(resource).record)
        if path is None:
            raise FileNotFoundError(f"resource {resource!r} is not a file on disk")
        return path
