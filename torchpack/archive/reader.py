"""Reading records from a package: a ZIP archive or an unzipped folder.

Archives are validated (:mod:`torchpack.archive.zip_index`) before PyTorch's C++ reader
opens them, and PyTorch's reader must then see exactly the records the index saw, at the same
offsets. Every record read is checked: against the integrity manifest when the package has
one and checking is on, else against the ZIP's CRC. Tensor storages are read by torchpack
itself and checked on the bytes as they were read, before the unpickler gets them (a second
thread maps the next chunk's memory meanwhile): code that changes a tensor while the load
goes on cannot make a valid package fail.
"""

from __future__ import annotations

import functools
import os
import stat
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, Union

import torch

from ..errors import (
    ArchiveError,
    IntegrityError,
    IntegrityWarning,
    MalformedArchiveError,
    first_line,
)
from .checksums import crc32, new_hasher
from .format import MANIFEST_RECORD, VERSION_RECORD, WRITER_TRAILER_RECORDS, record_name_problem
from .manifest import Manifest, check_trailer_record, manifest_record_in
from .prefault import can_prefault, prefault
from .storage_buffer import storage_buffer
from .tamper_signs import tamper_signs
from .zip_index import ZipIndex, check_crc, check_crc_value, check_format_version, open_regular_file
from .zip_structure import ZipEntry

ArchiveSource = Union[str, os.PathLike, IO[bytes], "torch._C.PyTorchFileReader"]
# Storages are read and checked in chunks of this size.
_CHUNK = 4 << 20


class ReadAhead:
    """The helper thread of one load: it gets memory ready ahead of the reads.

    An eagerly loaded storage is fresh memory, which the kernel maps page by page as the read
    first writes it: that costs about as much as copying the bytes. The helper maps each chunk
    while the load reads and checks the one before, so the two halves run on two cores.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    def fault_in(self, storage: torch.UntypedStorage) -> list[Future[bool]]:
        """Map ``storage``'s chunks of ``_CHUNK`` bytes after the first, in order; one future
        per chunk. The read of the first chunk faults its pages in itself meanwhile, so a
        storage of one chunk needs no help (nor does any where the system cannot)."""
        address, nbytes = storage.data_ptr(), storage.nbytes()
        if nbytes <= _CHUNK or not can_prefault():
            return []
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="torchpack-read")
        return [
            self._executor.submit(prefault, address + at, min(_CHUNK, nbytes - at))
            for at in range(_CHUNK, nbytes, _CHUNK)
        ]

    def close(self) -> None:
        """Stop the helper thread (idempotent)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


class _StreamCheck:
    """A record's digest or CRC, computed from its bytes as they are read, then compared."""

    def __init__(self, finish: Callable[[Any], None], algorithm: str | None) -> None:
        # With an algorithm, the manifest's digest; without, the ZIP's CRC.
        self._hash = new_hasher(algorithm) if algorithm is not None else None
        self._crc = 0
        self._finish = finish

    def update(self, chunk: bytes | memoryview) -> None:
        if self._hash is not None:
            self._hash.update(chunk)
        else:
            self._crc = crc32(chunk, self._crc)

    def finish(self) -> None:
        """Compare: the digest (hex) with the manifest, or the CRC with the ZIP's."""
        self._finish(self._hash.hexdigest() if self._hash is not None else self._crc)


