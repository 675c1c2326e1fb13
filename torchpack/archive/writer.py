"""Writing the ZIP container: records go to a temporary file that replaces the target at the end.

An export that fails, is interrupted or is killed leaves the previous archive (if any) intact
and no partial file behind. A symbolic link as the target is written through (the file it
leads to is replaced, the link stays); a target a rename cannot replace (a device, FIFO,
socket, folder or bind-mounted file) is refused before any work; a replaced file keeps its
permission bits.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import stat
import tempfile
from typing import IO

import torch

from .checksums import checksums_beside_write, crc32
from .format import FORMAT_VERSION, MANIFEST_RECORD, record_name_problem
from .manifest import ManifestBuilder
from .progress import Progress
from .storage_buffer import storage_buffer
from .zip_checksums import fill_in_crcs


class ArchiveWriter:
    """Appends records to a new package archive at a path or in a writable binary file."""

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[bytes],
        manifest: bool = True,
        progress: bool | None = None,
    ) -> None:
        """``progress``: show records and bytes written on a terminal (see ``Progress``)."""
        self._written: set[str] = set()
        self._manifest = ManifestBuilder() if manifest else None
        # CRC-32 of each record written to a path, filled into the archive by commit().
        self._crcs: dict[str, int] = {}
        self._target_path: str | None = None
        self._staging_dir: str | None = None
        self._target_mode: int | None = None
        if isinstance(target, (str, os.PathLike)):
            given = os.path.abspath(os.fspath(target))
            file_name = os.path.basename(given)
            if not file_name:
                raise ValueError(f"{target!r} names a folder; give the package a file name")
            # Through symbolic links: the file a link leads to is replaced, the link stays.
            self._target_path = os.path.realpath(given)
            self._target_mode = _replaceable_mode(self._target_path, given)
            folder = os.path.dirname(self._target_path)
            # A private folder beside the target holds a file with the name the caller gave:
            # PyTorch names the archive's top folder after the file, so the bytes are exactly
            # those of a direct write, and the rename never crosses file systems.
            _remove_stale_staging(folder, file_name)
            self._staging_dir = tempfile.mkdtemp(
                prefix=f"{_staging_prefix(file_name)}{os.getpid()}.", dir=folder
            )
            self._staging_file = os.path.join(self._staging_dir, file_name)
            # Checksums are ours to compute (zip_checksums): PyTorch's are slower than the disk.
            self.zip_file = torch._C.PyTorchFileWriter(self._staging_file, compute_crc32=False)
            self.name = given
        else:
            self.zip_file = torch._C.PyTorchFileWriter(target)
            self.name = getattr(target, "name", "<binary>")
            self._target = target
        self._progress = Progress(self.name, progress)
        folder = self.zip_file.archive_name()
        problem = record_name_problem(folder)
        if problem is not None:
            self.abort()
            raise ValueError(
                f"the package {self.name} would be written under the folder {folder!r}, named "
                f"after the file, which {problem}; choose another file name"
            )
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
            self._crcs[name] = crc32(data)
        if self._manifest is not None:
            self._manifest.add(name, data)

    def write_storage(self, name: str, storage: torch.UntypedStorage) -> None:
        """Stream a CPU storage's bytes straight from its memory into the archive, its CRC-32
        and digest computed from the same memory in a second thread meanwhile."""
        self._claim(name)

        def write() -> None:
            self._write_record(name, storage, storage.nbytes())

        # PyTorch's writer checksums file objects itself.
        needs_crc = self._target_path is not None
        if not needs_crc and self._manifest is None:
            write()
            return
        crc, digest = checksums_beside_write(
            storage_buffer(storage), write, digest=self._manifest is not None
        )
        if needs_crc:
            self._crcs[name] = crc
        if self._manifest is not None and digest is not None:
            self._manifest.add_digest(name, digest)

    def _write_record(self, name: str, data: bytes | torch.UntypedStorage, size: int) -> None:
        try:
            self.zip_file.write_record(name, data, size)
            self._progress.wrote(size)
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
        self._progress.finish()
        if self._target_path is None:
            flush = getattr(self._target, "flush", None)
            if flush is not None:
                flush()
            return
        assert self._staging_dir is not None
        staging_file = self._staging_file
        try:
            fill_in_crcs(staging_file, self._crcs)
            if self._target_mode is not None:
                os.chmod(staging_file, self._target_mode)  # a re-export keeps the old mode
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
            self._progress.finish()
        if self._staging_dir is not None:
            shutil.rmtree(self._staging_dir, ignore_errors=True)
            self._staging_dir = None


def _replaceable_mode(path: str, given: str) -> int | None:
    """The permission bits of the regular file at ``path`` that the export will replace
    (None if there is none yet); refuses, before any work, what a rename cannot replace."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{given!r} is a folder; give the package a file name")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(
            f"{given!r} is not a regular file (a device, FIFO or socket); torchpack writes a "
            "package to a new file and renames it into place, which would replace it: choose "
            "another path"
        )
    if _is_mount_point(path):
        raise ValueError(
            f"{given!r} is a mount point (a bind-mounted file): a rename cannot replace it; "
            "export to another path and copy the file over it"
        )
    return stat.S_IMODE(info.st_mode)


def _is_mount_point(path: str) -> bool:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            lines = mounts.read().splitlines()
    except OSError:
        return os.path.ismount(path)
    # The fifth field is the mount point, with spaces and the like escaped as \ooo.
    unescape = functools.partial(re.compile(r"\\([0-7]{3})").sub, lambda m: chr(int(m[1], 8)))
    return any(
        len(fields) > 4 and unescape(fields[4]) == path
        for fields in (line.split(" ") for line in lines)
    )


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
