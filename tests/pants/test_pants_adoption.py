"""A new workspace adopts the Pants backend in exactly the README's steps, and shares its cache.

Two clones of a small monorepo at different paths outside this checkout, each with its own
copy of torchpack (its `pants-plugins` folder on `pythonpath`, as the README's pants.toml says),
its own `.venv` (the default interpreter: it can import torch but not torchpack, so the
plugin's own copy is what runs) and its own `dist/`, share Pants' cache and nothing else. The
monorepo holds a model whose data a build step (`adhoc_tool`) writes and whose test sits above
its package, a src-layout library with a data resource, and a copy of this repository's
examples with Pants BUILD files: their archives are byte-identical to the Bazel rules'.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bazel.conftest import Checkout, copy_workspace, make_venv
from bazel.test_adoption import MONOREPO as BAZEL_MONOREPO
from conftest import REPO_ROOT

from .conftest import OFFLINE_SETTINGS, copy_torchpack

TORCHPACK_PLACEHOLDER = '"/path/to/torchpack/pants-plugins"'
INTERPRETER = "Describe torchpack's interpreter"
ANALYSIS = "Analysing the imports of "
# Pants looks for the binaries it runs (`sh` for the build step, `bash`) anew every run.
BINARY_SEARCH = ("Searching for `", "Test binary /")
EXAMPLE_PACKAGES = ["classifier_pkg", "resnet_pkg", "tinylm_pkg"]
TESTS = [
    "//:root_pkg_test",
    "examples/models:classifier_pkg_test",
    "examples/models:resnet_pkg_test",
    "examples/models:tinylm_pkg_test",
    "vision:vision_pkg_test",
]
# Every Python file of every package's code, analysed once however many packages use it.
SOURCES = [
    "examples/__init__.py",
    "examples/models/__init__.py",
    "examples/models/classifier.py",
    "examples/models/recorded.py",
    "examples/models/resnet.py",
    "examples/models/tinylm/__init__.py",
    "examples/models/tinylm/model.py",
    "examples/models/tinylm/tokenizer.py",
    "examples/models/training/__init__.py",
    "examples/models/training/augment.py",
    "models/__init__.py",
    "models/labels.py",
    "vision/src/tinyvision/__init__.py",
    "vision/src/tinyvision/model.py",
]
LINKS = {
    "examples/models:classifier_pkg": "examples.models.classifier:build",
    "examples/models:resnet_pkg": "examples.models.resnet:build",
    "examples/models:tinylm_pkg": "examples.models.tinylm.model:build",
    "models:labels_pkg": "models.labels:build",
    "vision:vision_pkg": "tinyvision.model:build",
}

MONOREPO = {
    "BUILD": """
        # torch comes from the interpreter of [torchpack].python: this only tells Pants' import
        # inference who provides it.
        python_requirement(name="torch", requirements=["torch"])

        # Above the model's package.
        torch_package_test(
            name="root_pkg_test",
            source="root_pkg_test.py",
            package="models:labels_pkg",
        )
    """,
    "root_pkg_test.py": """
        import torch

        from torchpack.bazel.package_test import open_package

        model = open_package().load_pickle("model", "model.pkl")
        assert type(model).__name__ == "Labeller"
        assert model.names == ["cat", "dog"]
        assert model(torch.ones(1, 4)).shape == (1, 2)
    """,
    "models/BUILD": """
        python_sources()

        system_binary(name="sh", binary_name="sh")

        # A build step: the label names the entry reads.
        adhoc_tool(
            name="names",
            runnable=":sh",
            args=["-c", "printf 'cat\\\\ndog\\\\n' > names.txt"],
            output_files=["names.txt"],
        )

        torch_package(
            name="labels_pkg",
            entry="models.labels:build",
            data=[":names"],
            intern=["models.**"],
        )
    """,
    "models/__init__.py": "",
    "models/labels.py": """
        from pathlib import Path

        import torch


        class Labeller(torch.nn.Module):
            def __init__(self, names):
                super().__init__()
                self.names = names
                self.linear = torch.nn.Linear(4, len(names))

            def forward(self, x):
                return self.linear(x)


        def build(data):
            torch.manual_seed(0)
            return Labeller(Path(data["models/names.txt"]).read_text().split()).eval()
    """,
    "vision/BUILD": """
        # A src layout: Python imports src/tinyvision/model.py as tinyvision.model.
        python_sources(
            name="tinyvision",
            sources=["src/tinyvision/*.py"],
            dependencies=[":classes"],
        )

        resource(name="classes", source="src/tinyvision/classes.txt")

        torch_package(
            name="vision_pkg",
            entry="tinyvision.model:build",
            intern=["tinyvision.**"],
        )

        torch_package_test(
            name="vision_pkg_test",
            source="vision_pkg_test.py",
            package=":vision_pkg",
        )
    """,
    # The src-layout library of the Bazel adoption test, its sources and its test script.
    **{
        path: text
        for path, text in BAZEL_MONOREPO.items()
        if path.startswith("vision/") and not path.endswith("BUILD.bazel")
    },
    "examples/BUILD": "python_sources()\n",
    # The same packages as examples/models/BUILD.bazel.
    "examples/models/BUILD": """
        python_sources()

        python_sources(name="tinylm", sources=["tinylm/*.py"], dependencies=[":vocab"])

        resource(name="vocab", source="tinylm/vocab.txt")

        python_sources(name="training", sources=["training/*.py"])

        # Written by `python -m examples.models.make_resnet_checkpoint`, as Bazel's genrule does.
        file(name="resnet_weights", source="resnet18.ckpt")

        torch_package(
            name="resnet_pkg",
            entry="examples.models.resnet:build",
            data=[":resnet_weights"],
            extern=["torch.**"],
            intern=["examples.models.**"],
        )

        torch_package_test(
            name="resnet_pkg_test",
            source="resnet_pkg_test.py",
            package=":resnet_pkg",
        )

        torch_package(
            name="tinylm_pkg",
            entry="examples.models.tinylm.model:build",
            intern=["examples.models.**"],
        )

        torch_package_test(
            name="tinylm_pkg_test",
            source="tinylm_pkg_test.py",
            package=":tinylm_pkg",
        )

        torch_package(
            name="classifier_pkg",
            entry="examples.models.classifier:build",
            intern=["examples.models.**"],
            mock=["examples.models.training.**"],
        )

        torch_package_test(
            name="classifier_pkg_test",
            source="classifier_pkg_test.py",
            package=":classifier_pkg",
        )
    """,
}


def readme_pants_toml() -> str:
    """The README's pants.toml block: the adoption steps, verbatim."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    steps = [block for block in blocks if '"torchpack_pants"' in block]
    assert steps, "the README has no pants.toml block enabling torchpack_pants"
    assert TORCHPACK_PLACEHOLDER in steps[0]
    return steps[0]


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory) -> Path:
    """The checkpoint that examples/models/BUILD.bazel's genrule writes, written the same way."""
    path = tmp_path_factory.mktemp("weights") / "resnet18.ckpt"
    subprocess.run(
        [sys.executable, "-m", "examples.models.make_resnet_checkpoint", str(path)],
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1"),
        check=True,
    )
    return path