class _RecordChecks:
    """What reading a record checks: the manifest's digests, or only the ZIP's CRCs."""

    def __init__(self) -> None:
        self.manifest: Manifest | None = None
        self.storage_crcs = False

    def setup(self, reader: ArchiveReader, verify: bool | None) -> None:
        """``verify``: True requires a manifest, None uses one if present, False skips it."""
        manifest_record = manifest_record_in(reader.name, reader.has_record)
        has_manifest = manifest_record is not None
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
            signs = tamper_signs(reader.records(), reader.read, getattr(reader, "index", None))
            if signs:
                warnings.warn(
                    f"package {reader.name} has no integrity manifest, but {' and '.join(signs)}"
                    ": it may have been removed to hide changes. Only the ZIP's CRCs are "
                    "checked; load with verify=True to refuse packages without a manifest, or "
                    "verify=False to skip the checks",
                    IntegrityWarning,
                    stacklevel=5,
                )
            return
        manifest = Manifest.parse(reader.name, manifest_record, reader.read(manifest_record))
        problems = manifest.coverage_problems(reader.records())
        if problems:
            raise problems[0]
        self.manifest = manifest

    def by_digest(self, record: str) -> bool:
        """True if the manifest's digest covers ``record`` (then its CRC adds nothing)."""
        return (
            self.manifest is not None
            and record in self.manifest.digests
            and not self.manifest.crc_only(record)
        )

    def check(self, archive: str, record: str, data: bytes | memoryview) -> None:
        if self.manifest is None or record == self.manifest.record:
            return
        if record in self.manifest.digests:
            self.manifest.check(record, data)
        elif record in WRITER_TRAILER_RECORDS:
            check_trailer_record(archive, record, bytes(data))

    def stream(self, index: ZipIndex | None, record: str) -> _StreamCheck | None:
        """How to check a storage record from its chunks as they are read (None: unchecked)."""
        manifest = self.manifest
        if manifest is not None and self.by_digest(record):
            return _StreamCheck(
                lambda digest: manifest.check_digest(record, digest), manifest.algorithm
            )
        if index is not None and (self.storage_crcs or manifest is not None):
            entry = index.record(record)
            return _StreamCheck(lambda crc: check_crc_value(index.name, entry, crc), None)
        return None


