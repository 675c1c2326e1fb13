"""A new workspace adopts the rules in exactly the README's steps, and shares its cache.

Two clones of a small monorepo at different paths outside this checkout, each with its own
copy of torchpack (brought in by the README's WORKSPACE lines), its own `.venv` (the default
interpreter: it can import torch but not torchpack, so the rules' own copy is what runs) and
its own output base, share one `--disk_cache` and nothing else. No flag and no `.bazelrc` of
ours: only what the README says.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from .conftest import copy_workspace, make_venv

ANALYZE, LINK = "TorchpackAnalyze", "TorchPackage"
PACKAGES = "*/*.pt"
TORCHPACK_PLACEHOLDER = 'path = "/path/to/torchpack",'

MONOREPO = {
    "BUILD.bazel": """
        load("@torchpack//rules:torch_package.bzl", "torch_package_test")

        # Above the model's package: Python's sys.path[0] is this folder of the source tree.
        torch_package_test(
            name = "root_pkg_test",
            srcs = ["root_pkg_test.py"],
            package = "//models:labels_pkg",
        )
    """,
    "root_pkg_test.py": """
        import torch

        from torchpack.bazel.package_test import open_package

        model = open_package().load_pickle("model", "model.pkl")
        assert type(model).__name__ == "Labeller"
        assert model(torch.ones(1, 4)).shape == (1, 2)
    """,
    "models/BUILD.bazel": """
        load("@rules_python//python:defs.bzl", "py_library")
        load("@torchpack//rules:torch_package.bzl", "torch_package")

        package(default_visibility = ["//visibility:public"])

        py_library(
            name = "labels",
            srcs = ["__init__.py", "labels.py"],
        )

        torch_package(
            name = "labels_pkg",
            entry = "models.labels:build",
            intern = ["models.**"],
            deps = [":labels"],
        )
    """,
    "models/__init__.py": "",
    "models/labels.py": """
        import torch


        class Labeller(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(4, 2)

            def forward(self, x):
                return self.linear(x)


        def build(data):
            torch.manual_seed(0)
            return Labeller().eval()
    """,
    "vision/BUILD.bazel": """
        load("@rules_python//python:defs.bzl", "py_library")
        load("@torchpack//rules:torch_package.bzl", "torch_package", "torch_package_test")

        # A src layout: Python imports src/tinyvision/model.py as tinyvision.model.
        py_library(
            name = "tinyvision",
            srcs = glob(["src/tinyvision/*.py"]),
            data = ["src/tinyvision/classes.txt"],
            imports = ["src"],
            visibility = ["//visibility:public"],
        )

        torch_package(
            name = "vision_pkg",
            entry = "tinyvision.model:build",
            intern = ["tinyvision.**"],
            deps = [":tinyvision"],
        )

        torch_package_test(
            name = "vision_pkg_test",
            srcs = ["vision_pkg_test.py"],
            package = ":vision_pkg",
        )
    """,
    "vision/src/tinyvision/__init__.py": "",
    "vision/src/tinyvision/classes.txt": "cat\ndog\nbird\n",
    "vision/src/tinyvision/model.py": """
        import importlib.resources

        import torch

        import tinyvision


        def class_names():
            return (importlib.resources.files(tinyvision) / "classes.txt").read_text().split()


        class Classifier(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.names = class_names()
                self.linear = torch.nn.Linear(4, len(self.names))

            def forward(self, x):
                return self.linear(x)


        def build(data):
            torch.manual_seed(0)
            return Classifier().eval()
    """,
    "vision/vision_pkg_test.py": """
        from torchpack.bazel.package_test import open_package

        importer = open_package()
        model = importer.load_pickle("model", "model.pkl")
        assert model.names == ["cat", "dog", "bird"]
        # Read again inside the package, through importlib.resources: classes.txt is packaged.
        assert importer.import_module("tinyvision.model").class_names() == model.names
    """,
}


def readme_workspace_lines() -> str:
    """The README's WORKSPACE block: the adoption steps, verbatim."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```starlark\n(.*?)```", readme, re.S)
    steps = [block for block in blocks if "torchpack_register_toolchains()" in block]
    assert steps, "the README has no WORKSPACE block calling torchpack_register_toolchains()"
    assert TORCHPACK_PLACEHOLDER in steps[0]
    return steps[0]


def write_monorepo(root: Path) -> None:
    """A clone of the monorepo, with its own copy of torchpack beside it."""
    torchpack = copy_workspace(root.parent / f"{root.name}-torchpack")
    root.mkdir(parents=True)
    workspace = readme_workspace_lines().replace(TORCHPACK_PLACEHOLDER, f'path = "{torchpack}",')
    (root / "WORKSPACE").write_text(workspace)
    for relative, text in MONOREPO.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    make_venv(root / ".venv")


@pytest.fixture(scope="module")
def disk_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("disk_cache")


# Each clone's server is shut down when this module is done, not at the end of the session.


@pytest.fixture(scope="module")
def clone_a(bazel_checkouts, disk_cache):
    clone = bazel_checkouts("monorepo-a", write_monorepo, torchpack_python=None)
    clone.built = clone.build(f"--disk_cache={disk_cache}", "//...", command="test")
    yield clone
    clone.shutdown()


@pytest.fixture(scope="module")
def clone_b(bazel_checkouts, disk_cache, clone_a):
    clone = bazel_checkouts("monorepo-b", write_monorepo, torchpack_python=None)
    clone.built = clone.build(f"--disk_cache={disk_cache}", "//...")
    yield clone
    clone.shutdown()


def generated_file(clone, repository: str, name: str) -> str:
    return (clone.output_base / "external" / repository / name).read_text()


def test_the_readme_steps_build_and_test_a_new_workspace(clone_a):
    # Two tests: one above its model's package, one of a src layout reading a data resource;
    # both with torchpack brought in as a repository named `torchpack`.
    assert "Executed 2 out of 2 tests: 2 tests pass." in clone_a.built.stdout
    assert sorted(clone_a.package_hashes(PACKAGES)) == [
        "models/labels_pkg.pt",
        "vision/vision_pkg.pt",
    ]
    # The src layout's modules are named as Python imports them.
    assert clone_a.built.executed(ANALYZE) == sorted(
        f"bazel-out/k8-fastbuild/bin/{package}.torchpack/{source}.json"
        for package, source in [
            ("models/labels", "models/__init__.py"),
            ("models/labels", "models/labels.py"),
            ("vision/tinyvision", "vision/src/tinyvision/__init__.py"),
            ("vision/tinyvision", "vision/src/tinyvision/model.py"),
        ]
    )
    analysis = clone_a.root / "bazel-bin/vision/tinyvision.torchpack/vision/src/tinyvision"
    assert json.loads((analysis / "model.py.json").read_text())["module_name"] == "tinyvision.model"
    # Bazel's default worker protocol: workers without any flag.
    assert {s.runner for s in clone_a.built.spawns if s.mnemonic == ANALYZE} == {"worker"}
    # The interpreter is the workspace's own .venv, not torchpack's.
    interpreter = generated_file(clone_a, "torchpack_python", "interpreter_path.txt")
    assert interpreter == str(clone_a.root / ".venv" / "bin" / "python")


def test_a_second_clone_gets_every_analysis_and_link_from_the_cache(clone_a, clone_b):
    assert clone_a.root != clone_b.root and clone_a.output_base != clone_b.output_base
    ran = [s for s in clone_a.built.spawns if s.mnemonic in (ANALYZE, LINK)]
    cached = [s for s in clone_b.built.spawns if s.mnemonic in (ANALYZE, LINK)]
    assert len(ran) == len(cached) == 6  # four analyses and two links
    assert not any(spawn.remote_cache_hit for spawn in ran)
    assert all(spawn.remote_cache_hit for spawn in cached), [
        spawn.outputs for spawn in cached if not spawn.remote_cache_hit
    ]
    hits = sum(spawn.remote_cache_hit for spawn in clone_b.built.spawns)
    assert f"{hits} remote cache hit" in clone_b.built.summary()
    assert clone_b.package_hashes(PACKAGES) == clone_a.package_hashes(PACKAGES)


def test_a_pattern_that_matches_nothing_fails_the_build_unless_allowed(clone_a):
    typo = clone_a.root / "typo"
    typo.mkdir()
    build_file = textwrap.dedent(
        """
        load("@torchpack//rules:torch_package.bzl", "torch_package")

        torch_package(
            name = "typo_pkg",
            entry = "models.labels:build",
            intern = ["models.**", "modles.**"],
            deps = ["//models:labels"],{allow_empty}
        )
        """
    )
    try:
        (typo / "BUILD.bazel").write_text(build_file.format(allow_empty=""))
        result = clone_a.bazel("build", "//typo:typo_pkg", check=False)
        assert result.returncode != 0
        assert "intern('modles.**')" in result.stderr
        assert "allow_empty = True" in result.stderr
        allowed = build_file.format(allow_empty="\n    allow_empty = True,")
        (typo / "BUILD.bazel").write_text(allowed)
        clone_a.bazel("build", "//typo:typo_pkg")
    finally:
        (typo / "BUILD.bazel").unlink()
        typo.rmdir()


def test_the_workspace_chooses_its_interpreter(clone_a):
    """`python` of torchpack_register_toolchains(), and $TORCHPACK_PYTHON over it."""
    workspace = clone_a.root / "WORKSPACE"
    original = workspace.read_text()
    fetch = ["build", "@torchpack_python//:interpreter"]
    try:
        workspace.write_text(
            original.replace(
                "torchpack_register_toolchains()",
                'torchpack_register_toolchains(python = ".venv/bin/python3")',
            )
        )
        clone_a.bazel(*fetch)
        interpreter = generated_file(clone_a, "torchpack_python", "interpreter_path.txt")
        assert interpreter == str(clone_a.root / ".venv" / "bin" / "python3")

        clone_a.torchpack_python = sys.executable
        clone_a.bazel(*fetch)
        assert generated_file(clone_a, "torchpack_python", "interpreter_path.txt") == sys.executable

        clone_a.torchpack_python = None
        workspace.write_text(
            original.replace(
                "torchpack_register_toolchains()",
                'torchpack_register_toolchains(python = "no/such/python")',
            )
        )
        result = clone_a.bazel(*fetch, check=False)
        assert result.returncode != 0
        missing = clone_a.root / "no" / "such" / "python"
        assert f"no Python interpreter at {missing} (the `python` argument" in result.stderr
    finally:
        clone_a.torchpack_python = None
        workspace.write_text(original)