def monorepo_writer(resnet_weights: Path):
    def write_monorepo(root: Path) -> None:
        """A clone of the monorepo, with its own copy of torchpack beside it."""
        torchpack = copy_torchpack(root.parent / f"{root.name}-torchpack")
        # The example models (not the demo scripts beside them).
        shutil.copytree(
            REPO_ROOT / "examples/models",
            root / "examples/models",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "BUILD.bazel"),
        )
        shutil.copy2(REPO_ROOT / "examples/__init__.py", root / "examples/__init__.py")
        shutil.copy2(resnet_weights, root / "examples/models/resnet18.ckpt")
        plugins = f'"{torchpack / "pants-plugins"}"'
        settings = readme_pants_toml().replace(TORCHPACK_PLACEHOLDER, plugins)
        (root / "pants.toml").write_text(settings + "\n" + OFFLINE_SETTINGS.read_text())
        for relative, text in MONOREPO.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip())
        make_venv(root / ".venv")

    return write_monorepo


@pytest.fixture(scope="module")
def clone_a(pants_workspaces, resnet_weights):
    clone = pants_workspaces("monorepo-a", monorepo_writer(resnet_weights))
    clone.built = clone.pants("package", "test", "::")
    return clone


@pytest.fixture(scope="module")
def clone_b(pants_workspaces, resnet_weights, clone_a):
    clone = pants_workspaces("monorepo-b", monorepo_writer(resnet_weights))
    clone.built = clone.pants("package", "test", "::")
    return clone


