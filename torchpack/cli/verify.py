"""``torchpack verify PKG``: check every record against the package's integrity manifest."""

from __future__ import annotations

import argparse

from ..archive.manifest import verify_index
from ..archive.zip_index import ZipIndex


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", help="package archive (.pt) to verify")


def run(args: argparse.Namespace) -> int:
    index = ZipIndex(args.package)
    manifest, problems = verify_index(index)
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        return 1
    crc_only = sum(manifest.crc_only(record) for record in manifest.digests)
    print(
        f"OK {index.name}: {len(manifest.digests) - crc_only} records match their "
        f"{manifest.algorithm}"
        + (
            f", {crc_only} written straight into exporter.zip_file match their CRC-32"
            if crc_only
            else ""
        )
    )
    print(f"manifest {manifest.algorithm} {manifest.digest} (pin it to detect a rewritten package)")
    return 0
