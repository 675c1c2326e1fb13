"""The integrity manifest: the sha256 of every record, kept in the archive itself.

The exporter writes ``.data/manifest.sha256`` in ``sha256sum`` format (``<hex>  <record>``, one
line per record, sorted by name), so an unzipped package can also be checked with
``sha256sum -c``. torch.package's importer ignores it: ``.data/`` files are never modules.

The records PyTorch's writer adds when it closes the archive (``.data/version``, ``byteorder``,
``.data/serialization_id``) come after the manifest; they are checked by their content rules.
Records written straight into ``exporter.zip_file`` (PyTorch's writer, public for
torch.package compatibility) never pass through torchpack's hands: the manifest lists them as
``crc32  <record>``, pinning their names, and their bytes are checked against the CRC-32
PyTorch computed while writing them.

The manifest detects damage and tampering with records. It cannot tell a package rewritten
from scratch, manifest included, from a genuine one: pin :attr:`Manifest.digest` (printed by
``torchpack verify``) where the package comes from to cover that.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable

from ..errors import ArchiveError, IntegrityError, MalformedArchiveError
from .beside_write import Buffer, compute_beside_write
from .format import (
    BYTEORDER_RECORD,
    MANIFEST_RECORD,
    SERIALIZATION_ID_RECORD,
    VERSION_RECORD,
    WRITER_TRAILER_RECORDS,
)
from .zip_index import ZipIndex

CRC_ONLY = "crc32"
_LINE = re.compile(r"([0-9a-f]{64}|crc32)  (.+)")


def sha256_hex(data: Buffer) -> str:
    return hashlib.sha256(data).hexdigest()


class ManifestBuilder:
    """Collects the digests of the records an exporter writes; hashes big ones in parallel."""

    def __init__(self) -> None:
        self._digests: dict[str, str] = {}

    def add(self, record: str, data: Buffer) -> None:
        self._digests[record] = sha256_hex(data)

    def add_while(self, record: str, data: Buffer, write: Callable[[], None]) -> None:
        """Hash ``data`` as ``record`` while ``write()`` runs, then wait for the digest."""
        self._digests[record] = compute_beside_write(data, sha256_hex, write)

    def add_crc_only(self, record: str) -> None:
        """List a record written straight into PyTorch's writer, whose bytes torchpack never saw."""
        self._digests[record] = CRC_ONLY

    def text(self) -> str:
        return "".join(f"{digest}  {record}\n" for record, digest in sorted(self._digests.items()))


class Manifest:
    """The digests a package's manifest lists, and checks of records against them."""

    def __init__(self, archive: str, digests: dict[str, str], digest: str) -> None:
        self.archive = archive
        self.digests = digests
        # sha256 of the manifest itself: one value that pins every record of the package.
        self.digest = digest

    @classmethod
    def parse(cls, archive: str, data: bytes) -> Manifest:
        digests: dict[str, str] = {}
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedArchiveError(archive, "manifest is not UTF-8", MANIFEST_RECORD) from None
        for number, line in enumerate(text.splitlines(), 1):
            match = _LINE.fullmatch(line)
            if match is None:
                raise MalformedArchiveError(
                    archive, f"manifest line {number} is not '<sha256>  <record>'", MANIFEST_RECORD
                )
            digest, record = match.groups()
            if record in digests:
                raise MalformedArchiveError(
                    archive, f"manifest lists {record!r} twice", MANIFEST_RECORD
                )
            digests[record] = digest
        return cls(archive, digests, sha256_hex(data))

    def crc_only(self, record: str) -> bool:
        return self.digests.get(record) == CRC_ONLY

    def check(self, record: str, data: Buffer) -> None:
        """Compare ``data`` with the record's sha256 (``crc32`` records: the reader's CRC)."""
        if not self.crc_only(record):
            self.check_digest(record, sha256_hex(data))

    def check_digest(self, record: str, actual: str) -> None:
        expected = self.digests.get(record)
        if expected is None:
            raise IntegrityError(
                self.archive,
                "record is not in the manifest: it was added after the package was written",
                record,
            )
        if actual != expected:
            raise IntegrityError(
                self.archive,
                f"sha256 is {actual}, the manifest says {expected}: the record was changed "
                "after the package was written",
                record,
            )

    def coverage_problems(self, records: Iterable[str]) -> list[IntegrityError]:
        """Records the manifest does not list, and listed records that are gone."""
        present = set(records)
        problems = [
            IntegrityError(self.archive, "record is not in the manifest", record)
            for record in sorted(present - set(self.digests) - set(WRITER_TRAILER_RECORDS))
            if record != MANIFEST_RECORD
        ]
        problems.extend(
            IntegrityError(self.archive, "the manifest lists this record, but it is missing", r)
            for r in sorted(set(self.digests) - present)
        )
        return problems


def check_trailer_record(archive: str, record: str, data: bytes) -> None:
    """Content rules for the records PyTorch's writer adds after the manifest."""
    text = data.decode("ascii", errors="replace").strip()
    valid = {
        VERSION_RECORD: text.isdigit(),
        BYTEORDER_RECORD: text in ("little", "big"),
        SERIALIZATION_ID_RECORD: text.isdigit(),
    }[record]
    if not valid:
        raise IntegrityError(archive, f"unexpected content {text[:40]!r}", record)


def verify_index(index: ZipIndex) -> tuple[Manifest, list[ArchiveError]]:
    """Check every record of a validated archive against its manifest; all problems found."""
    if not index.has_record(MANIFEST_RECORD):
        raise IntegrityError(
            index.name,
            "the package has no integrity manifest (it was written by torch.package or an "
            "older torchpack); there is nothing to verify against",
            MANIFEST_RECORD,
        )
    manifest = Manifest.parse(index.name, index.read(MANIFEST_RECORD))
    problems: list[ArchiveError] = list(manifest.coverage_problems(index.records()))
    for record in index.records():
        if record == MANIFEST_RECORD:
            continue
        try:
            if record in WRITER_TRAILER_RECORDS:
                check_trailer_record(index.name, record, index.read(record))
            elif manifest.crc_only(record):
                index.check_crc(record)
            elif record in manifest.digests:
                manifest.check_digest(record, index.sha256(record))
        except ArchiveError as err:
            problems.append(err)
    return manifest, problems