@pytest.fixture(scope="module")
def bazel_hashes(tmp_path_factory) -> dict[str, str]:
    """sha256 of the example archives built by the Bazel rules, in a copy of this checkout."""
    base = tmp_path_factory.mktemp("bazel")
    checkout = Checkout(copy_workspace(base / "repo"), base / "out", base / "user_root")
    try:
        checkout.bazel("build", *(f"//examples/models:{name}" for name in EXAMPLE_PACKAGES))
        return checkout.package_hashes()
    finally:
        checkout.shutdown()


def archive_hashes(clone) -> dict[str, str]:
    """sha256 of the archives in the clone's dist/, by their path there."""
    dist = clone.root / "dist"
    return {
        str(path.relative_to(dist)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(dist.rglob("*.pt"))
    }


def ran_besides_binary_searches(run) -> list[str]:
    return [d for d in run.ran() if not d.startswith(BINARY_SEARCH)]


def analyses(run) -> list[str]:
    return [d.removeprefix(ANALYSIS) for d in run.ran() if d.startswith(ANALYSIS)]


def links(run) -> list[str]:
    return [d for d in run.ran() if d.startswith("Packaging ")]


def test_the_readme_steps_build_and_test_a_new_workspace(clone_a):
    output = clone_a.built.output
    for test in TESTS:
        assert f"✓ {test} succeeded" in output, output[-4000:]
    assert sorted(archive_hashes(clone_a)) == [
        "examples.models/classifier_pkg.pt",
        "examples.models/resnet_pkg.pt",
        "examples.models/tinylm_pkg.pt",
        "models/labels_pkg.pt",
        "vision/vision_pkg.pt",
    ]
    # One analysis per source file, shared by every package that uses it; one link per package,
    # which parsed no source itself.
    assert analyses(clone_a.built) == SOURCES
    assert links(clone_a.built) == sorted(f"Packaging {a} from {e}" for a, e in LINKS.items())
    assert output.count("analysed here: none") == len(LINKS), output
    # The build step ran, and the interpreter was asked once what it is.
    assert "Running the `adhoc_tool` at models:names" in output
    assert clone_a.built.ran().count(f"{INTERPRETER} {clone_a.root}/.venv/bin/python") == 1


def test_archives_are_byte_identical_to_the_bazel_rules(clone_a, bazel_hashes):
    hashes = archive_hashes(clone_a)
    assert bazel_hashes == {
        f"examples/models/{name}.pt": hashes[f"examples.models/{name}.pt"]
        for name in EXAMPLE_PACKAGES
    }


def test_a_second_clone_runs_nothing_but_gets_everything_from_the_cache(clone_a, clone_b):
    assert clone_a.root != clone_b.root
    # Only the question Pants asks every run: what the interpreter is.
    assert ran_besides_binary_searches(clone_b.built) == [
        f"{INTERPRETER} {clone_b.root}/.venv/bin/python"
    ]
    cached = [p for p in clone_b.built.processes if p.source != "Ran"]
    assert len(analyses(clone_a.built)) + len(links(clone_a.built)) + len(TESTS) < len(cached)
    assert archive_hashes(clone_b) == archive_hashes(clone_a)


def test_a_one_file_edit_reruns_that_files_analysis_and_its_link_only(clone_a):
    source = clone_a.root / "examples/models/classifier.py"
    source.write_text(source.read_text() + "\n# an edit\n")
    rebuilt = clone_a.pants("package", "::")
    assert ran_besides_binary_searches(rebuilt) == [
        f"{ANALYSIS}examples/models/classifier.py",
        f"{INTERPRETER} {clone_a.root}/.venv/bin/python",
        f"Packaging examples/models:classifier_pkg from {LINKS['examples/models:classifier_pkg']}",
    ]


def test_a_package_that_is_not_self_contained_fails_its_test(clone_a):
    leaky = clone_a.root / "leaky"
    leaky.mkdir()
    (leaky / "leaky_pkg_test.py").write_text(
        (REPO_ROOT / "examples/models/classifier_pkg_test.py").read_text()
    )
    (leaky / "BUILD").write_text(
        textwrap.dedent(
            """
            # The model's own code is left to the environment: the package depends on it.
            torch_package(
                name="leaky_pkg",
                entry="examples.models.classifier:build",
                extern=["examples.**"],
            )

            torch_package_test(
                name="leaky_pkg_test",
                source="leaky_pkg_test.py",
                package=":leaky_pkg",
            )
            """
        )
    )
    try:
        result = clone_a.pants("test", "leaky:leaky_pkg_test", check=False)
        assert result.returncode != 0
        assert "✕ leaky:leaky_pkg_test failed" in result.stderr, result.stderr[-4000:]
        assert "the pickle needs module 'examples.models.classifier'" in result.stderr
    finally:
        shutil.rmtree(leaky)


def test_a_pattern_that_matches_nothing_fails_the_build_unless_allowed(clone_a):
    typo = clone_a.root / "typo"
    typo.mkdir()
    build_file = textwrap.dedent(
        """
        torch_package(
            name="typo_pkg",
            entry="models.labels:build",
            data=["models:names"],
            intern=["models.**", "modles.**"],{allow_empty}
        )
        """
    )
    try:
        (typo / "BUILD").write_text(build_file.format(allow_empty=""))
        result = clone_a.pants("package", "typo:typo_pkg", check=False)
        assert result.returncode != 0
        assert "Packaging typo:typo_pkg from models.labels:build" in result.stderr
        assert "intern('modles.**')" in result.stderr
        assert "allow_empty = True" in result.stderr
        (typo / "BUILD").write_text(build_file.format(allow_empty="\n    allow_empty=True,"))
        clone_a.pants("package", "typo:typo_pkg")
    finally:
        shutil.rmtree(typo)


def test_the_workspace_chooses_its_interpreter(clone_a):
    """`[torchpack].python`, and $TORCHPACK_PYTHON over it; a missing one, or one without
    torch, is named."""
    missing = clone_a.root / "no" / "such" / "python"
    result = clone_a.pants("--torchpack-python=no/such/python", "package", "models:", check=False)
    assert result.returncode != 0
    assert f"no Python interpreter at {missing} (the `[torchpack].python` option)" in result.stderr

    bare = clone_a.root.parent / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    result = clone_a.pants(
        f"--torchpack-python={bare}/bin/python", "package", "models:", check=False
    )
    assert result.returncode != 0
    assert f"{bare}/bin/python (the `[torchpack].python` option) cannot import torch" in " ".join(
        result.stderr.split()
    )

    # $TORCHPACK_PYTHON wins; a shim (like pyenv's) that needs the user's PATH is resolved to
    # the interpreter it runs, which runs the link (the local cache is bypassed to make it run).
    shim = clone_a.root.parent / "shims" / "python"
    shim.parent.mkdir()
    shim.write_text(f'#!/usr/bin/env sh\nexec "{clone_a.root}/.venv/bin/python" "$@"\n')
    shim.chmod(0o755)
    clone_a.torchpack_python = str(shim)
    try:
        arguments = ("--torchpack-python=no/such/python", "--no-local-cache", "package", "models:")
        ran = clone_a.pants(*arguments).ran()
        assert f"{INTERPRETER} {shim}" in ran
        assert f"Packaging models:labels_pkg from {LINKS['models:labels_pkg']}" in ran
    finally:
        clone_a.torchpack_python = None


def readme_reference_tables() -> dict[str, dict[str, str]]:
    """The README's Pants reference: for each target and the options, name -> description."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Target reference", 1)[1].split("\n### ", 1)[0]
    tables = {}
    for heading, body in re.findall(r"#### `([^`]+)`[^\n]*\n(.*?)(?=\n#### |\Z)", section, re.S):
        rows = re.findall(r"^\| `(\w+)` \|.*\| (.*) \|$", body, re.M)
        tables[heading] = dict(rows)
    return tables


def test_the_readme_reference_is_pants_own_help(clone_a):
    help_all = json.loads(clone_a.pants("help-all").stdout)
    common = {"tags", "description"}
    documented = {
        target: {
            field["alias"]: " ".join(field["description"].split())
            for field in help_all["name_to_target_type_info"][target]["fields"]
            if field["alias"] not in common
        }
        for target in ("torch_package", "torch_package_test")
    }
    scope = help_all["scope_to_help_info"]["torchpack"]
    documented["[torchpack]"] = {
        option["config_key"]: " ".join(option["help"].split())
        for option in scope["basic"] + scope["advanced"]
    }
    assert readme_reference_tables() == documented


@pytest.mark.parametrize(
    ("target", "error"),
    [
        (
            'torch_package(name="pkg", entry="models.labels", intern=["models.**"])',
            "The `entry` field of the target errors:pkg must look like `module:function` "
            "(e.g. `models.resnet:build`), not 'models.labels'.",
        ),
        (
            'torch_package(name="pkg", entry="models.label:build", intern=["models.**"])',
            "The `entry` field of the target errors:pkg names the module `models.label`, which "
            "is in none of the Python sources it depends on",
        ),
        (
            'torch_package(name="pkg", entry="models.labels:build", data=["models"])',
            "The `data` field of the target errors:pkg names models/__init__.py, a target of "
            "type `python_source`, which gives no files",
        ),
    ],
)
def test_a_wrong_field_fails_naming_the_target_and_the_field(clone_a, target, error):
    errors = clone_a.root / "errors"
    errors.mkdir()
    try:
        (errors / "BUILD").write_text(target + "\n")
        result = clone_a.pants("package", "errors:pkg", check=False)
        assert result.returncode != 0
        assert error in " ".join(result.stderr.split()), result.stderr[-4000:]
    finally:
        shutil.rmtree(errors)


def test_pants_python_tools_work_offline_too(clone_a):
    """Pants' own pex tool comes from .venv-pants/offline.toml's file:// URL, not from GitHub."""
    tools = clone_a.root / "tools"
    tools.mkdir()
    (tools / "hello.py").write_text('print("hello from a PEX built offline")\n')
    (tools / "BUILD").write_text(
        'python_sources()\n\npex_binary(name="hello", entry_point="hello.py")\n'
    )
    try:
        built = clone_a.pants("package", "tools:hello")
        assert "Building tools/hello.pex" in built.ran()
        pex = clone_a.root / "dist/tools/hello.pex"
        result = subprocess.run([sys.executable, pex], capture_output=True, text=True, check=True)
        assert result.stdout == "hello from a PEX built offline\n"
    finally:
        shutil.rmtree(tools)
