"""Signs that a package without an integrity manifest was changed after it was written.

Without a manifest, the ZIP's CRCs are all there is, and whoever edits a record can recompute
them. A package rebuilt from scratch cannot be told from a genuine one, but a careless edit
leaves traces, which loading reports as an :class:`~torchpack.errors.IntegrityWarning`:

- the layout is torchpack's (its extern modules listed sorted), yet the manifest torchpack
  always writes (unless told ``integrity_manifest=False``) is missing;
- ``.data/serialization_id`` ends in the combined CRC of the records PyTorch's writer wrote
  before it, and the records no longer give it.
"""

from __future__ import annotations

from .format import EXTERN_MODULES_RECORD, SERIALIZATION_ID_RECORD
from .zip_checksums import hash_combine
from .zip_index import ZipIndex

# The id's last 20 characters are the checksum, in decimal.
_CHECKSUM_DIGITS = 20


def tamper_signs(records: list[str], read: object, index: ZipIndex | None) -> list[str]:
    """Why the package looks changed since it was written (empty if it does not)."""
    signs = []
    if EXTERN_MODULES_RECORD in records:
        externs = read(EXTERN_MODULES_RECORD).decode("utf-8", "replace").splitlines()  # type: ignore[operator]
        if len(externs) >= 2 and externs == sorted(set(externs)):
            signs.append(
                "its layout is torchpack's, which writes a manifest unless exported with "
                "integrity_manifest=False"
            )
    if index is not None and index.has_record(SERIALIZATION_ID_RECORD):
        if not _seal_matches(index):
            signs.append(
                f"{SERIALIZATION_ID_RECORD} does not match the records: they changed after "
                "PyTorch's writer finished"
            )
    return signs


def _seal_matches(index: ZipIndex) -> bool:
    """Whether the records' CRCs still combine to the checksum PyTorch's writer sealed."""
    combined = 0
    for name in index.records():
        if name == SERIALIZATION_ID_RECORD:
            break
        entry = index.record(name)
        if entry.size:  # PyTorch folds in the records that have bytes
            combined = hash_combine(combined, entry.crc)
    sealed = index.read(SERIALIZATION_ID_RECORD)[-_CHECKSUM_DIGITS:]
    return sealed == b"%020d" % combined
