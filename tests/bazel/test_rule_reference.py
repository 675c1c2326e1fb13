"""The README's rule reference is generated from the rules' own docs, and kept up to date."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from torchpack.bazel.rule_reference import (
    PUBLIC_FILES,
    ReferenceError,
    reference,
    replace_reference,
)


def test_the_readme_reference_matches_the_rules_docs():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    generated = reference(REPO_ROOT)
    assert replace_reference(readme, generated) == readme, (
        "README.md's rule reference is out of date: run "
        "`python -m torchpack.bazel.rule_reference --write README.md`"
    )


def test_every_public_rule_macro_and_provider_is_in_the_reference():
    generated = reference(REPO_ROOT)
    for name in [
        "torchpack_dependencies",
        "torchpack_register_toolchains",
        "torch_package",
        "torch_package_test",
        "TorchPackageInfo",
        "ModuleAnalysisInfo",
        "torchpack.interpreter",
    ]:
        assert f"`{name}" in generated, name
    assert "| `allow_empty` | boolean | `False` |" in generated
    assert "`_python`" not in generated  # private attributes stay out


def write_rules(root: Path, torch_package_bzl: str) -> Path:
    for path in PUBLIC_FILES:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text('"""Empty."""\n')
    (root / "rules/torch_package.bzl").write_text(textwrap.dedent(torch_package_bzl))
    return root


def test_an_attribute_without_doc_is_an_error(tmp_path):
    root = write_rules(
        tmp_path,
        """
        '''Public.'''
        def _impl(ctx):
            pass
        thing = rule(implementation = _impl, doc = "A thing.", attrs = {"size": attr.int()})
        """,
    )
    with pytest.raises(ReferenceError, match="attribute size has no doc"):
        reference(root)


def test_users_load_only_the_public_files():
    """The README's examples and this repository's BUILD files never load rules/private/."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    build_files = [*REPO_ROOT.glob("examples/**/BUILD.bazel"), REPO_ROOT / "WORKSPACE"]
    for text in [readme, *(path.read_text() for path in build_files)]:
        assert not re.search(r"load\([\"'][^\"']*rules/private", text)