class ZipArchiveReader:
    """Records of a ZIP archive: read by torchpack, and by PyTorch's reader for TorchScript.

    With ``mmap=True`` tensor storages are not read: each load maps the archive file
    (copy-on-write) and each storage is a view of its 64-byte-aligned record, so pages are
    read from disk only when a tensor touches them. Their digests and CRCs are checked only
    with ``verify=True``, which reads every byte.
    """

    def __init__(
        self, source: ArchiveSource, verify: bool | None = None, mmap: bool = False
    ) -> None:
        if mmap and not isinstance(source, (str, os.PathLike)):
            raise ArchiveError(
                getattr(source, "name", "<binary>"),
                "mmap=True needs the package as a file path, not a file object or reader; "
                "pass the path, or load without mmap",
            )
        self._mmap = mmap
        self._verify_mapped = verify is True
        # A reader PyTorch already opened cannot be validated: its file is out of reach.
        self.index: ZipIndex | None = None
        if isinstance(source, torch._C.PyTorchFileReader):
            self.name = "<pytorch_file_reader>"
            self.zip_reader = source
            self._records = self.zip_reader.get_all_records()
            self.size = sum(self.zip_reader.get_record_size(r) for r in self._records)
        else:
            self.index = ZipIndex(source)
            self.name = self.index.name
            self.zip_reader = self._open_pytorch_reader(source)
            self._records = self.index.records()
            # Bytes the archive holds: what safe loading's memory budget is measured against.
            self.size = self.index.file_size
        self._checks = _RecordChecks()
        self._checks.setup(self, verify)

    def _open_pytorch_reader(self, source: str | os.PathLike | IO[bytes]) -> Any:
        """PyTorch's reader of the very file the index read, which must see the same records."""
        assert self.index is not None
        opened: str | IO[bytes]
        if self.index.fd is not None:
            # The held descriptor, not the path: the path may name another file by now.
            held = f"/proc/self/fd/{self.index.fd}"
            opened = held if os.path.exists(held) else self.name
        else:
            source.seek(0)  # type: ignore[union-attr]
            opened = source  # type: ignore[assignment]
        try:
            reader = torch._C.PyTorchFileReader(opened)
        except RuntimeError as err:
            raise MalformedArchiveError(
                self.name, f"PyTorch's reader refuses the archive: {first_line(err)}"
            ) from None
        if opened == self.name and not _same_file(self.index.fd, self.name):
            raise ArchiveError(self.name, "file was replaced while it was being opened; retry")
        self._check_same_view(reader)
        return reader

    def _check_same_view(self, reader: torch._C.PyTorchFileReader) -> None:
        assert self.index is not None
        theirs = {r for r in reader.get_all_records() if not r.endswith("/")}
        if theirs != set(self.index.records()):
            raise MalformedArchiveError(
                self.name, "PyTorch's reader sees other records than the archive's directory"
            )
        for name in self.index.records():
            entry = self.index.record(name)
            if (reader.get_record_offset(name), reader.get_record_size(name)) != (
                entry.offset,
                entry.size,
            ):
                raise MalformedArchiveError(
                    self.name, "PyTorch's reader finds this record elsewhere", name
                )

    def records(self) -> list[str]:
        return list(self._records)

    def file_path(self, name: str) -> str | None:
        """Records of a ZIP archive are not files of their own."""
        return None

    def has_record(self, name: str) -> bool:
        if self.index is not None:
            return self.index.has_record(name)
        return self.zip_reader.has_record(name)

    def read(self, name: str) -> bytes:
        if not self.has_record(name):
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
        self, name: str, nbytes: int, read_ahead: ReadAhead | None = None
    ) -> torch.UntypedStorage:
        """A new storage with the record's first ``nbytes``, checked on the bytes as read."""
        if self.index is None:
            return self._read_storage_from_pytorch(name, nbytes)
        entry = self.index.record(name) if self.index.has_record(name) else None
        _check_storage_size(self.name, name, entry.size if entry else None, nbytes)
        assert entry is not None
        storage = torch.UntypedStorage(nbytes)
        target = storage_buffer(storage)
        stream = self._checks.stream(self.index, name)
        faulted_in = read_ahead.fault_in(storage) if read_ahead is not None else []
        try:
            for number, at in enumerate(range(0, nbytes, _CHUNK)):
                if number and faulted_in:
                    faulted_in[number - 1].result()
                self._read_chunk(entry, at, target[at : at + _CHUNK], stream, name)
        finally:
            for pending in faulted_in:
                pending.cancel()
        if stream is not None:
            # A record used only in part (a tensor viewing a prefix) is read whole for its
            # digest.
            rest = memoryview(bytearray(min(_CHUNK, entry.size - nbytes)))
            for at in range(nbytes, entry.size, _CHUNK):
                self._read_chunk(entry, at, rest[: min(_CHUNK, entry.size - at)], stream, name)
            stream.finish()
        return storage

    def _read_chunk(
        self, entry: ZipEntry, at: int, view: memoryview, stream: _StreamCheck | None, name: str
    ) -> None:
        """Read the record's bytes from ``at`` into ``view``, and check them as read."""
        assert self.index is not None
        if self.index.read_into(entry.offset + at, view) != len(view):
            raise MalformedArchiveError(self.name, "record ends early", name)
        if stream is not None:
            stream.update(view)

    def _read_storage_from_pytorch(self, name: str, nbytes: int) -> torch.UntypedStorage:
        has_record = self.zip_reader.has_record(name)
        size = self.zip_reader.get_record_size(name) if has_record else None
        _check_storage_size(self.name, name, size, nbytes)
        try:
            tensor = self.zip_reader.get_storage_from_record(name, nbytes, torch.uint8)
        except RuntimeError as err:
            raise ArchiveError(self.name, first_line(err), name) from None
        storage = tensor.untyped_storage()
        if self._checks.by_digest(name) and size == nbytes:
            self._checks.check(self.name, name, storage_buffer(storage))
        elif self._checks.by_digest(name):
            self._checks.check(self.name, name, self.zip_reader.get_record(name))
        return storage

    def storage_reader(
        self, read_ahead: ReadAhead | None = None
    ) -> Callable[[str, int], torch.UntypedStorage]:
        """How one load gets its storages: read, or with ``mmap`` views of a mapping of its
        own, so that tensors of separate loads never share memory (as when read)."""
        if not self._mmap:
            return functools.partial(self.read_storage, read_ahead=read_ahead)
        assert self.index is not None and self.index.fd is not None
        index = self.index
        mapped = _map_file(self.name, index.fd)  # type: ignore[arg-type]

        def mapped_storage(name: str, nbytes: int) -> torch.UntypedStorage:
            entry = index.record(name) if index.has_record(name) else None
            _check_storage_size(self.name, name, entry.size if entry else None, nbytes)
            assert entry is not None
            storage = mapped[entry.offset : entry.offset + nbytes]
            if self._verify_mapped:
                self._check_mapped(name, storage, entry.size == nbytes)
            return storage

        return mapped_storage

    def _check_mapped(self, name: str, storage: torch.UntypedStorage, whole: bool) -> None:
        """A mapped storage's bytes: the file's, privately mapped, so checked as they are."""
        assert self.index is not None
        checks = self._checks
        if not whole:
            # The tensor uses a prefix of the record; the digest and CRC cover all of it.
            checks.check(self.name, name, self.index.read(name, crc=not checks.by_digest(name)))
        elif checks.by_digest(name):
            checks.check(self.name, name, storage_buffer(storage))
        elif checks.storage_crcs or checks.manifest is not None:
            check_crc(self.name, self.index.record(name), storage_buffer(storage))


