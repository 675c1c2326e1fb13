"""Reading records from a package: a ZIP archive or an unzipped folder.

Archives are validated (:mod:`torchpack.archive.zip_index`) before PyTorch's C++ reader
opens them, and every record read is checked: against the integrity manifest when the
package has one and checking is on, else against the ZIP's CRC.
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Union

import torch

from ..errors import ArchiveError, IntegrityError, MalformedArchiveError, first_line
from .format import MANIFEST_RECORD, VERSION_RECORD, WRITER_TRAILER_RECORDS
from .manifest import Manifest, check_trailer_record
from .storage_buffer import storage_buffer
from .zip_index import ZipIndex, check_crc, check_format_version

ArchiveSource = Union[str, os.PathLike, IO[bytes], "torch._C.PyTorchFileReader"]


class BackgroundChecks:
    """The storage checks of one load, each run in a second thread while the load goes on.

    hashlib and zlib release the GIL, so checking one storage overlaps with reading the next
    and with unpickling; the load returns only once every check has passed.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []

    def run(self, check: Callable[[], None]) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="torchpack-check")
        self._pending.append(self._executor.submit(check))

    def finish(self) -> None:
        """Wait for every check; raise the first that failed, in the order they were run."""
        pending, self._pending = self._pending, []
        try:
            for future in pending:
                future.result()
        finally:
            self.close()

    def close(self) -> None:
        """Stop without reporting (the load failed anyway); idempotent."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


class _RecordChecks:
    """What reading a record checks: the manifest's digests, or only the ZIP's CRCs."""

    def __init__(self) -> None:
        self.manifest: Manifest | None = None
        self.storage_crcs = False

    def setup(self, reader: ArchiveReader, verify: bool | None) -> None:
        """``verify``: True requires a manifest, None uses one if present, False skips it."""
        has_manifest = reader.has_record(MANIFEST_RECORD)
        if verify is True and not has_manifest:
            raise IntegrityError(
                reader.name,
                "the package has no integrity manifest (it was written by torch.package or "
                "an older torchpack), so there is nothing to verify against; load it with "
                "verify=False, or re-export it with torchpack",
                MANIFEST_RECORD,
            )
        if verify is False:
            return
        if not has_manifest:
            self.storage_crcs = True
            return
        manifest = Manifest.parse(reader.name, reader.read(MANIFEST_RECORD))
        problems = manifest.coverage_problems(reader.records())
        if problems:
            raise problems[0]
        self.manifest = manifest

    def by_digest(self, record: str) -> bool:
        """True if the manifest's sha256 covers ``record`` (then its CRC adds nothing)."""
        return (
            self.manifest is not None
            and record in self.manifest.digests
            and not self.manifest.crc_only(record)
        )

    def check(self, archive: str, record: str, data: bytes | memoryview) -> None:
        if self.manifest is None or record == MANIFEST_RECORD:
            return
        if record in self.manifest.digests:
            self.manifest.check(record, data)
        elif record in WRITER_TRAILER_RECORDS:
            check_trailer_record(archive, record, bytes(data))


