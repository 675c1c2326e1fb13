"""Reading records from a package: a ZIP archive or an unzipped folder."""

from __future__ import annotations

import os
from typing import IO, Union

import torch

from .archive_format import VERSION_RECORD
from .errors import ArchiveError

ArchiveSource = Union[str, os.PathLike, IO[bytes], "torch._C.PyTorchFileReader"]


class ZipArchiveReader:
    """Records of a ZIP archive, read with PyTorch's reader (which TorchScript needs too)."""

    def __init__(self, source: ArchiveSource) -> None:
        if isinstance(source, torch._C.PyTorchFileReader):
            self.name = "<pytorch_file_reader>"
            self.zip_reader = source
        else:
            self.name, self.zip_reader = _open_zip(source)
        self._records = self.zip_reader.get_all_records()

    def records(self) -> list[str]:
        return list(self._records)

    def has_record(self, name: str) -> bool:
        return self.zip_reader.has_record(name)

    def read(self, name: str) -> bytes:
        if not self.zip_reader.has_record(name):
            raise ArchiveError(self.name, "no such record", name)
        try:
            return self.zip_reader.get_record(name)
        except RuntimeError as err:
            raise ArchiveError(self.name, _first_line(err), name) from None

    def read_storage(self, name: str, nbytes: int) -> torch.UntypedStorage:
        has_record = self.zip_reader.has_record(name)
        size = self.zip_reader.get_record_size(name) if has_record else None
        _check_storage_size(self.name, name, size, nbytes)
        try:
            tensor = self.zip_reader.get_storage_from_record(name, nbytes, torch.uint8)
        except RuntimeError as err:
            raise ArchiveError(self.name, _first_line(err), name) from None
        return tensor.untyped_storage()


class DirectoryArchiveReader:
    """Records of an unzipped package: the folder that holds ``.data/``."""

    def __init__(self, folder: str | os.PathLike) -> None:
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
            for file_name in sorted(file_names):
                path = file_name if relative == "." else f"{relative}/{file_name}"
                records.append(path.replace(os.sep, "/"))
        self._records = records

    def _path(self, name: str) -> str:
        path = os.path.realpath(os.path.join(self.root, *name.split("/")))
        if os.path.commonpath([path, self.root]) != self.root:
            raise ArchiveError(self.name, "record points outside the package folder", name)
        return path

    def records(self) -> list[str]:
        return list(self._records)

    def has_record(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def read(self, name: str) -> bytes:
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ArchiveError(self.name, "no such record", name) from None

    def read_storage(self, name: str, nbytes: int) -> torch.UntypedStorage:
        path = self._path(name)
        size = os.path.getsize(path) if os.path.isfile(path) else None
        _check_storage_size(self.name, name, size, nbytes)
        return torch.UntypedStorage.from_file(path, False, nbytes)


ArchiveReader = ZipArchiveReader | DirectoryArchiveReader


def open_archive(source: ArchiveSource) -> ArchiveReader:
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        return DirectoryArchiveReader(source)
    return ZipArchiveReader(source)


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
        raise ArchiveError(archive, "tensor storage record is missing", record)
    if size < nbytes:
        raise ArchiveError(
            archive, f"storage holds {size} bytes but its tensor needs {nbytes}", record
        )


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