class DirectoryArchiveReader:
    """Records of an unzipped package: the folder that holds ``.data/``.

    Only regular files are records: a FIFO, socket or device in the folder is refused (reading
    one would hang or never end). Storages are always memory-mapped from their own files
    (copy-on-write).
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
        size = 0
        # Depth first, in name order, with a stack: a folder nested thousands deep is refused
        # by the name rules instead of exhausting the recursion limit.
        pending = [""]
        while pending:
            relative = pending.pop()
            folder = os.path.join(self.root, *relative.split("/")) if relative else self.root
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
            subfolders = []
            for entry in entries:
                path = f"{relative}/{entry.name}" if relative else entry.name
                problem = record_name_problem(path)
                if problem is not None:
                    raise MalformedArchiveError(self.name, f"file name {problem}", path)
                self._refuse_links_out(path)
                if entry.is_dir():
                    if not entry.is_symlink():  # a linked folder inside is not walked into
                        subfolders.append(path)
                    continue
                size += self._regular_size(path)
                records.append(path)
            pending.extend(reversed(subfolders))
        self._records = records
        # Bytes the package holds: what safe loading's memory budget is measured against.
        self.size = size
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

    def _regular_size(self, record: str) -> int:
        try:
            info = os.stat(self._path(record))
        except FileNotFoundError:
            raise MalformedArchiveError(self.name, "is a dangling symbolic link", record) from None
        if not stat.S_ISREG(info.st_mode):
            raise MalformedArchiveError(
                self.name, "is not a regular file (a FIFO, socket or device); refusing it", record
            )
        return info.st_size

    def _path(self, name: str) -> str:
        path = os.path.realpath(os.path.join(self.root, *name.split("/")))
        if not _is_inside(path, self.root):
            raise ArchiveError(self.name, "record points outside the package folder", name)
        return path

    def _open(self, name: str) -> int:
        """A descriptor of the record's file, checked to be a regular file once opened."""
        try:
            return open_regular_file(self._path(name))
        except ArchiveError as err:
            raise ArchiveError(self.name, err.args[0].split(": ", 1)[-1], name) from None

    def records(self) -> list[str]:
        return list(self._records)

    def file_path(self, name: str) -> str | None:
        """The file that holds record ``name``, under the folder as it was named."""
        self._path(name)  # refuses names that lead outside the folder
        return os.path.join(self.name, *name.split("/"))

    def has_record(self, name: str) -> bool:
        return name in self._records

    def read(self, name: str) -> bytes:
        fd = self._open(name)
        with os.fdopen(fd, "rb") as f:
            data = f.read()
        self._checks.check(self.name, name, data)
        return data

    def read_storage(self, name: str, nbytes: int) -> torch.UntypedStorage:
        fd = self._open(name)
        try:
            size = os.fstat(fd).st_size
            _check_storage_size(self.name, name, size, nbytes)
            # The opened descriptor, not the path: the file checked is the file mapped.
            held = f"/proc/self/fd/{fd}"
            mapped = held if os.path.exists(held) else self._path(name)
            storage = torch.UntypedStorage.from_file(mapped, False, nbytes)
        finally:
            os.close(fd)
        if self._checks.manifest is not None:
            # The tensor may use only a prefix of the record; the digest covers all of it.
            self._checks.check(
                self.name, name, storage_buffer(storage) if size == nbytes else self.read(name)
            )
        return storage

    def storage_reader(
        self, read_ahead: ReadAhead | None = None
    ) -> Callable[[str, int], torch.UntypedStorage]:
        """Every call maps the storage's file anew: separate loads never share memory.

        Checks run at once: a mapped file is read by the check itself.
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


def _same_file(fd: int | None, path: str) -> bool:
    if fd is None:
        return True
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
