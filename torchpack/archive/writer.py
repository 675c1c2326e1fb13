"""Writing the ZIP container: records go to a temporary file that replaces the target at the end.

An export that fails, is interrupted or is killed leaves the previous archive (if any) intact
and no partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zlib
from typing import IO

import torch

from .format import FORMAT_VERSION, MANIFEST_RECORD
from .manifest import ManifestBuilder
from .storage_buffer import storage_buffer
from .zip_checksums import crc32_while, fill_in_crcs


class ArchiveWriter:
    """Appends records to a new package archive at a path or in a writable binary file."""

    def __init__(self, target: str | os.PathLike[str] | IO[bytes], manifest: bool = True) -> None:
        self._written: set[str] = set()
        self._manifest = ManifestBuilder() if manifest else None
        # CRC-32 of each record written to a path, filled into the archive by commit().
        self._crcs: dict[str, int] = {}
        self._target_path: str | None = None
        self._staging_dir: str | None = None
        if isinstance(target, (str, os.PathLike)):
            self._target_path = os.path.abspath(os.fspath(target))
            folder, file_name = os.path.split(self._target_path)
            if not file_name:
                raise ValueError(f"{target!r} names a folder; give the package a file name")
            # A private folder beside the target holds a file with the target's own name:
            # PyTorch names the archive's top folder after the file, so the bytes are exactly
            # those of a direct write, and the rename never crosses file systems.
            _remove_stale_staging(folder or ".", file_name)
            self._staging_dir = tempfile.mkdtemp(
                prefix=f"{_staging_prefix(file_name)}{os.getpid()}.", dir=folder or "."
            )
            staging_file = os.path.join(self._staging_dir, file_name)
            # Checksums are ours to compute (zip_checksums): PyTorch's are slower than the disk.
            self.zip_file = torch._C.PyTorchFileWriter(staging_file, compute_crc32=False)
            self.name = self._target_path
        else:
            self.zip_file = torch._C.PyTorchFileWriter(target)
            self.name = getattr(target, "name", "<binary>")
            self._target = target
        self.zip_file.set_min_version(FORMAT_VERSION)

    def _claim(self, name: str) -> None:
        if not hasattr(self, "zip_file"):
            raise ValueError(
                f"the package {self.name} is already closed; nothing more can be saved"
            )
        if name in self._written:
            raise ValueError(
                f"record {name!r} is already in the package {self.name}; every resource and "
                "module can be saved once"
            )
        self._written.add(name)

    def has_record(self, name: str) -> bool:
        return name in self._written

    def write(self, name: str, data: bytes | str) -> None:
        self._claim(name)
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._write_record(name, data, len(data))
        if self._target_path is not None:
            self._crcs[name] = zlib.crc32(data)
        if self._manifest is not None:
            self._manifest.add(name, data)

    def write_storage(self, name: str, storage: torch.UntypedStorage) -> None:
        """Stream a CPU storage's bytes straight from its memory into the archive."""
        self._claim(name)
        buffer = storage_buffer(storage)

        def write() -> None:
            self._write_record(name, storage, storage.nbytes())

        def write_and_checksum() -> None:
            self._crcs[name] = crc32_while(buffer, write)

        # PyTorch's writer checksums file objects itself.
        step = write if self._target_path is None else write_and_checksum
        if self._manifest is None:
            step()
        else:
            self._manifest.add_while(name, buffer, step)

    def _write_record(self, name: str, data: bytes | torch.UntypedStorage, size: int) -> None:
        try:
            self.zip_file.write_record(name, data, size)
        except RuntimeError as err:
            raise OSError(
                f"could not write record {name!r} of the package {self.name}: {err}; "
                "is the disk full or the file size limited?"
            ) from err

    def commit(self) -> None:
        """Write the manifest, finish the ZIP and put it in place of the target."""
        if self._manifest is not None:
            # Written straight into zip_file (public, as in torch.package): never seen here.
            written_directly = set(self.zip_file.get_all_written_records()) - self._written
            for record in sorted(written_directly):
                self._manifest.add_crc_only(record)
            manifest = self._manifest.text().encode()
            self._write_record(MANIFEST_RECORD, manifest, len(manifest))
        try:
            self.zip_file.write_end_of_file()
        except RuntimeError as err:
            raise OSError(
                f"could not finish the package {self.name}: {err}; is the disk full?"
            ) from err
        del self.zip_file
        if self._target_path is None:
            flush = getattr(self._target, "flush", None)
            if flush is not None:
                flush()
            return
        assert self._staging_dir is not None
        staging_file = os.path.join(self._staging_dir, os.path.basename(self._target_path))
        try:
            fill_in_crcs(staging_file, self._crcs)
            # No fsync: the rename already protects against interrupted and killed exports;
            # durability across power loss is the caller's choice and costs seconds per GiB.
            os.replace(staging_file, self._target_path)
        finally:
            shutil.rmtree(self._staging_dir, ignore_errors=True)
            self._staging_dir = None

    def abort(self) -> None:
        """Drop everything written; the target is left as it was."""
        if hasattr(self, "zip_file"):
            # Finish it explicitly, ignoring failure: PyTorch's writer otherwise finishes in its
            # destructor, and an error there (a full disk) aborts the whole process.
            with contextlib.suppress(RuntimeError):
                self.zip_file.write_end_of_file()
            del self.zip_file
        if self._staging_dir is not None:
            shutil.rmtree(self._staging_dir, ignore_errors=True)
            self._staging_dir = None


def _staging_prefix(file_name: str) -> str:
    return f".{file_name}.staging."


def _remove_stale_staging(folder: str, file_name: str) -> None:
    """Remove staging folders of earlier exports to this target whose process was killed."""
    prefix = _staging_prefix(file_name)
    for entry in os.scandir(folder):
        pid = entry.name[len(prefix) :].partition(".")[0]
        if not (entry.name.startswith(prefix) and pid.isdigit() and entry.is_dir()):
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(entry.path, ignore_errors=True)
        except PermissionError:
            pass  # alive, owned by someone else
