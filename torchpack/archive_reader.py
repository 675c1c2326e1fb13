"""Reading records from a package: a ZIP archive or an unzipped folder.

Archives are validated (:mod:`torchpack.zip_index`) before PyTorch's C++ reader opens them, and
every record read is checked: against the integrity manifest when the package has one and
checking is on, else against the ZIP's CRC.
"""

from __future__ import annotations

import os
from typing import IO, Union

import torch

from .archive_format import MANIFEST_RECORD, VERSION_RECORD, WRITER_TRAILER_RECORDS
from .errors import ArchiveError, IntegrityError, MalformedArchiveError
from .manifest import Manifest, check_trailer_record
from .storages import storage_buffer
from .zip_index import ZipIndex, check_crc, check_format_version

ArchiveSource = Union[str, os.PathLike, IO[bytes], "torch._C.PyTorchFileReader"]


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
    """Records of a ZIP archive, read with PyTorch's reader (which TorchScript needs too)."""

    def __init__(self, source: ArchiveSource, verify: bool | None = None) -> None:
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
        self._records = self.index.records() if self.index else self.zip_reader.get_all_records()
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
                raise ArchiveError(self.name, _first_line(err), name) from None
            self._checks.check(self.name, name, data)
            return data
        data = self.index.read(name, crc=False)
        # The digest first: a changed record is an IntegrityError; a CRC that disagrees with
        # verified bytes is damage to the ZIP's own bookkeeping.
        self._checks.check(self.name, name, data)
        check_crc(self.name, self.index.record(name), data)
        return data

    def read_storage(self, name: str, nbytes: int) -> torch.UntypedStorage:
        has_record = self.zip_reader.has_record(name)
        size = self.zip_reader.get_record_size(name) if has_record else None
        _check_storage_size(self.name, name, size, nbytes)
        try:
            tensor = self.zip_reader.get_storage_from_record(name, nbytes, torch.uint8)
        except RuntimeError as err:
            raise ArchiveError(self.name, _first_line(err), name) from None
        storage = tensor.untyped_storage()
        self._check_storage(name, storage, size == nbytes)
        return storage

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
    """Records of an unzipped package: the folder that holds ``.data/``."""

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


ArchiveReader = ZipArchiveReader | DirectoryArchiveReader


def open_archive(source: ArchiveSource, verify: bool | None = None) -> ArchiveReader:
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        return DirectoryArchiveReader(source, verify)
    return ZipArchiveReader(source, verify)


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
            f"not a readable package archive ({_first_line(err)}); "
            "was it written by torchpack or torch.package, and copied completely?",
        ) from None


def _check_storage_size(archive: str, record: str, size: int | None, nbytes: int) -> None:
    if size is None:
        raise MalformedArchiveError(archive, "tensor storage record is missing", record)
    if size < nbytes:
        raise MalformedArchiveError(
            archive, f"storage holds {size} bytes but its tensor needs {nbytes}", record
        )


def _is_inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
