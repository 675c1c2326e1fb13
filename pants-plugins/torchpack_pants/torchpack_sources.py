"""torchpack's own source, from the checkout this plugin sits in, as inputs of processes.

Processes import torchpack from these files (not from the interpreter's site-packages), as the
Bazel rules use their repository's copy: the interpreter needs only torch, and a change to
torchpack reruns what it affects. The analyses get only the files their torch-free analyzer
imports: the `analyzer` filegroup of torchpack's BUILD.bazel, the one list of them, which
tests/bazel/test_analyzer_files.py keeps complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestSubset,
    FileContent,
    GlobMatchErrorBehavior,
    PathGlobs,
)
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

# pants-plugins/torchpack_pants/torchpack_sources.py -> the checkout.
CHECKOUT = Path(__file__).resolve().parents[2]
# The folder of every sandbox that holds torchpack (its parent folder, on PYTHONPATH).
SANDBOX_FOLDER = "__torchpack__"


class TorchpackCheckoutError(Exception):
    """The plugin does not sit in a torchpack checkout."""


@dataclass(frozen=True)
class TorchpackSources:
    everything: Digest  # torchpack/**: what the link and the tests import
    analyzer: Digest  # what `python -S -m torchpack.bazel.analyze` imports


def analyzer_files(build_file: str) -> tuple[str, ...]:
    """The `srcs` of the `analyzer` filegroup in the text of torchpack's BUILD.bazel."""
    block = re.search(r'filegroup\(\s*name = "analyzer",\s*srcs = \[(.*?)\]', build_file, re.S)
    if block is None:
        raise TorchpackCheckoutError(
            f"{CHECKOUT / 'BUILD.bazel'} has no `analyzer` filegroup: torchpack_pants must sit "
            "in a torchpack checkout, at pants-plugins/torchpack_pants."
        )
    return tuple(re.findall(r'"([^"]+\.py)"', block.group(1)))


def _read_checkout() -> tuple[tuple[FileContent, ...], tuple[str, ...]]:
    package = CHECKOUT / "torchpack"
    if not (package / "__init__.py").is_file():
        raise TorchpackCheckoutError(
            f"no torchpack package at {package}: torchpack_pants must sit in a torchpack "
            "checkout, at pants-plugins/torchpack_pants (put that checkout's pants-plugins "
            "folder on `pythonpath` in pants.toml)."
        )
    files = sorted(
        path
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    contents = tuple(
        FileContent(path.relative_to(CHECKOUT).as_posix(), path.read_bytes()) for path in files
    )
    return contents, analyzer_files((CHECKOUT / "BUILD.bazel").read_text(encoding="utf-8"))


@rule(desc="Read torchpack's source", level=LogLevel.DEBUG)
async def torchpack_sources() -> TorchpackSources:
    contents, analyzer = _read_checkout()
    everything = await Get(Digest, CreateDigest(contents))
    analyzer_digest = await Get(
        Digest,
        DigestSubset(
            everything,
            PathGlobs(
                analyzer,
                glob_match_error_behavior=GlobMatchErrorBehavior.error,
                description_of_origin=f"the `analyzer` filegroup of {CHECKOUT / 'BUILD.bazel'}",
            ),
        ),
    )
    return TorchpackSources(everything, analyzer_digest)


def rules() -> list:
    return collect_rules()