class ZipArchiveReader:
    """Records of a ZIP archive, read with PyTorch's reader (which TorchScript needs too).

    With ``mmap=True`` tensor storages are not read: each load maps the archive file
    (copy-on-write) and each storage is a view of its 64-byte-aligned record, so pages are
    read from disk only when a tensor touches them. Their digests and CRCs are checked only
    with ``verify=True``, which reads every byte.
    """

    def __init__(
        self, source: ArchiveSource, verify: bool | None = None, mmap: bool = False
    ) -> None:
        self._mapped_fd: int | None = None
        self._verify_mapped = verify is True
        if mmap:
            if not isinstance(source, (str, os.PathLike)):
                raise ArchiveError(
                    getattr(source, "name", "<binary>"),
                    "mmap=True needs the package as a file path, not a file object or reader; "
                    "pass the path, or load without mmap",
                )
            # Held open so that every load maps the file the record offsets were read from,
            # even after the path has been given to a new file.
            self._mapped_fd = _open_for_mapping(source)
            weakref.finalize(self, os.close, self._mapped_fd)
        # A reader PyTorch already opened cannot be validated: its file is out of reach.
        self.index: ZipIndex | None = None
        if isinstance(source, torch._C.PyTorchFileReader):
            self.name = "<pytorch_file_reader>"
            self.zip_reader = source
        else:
            self.index = ZipIndex(source)
            if not isinstance(source, (str, os.PathLike)):
                source.seek(0)
            self.name, self.zip_reader = _open_zip(source)
        if self._mapped_fd is not None and not _same_file(self._mapped_fd, self.name):
            raise ArchiveError(self.name, "file was replaced while it was being opened; retry")
        self._records = self.index.records() if self.index else self.zip_reader.get_all_records()
        # Bytes the archive holds: what safe loading's memory budget is measured against.
        self.size = (
            self.index.file_size
            if self.index
            else sum(self.zip_reader.get_record_size(r) for r in self._records)
        )
        self._checks = _RecordChecks()
        self._checks.setup(self, verify)

    def records(self) -> list[str]:
        return list(self._records)

    def has_record(self, name: str) -> bool:
        return self.zip_reader.has_record(name)

    def read(self, name: str) -> bytes:
        if not self.zip_reader.has_record(name):
            raise ArchiveError(self.name, "no such record", name)
        if self.index is None:
            try:
                data = self.zip_reader.get_record(name)
            except RuntimeError as err:
                raise ArchiveError(self.name, first_line(err), name) from None
            self._checks.check(self.name, name, data)
            return data
        data = self.index.read(name, crc=False)
        # The digest first: a changed record is an IntegrityError; a CRC that disagrees with
        # verified bytes is damage to the ZIP's own bookkeeping.
        self._checks.check(self.name, name, data)
        check_crc(self.name, self.index.record(name), data)
        return data

    def read_storage(
        self, name: str, nbytes: int, background: BackgroundChecks | None = None
    ) -> torch.UntypedStorage:
        """The storage's bytes, checked now or, given ``background``, while the load goes on."""
        whole = self._check_storage_size(name, nbytes)
        try:
            tensor = self.zip_reader.get_storage_from_record(name, nbytes, torch.uint8)
        except RuntimeError as err:
            raise ArchiveError(self.name, first_line(err), name) from None
        storage = tensor.untyped_storage()
        if background is not None and whole:
            background.run(lambda: self._check_storage(name, storage, whole))
        else:
            # A partly used record is read again from the file: not from a second thread.
            self._check_storage(name, storage, whole)
        return storage

    def storage_reader(
        self, background: BackgroundChecks | None = None
    ) -> Callable[[str, int], torch.UntypedStorage]:
        """How one load gets its storages: read, or with ``mmap`` views of a mapping of its
        own, so that tensors of separate loads never share memory (as when read)."""
        if self._mapped_fd is None:
            return functools.partial(self.read_storage, background=background)
        mapped = _map_file(self.name, self._mapped_fd)

        def mapped_storage(name: str, nbytes: int) -> torch.UntypedStorage:
            whole = self._check_storage_size(name, nbytes)
            offset = self.zip_reader.get_record_offset(name)
            storage = mapped[offset : offset + nbytes]
            if self._verify_mapped:
                self._check_storage(name, storage, whole)
            return storage

        return mapped_storage

    def _check_storage_size(self, name: str, nbytes: int) -> bool:
        """Raise if ``name`` cannot hold ``nbytes``; whether the tensor uses all of it."""
        has_record = self.zip_reader.has_record(name)
        size = self.zip_reader.get_record_size(name) if has_record else None
        _check_storage_size(self.name, name, size, nbytes)
        return size == nbytes

    def _check_storage(self, name: str, storage: torch.UntypedStorage, whole: bool) -> None:
        checks = self._checks
        by_digest = checks.by_digest(name)
        by_crc = self.index is not None and (checks.storage_crcs or checks.manifest is not None)
        if not (by_digest or by_crc):
            return
        if not whole and self.index is not None:
            # The tensor uses a prefix of the record; the digest and CRC cover all of it.
            checks.check(self.name, name, self.index.read(name, crc=not by_digest))
        elif by_digest:
            checks.check(self.name, name, storage_buffer(storage))
        elif self.index is not None:
            check_crc(self.name, self.index.record(name), storage_buffer(storage))


