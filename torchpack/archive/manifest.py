"""The integrity manifest: the digest of every record, kept in the archive itself.

The exporter writes ``.data/manifest.blake3`` in ``b3sum`` format (``<hex>  <record>``, one
line per record, sorted by name), so an unzipped package can also be checked with
``b3sum -c``. Packages written before BLAKE3 carry ``.data/manifest.sha256`` (``sha256sum``
format), read the same way. torch.package's importer ignores both: ``.data/`` files are never
modules.

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

import re
from typing import TYPE_CHECKING

from ..errors import ArchiveError, IntegrityError, MalformedArchiveError
from .checksums import BLAKE3, SHA256, Buffer, digest_hex
from .format import (
    BYTEORDER_RECORD,
    MANIFEST_RECORD,
    MANIFEST_RECORDS,
    SERIALIZATION_ID_RECORD,
    SHA256_MANIFEST_RECORD,
    VERSION_RECORD,
    WRITER_TRAILER_RECORDS,
)

if TYPE_CHECKING:  # writing an archive needs no ZIP parser
    from collections.abc import Callable, Iterable

    from .zip_index import ZipIndex

CRC_ONLY = "crc32"
_LINE = re.compile(r"([0-9a-f]{64}|crc32)  (.+)")
_ALGORITHM_OF = {MANIFEST_RECORD: BLAKE3, SHA256_MANIFEST_RECORD: SHA256}


def manifest_record_in(archive: str, has_record: Callable[[str], bool]) -> str | None:
    """The name of the package's manifest record, None if it has none."""
    present = [record for record in MANIFEST_RECORDS if has_record(record)]
    if len(present) > 1:
        raise MalformedArchiveError(
            archive, f"has two manifests, {' and '.join(present)}: which one holds is ambiguous"
        )
    return present[0] if present else None


class ManifestBuilder:
    """Collects the BLAKE3 digests of the records an exporter writes."""

    def __init__(self) -> None:
        self._digests: dict[str, str] = {}

    def add(self, record: str, data: Buffer) -> None:
        self._digests[record] = digest_hex(data)

    def add_digest(self, record: str, digest: str) -> None:
        """A digest computed by the writer, beside the write (``checksums_beside_write``)."""
        self._digests[record] = digest

    def add_crc_only(self, record: str) -> None:
        """List a record written straight into PyTorch's writer, whose bytes torchpack never saw."""
        self._digests[record] = CRC_ONLY

    def text(self) -> str:
        return "".join(f"{digest}  {record}\n" for record, digest in sorted(self._digests.items()))


class Manifest:
    """The digests a package's manifest lists, and checks of records against them."""

    def __init__(self, archive: str, record: str, digests: dict[str, str], digest: str) -> None:
        self.archive = archive
        # The manifest's own record, which names the algorithm of its digests.
        self.record = record
        self.algorithm = _ALGORITHM_OF[record]
        self.digests = digests
        # The digest of the manifest itself: one value that pins every record of the package.
        self.digest = digest

    @classmethod
    def parse(cls, archive: str, record: str, data: bytes) -> Manifest:
        """The manifest ``record`` (one of ``MANIFEST_RECORDS``) whose bytes are ``data``."""
        digests: dict[str, str] = {}
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedArchiveError(archive, "manifest is not UTF-8", record) from None
        algorithm = _ALGORITHM_OF[record]
        for number, line in enumerate(text.splitlines(), 1):
            match = _LINE.fullmatch(line)
            if match is None:
                raise MalformedArchiveError(
                    archive, f"manifest line {number} is not '<{algorithm}>  <record>'", record
                )
            digest, listed = match.groups()
            if listed in digests:
                raise MalformedArchiveError(archive, f"manifest lists {listed!r} twice", record)
            digests[listed] = digest
        return cls(archive, record, digests, digest_hex(data, algorithm))

    def crc_only(self, record: str) -> bool:
        return self.digests.get(record) == CRC_ONLY

    def check(self, record: str, data: Buffer) -> None:
        """Compare ``data`` with the record's digest (``crc32`` records: the reader's CRC)."""
        if not self.crc_only(record):
            self.check_digest(record, digest_hex(data, self.algorithm))

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
                f"{self.algorithm} is {actual}, the manifest says {expected}: the record was "
                "changed after the package was written",
                record,
            )

    def coverage_problems(self, records: Iterable[str]) -> list[IntegrityError]:
        """Records the manifest does not list, and listed records that are gone."""
        present = set(records)
        problems = [
            IntegrityError(self.archive, "record is not in the manifest", record)
            for record in sorted(present - set(self.digests) - set(WRITER_TRAILER_RECORDS))
            if record != self.record
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
    manifest_record = manifest_record_in(index.name, index.has_record)
    if manifest_record is None:
        raise IntegrityError(
            index.name,
            "the package has no integrity manifest (it was written by torch.package or an "
            "older torchpack); there is nothing to verify against",
            MANIFEST_RECORD,
        )
    manifest = Manifest.parse(index.name, manifest_record, index.read(manifest_record))
    problems: list[ArchiveError] = list(manifest.coverage_problems(index.records()))
    for record in index.records():
        if record == manifest_record:
            continue
        try:
            if record in WRITER_TRAILER_RECORDS:
                check_trailer_record(index.name, record, index.read(record))
            elif manifest.crc_only(record):
                index.check_crc(record)
            elif record in manifest.digests:
                manifest.check_digest(record, index.digest(record, manifest.algorithm))
        except ArchiveError as err:
            problems.append(err)
    return manifest, problems