class DirectoryArchiveReader:
    """Records of an unzipped package: the folder that holds ``.data/``.

    Storages are always memory-mapped from their own files (copy-on-write).
    """

    def __init__(self, folder: str | os.PathLike, verify: bool | None = None) -> None:
        self.name = os.fspath(folder)
        self.root = os.path.realpath(self.name)
        if not os.path.isfile(os.path.join(self.root, *VERSION_RECORD.split("/"))):
            raise ArchiveError(
                self.name,
                f"folder has no {VERSION_RECORD}; pass the unzipped package's folder that "
                "holds .data/ (an unzipped archive has it one level down)",
            )
        records = []
        for folder_path, folder_names, file_names in os.walk(self.root):
            folder_names.sort()
            relative = os.path.relpath(folder_path, self.root)
            for file_name in sorted(folder_names) + sorted(file_names):
                path = (file_name if relative == "." else f"{relative}/{file_name}").replace(
                    os.sep, "/"
                )
                self._refuse_links_out(path)
                if file_name in file_names:
                    records.append(path)
        self._records = records
        self.size = sum(os.path.getsize(self._path(record)) for record in records)
        self._checks = _RecordChecks()
        check_format_version(self.name, self.read(VERSION_RECORD))
        self._checks.setup(self, verify)

    def _refuse_links_out(self, record: str) -> None:
        path = os.path.join(self.root, *record.split("/"))
        if os.path.islink(path) and not _is_inside(os.path.realpath(path), self.root):
            raise MalformedArchiveError(
                self.name,
                f"symbolic link to {os.readlink(path)!r} leads outside the package folder; "
                "refusing to read through it",
                record,
            )

    def _path(self, name: str) -> str:
        path = os.path.realpath(os.path.join(self.root, *name.split("/")))
        if not _is_inside(path, self.root):
            raise ArchiveError(self.name, "record points outside the package folder", name)
        return path

    def records(self) -> list[str]:
        return list(self._records)

    def has_record(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def read(self, name: str) -> bytes:
        try:
            with open(self._path(name), "rb") as f:
                data = f.read()
        except (FileNotFoundError, IsADirectoryError):
            raise ArchiveError(self.name, "no such record", name) from None
        self._checks.check(self.name, name, data)
        return data

    def read_storage(self, name: str, nbytes: int) -> torch.UntypedStorage:
        path = self._path(name)
        size = os.path.getsize(path) if os.path.isfile(path) else None
        _check_storage_size(self.name, name, size, nbytes)
        storage = torch.UntypedStorage.from_file(path, False, nbytes)
        if self._checks.manifest is not None:
            # The tensor may use only a prefix of the record; the digest covers all of it.
            self._checks.check(
                self.name, name, storage_buffer(storage) if size == nbytes else self.read(name)
            )
        return storage

    def storage_reader(
        self, background: BackgroundChecks | None = None
    ) -> Callable[[str, int], torch.UntypedStorage]:
        """Every call maps the storage's file anew: separate loads never share memory.

        Checks run at once: a mapped file is read by the check itself, in any thread.
        """
        return self.read_storage


ArchiveReader = ZipArchiveReader | DirectoryArchiveReader


def open_archive(
    source: ArchiveSource, verify: bool | None = None, mmap: bool = False
) -> ArchiveReader:
    """A reader for a package file, file object or unzipped folder.

    ``mmap`` maps a ZIP archive's storages instead of reading them; an unzipped folder's
    storages are mapped file by file either way.
    """
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        return DirectoryArchiveReader(source, verify)
    return ZipArchiveReader(source, verify, mmap=mmap)


def _open_zip(source: str | os.PathLike | IO[bytes]) -> tuple[str, torch._C.PyTorchFileReader]:
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if not os.path.exists(name):
            raise ArchiveError(name, "no such file")
        opened: str | IO[bytes] = name
    else:
        name = getattr(source, "name", "<binary>")
        opened = source
    try:
        return name, torch._C.PyTorchFileReader(opened)
    except RuntimeError as err:
        raise ArchiveError(
            name,
            f"not a readable package archive ({first_line(err)}); "
            "was it written by torchpack or torch.package, and copied completely?",
        ) from None


def _open_for_mapping(path: str | os.PathLike) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise ArchiveError(os.fspath(path), "no such file") from None


def _same_file(fd: int, path: str) -> bool:
    held, named = os.fstat(fd), os.stat(path)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _map_file(name: str, fd: int) -> torch.UntypedStorage:
    """The whole file, mapped copy-on-write: writes to its tensors never reach the file.

    Replacing the file afterwards (a new file renamed over it, as every torchpack export
    does, or delete and recreate) is safe: the mapping keeps the old contents. Truncating
    it in place while tensors are in use is not (SIGBUS, as with ``torch.load(mmap=True)``).
    """
    size = os.fstat(fd).st_size
    if size == 0:
        raise ArchiveError(name, "empty file; not a package archive")
    # The held descriptor, not the path: the path may name another file by now.
    path = f"/proc/self/fd/{fd}"
    if not os.path.exists(path):
        if not _same_file(fd, name):
            raise ArchiveError(name, "file was replaced since it was opened; open it again")
        path = name
    return torch.UntypedStorage.from_file(path, False, size)


def _check_storage_size(archive: str, record: str, size: int | None, nbytes: int) -> None:
    if size is None:
        raise MalformedArchiveError(archive, "tensor storage record is missing", record)
    if size < nbytes:
        raise MalformedArchiveError(
            archive, f"storage holds {size} bytes but its tensor needs {nbytes}", record
        )


def _is_inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root
