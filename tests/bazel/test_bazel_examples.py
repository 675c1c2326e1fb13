"""Proofs about the Bazel rules, from real builds: tests pass, incremental, reproducible, cached.

Three checkouts at different paths share nothing but the interpreter: ``first`` builds with an
empty nginx HTTP cache (filling it), ``second`` builds with no cache at all, ``third`` starts
from a fresh output base with the filled cache.
"""

from __future__ import annotations

import textwrap

import pytest

EXAMPLES = "//examples/..."
PACKAGES = ["classifier_pkg", "labelled_pkg", "resnet_pkg", "scripted_pkg", "tinylm_pkg"]
ANALYZE, LINK = "TorchpackAnalyze", "TorchPackage"


def archives(*names: str) -> list[str]:
    return [f"bazel-out/k8-fastbuild/bin/examples/models/{name}.pt" for name in names]


def analysis_of(source: str, target: str) -> str:
    """The aspect's output for ``source``, a file of py_library ``target`` (``pkg:name``)."""
    package, _, name = target.partition(":")
    return f"bazel-out/k8-fastbuild/bin/{package}/{name}.torchpack/{source}.json"


@pytest.fixture(scope="module")
def first(bazel_checkouts, http_cache):
    checkout = bazel_checkouts("first")
    checkout.built = checkout.build(f"--remote_cache={http_cache}", EXAMPLES)
    return checkout


@pytest.fixture(scope="module")
def second(bazel_checkouts):
    checkout = bazel_checkouts("second")
    checkout.built = checkout.build(EXAMPLES)
    return checkout


def test_every_package_test_passes(second):
    result = second.bazel("test", EXAMPLES)
    assert "Executed 5 out of 5 tests: 5 tests pass." in result.stdout, result.stdout


def test_one_analysis_action_per_source_file(second):
    analysed = second.built.executed(ANALYZE)
    assert len(analysed) == len(set(analysed))
    assert analysis_of("examples/models/resnet.py", "examples/models:resnet") in analysed
    assert analysis_of("examples/models/tinylm/tokenizer.py", "examples/models:tinylm") in analysed
    # Shared by every package: one analysis of the common library, not one per package.
    assert [a for a in analysed if a.endswith("examples/models/recorded.py.json")] == [
        analysis_of("examples/models/recorded.py", "examples/models:models")
    ]
    assert second.built.executed(LINK) == archives(*PACKAGES)
    # Every link resolved its modules from those analyses, parsing no source itself.
    assert second.built.stderr.count("analysed here: none") == len(PACKAGES), second.built.stderr
    # The analyses ran in the persistent worker.
    assert {s.runner for s in second.built.spawns if s.mnemonic == ANALYZE} == {"worker"}


def test_builds_are_reproducible_across_checkouts(first, second):
    # `first` found its cache empty: it really built everything, like `second`.
    assert not any(spawn.remote_cache_hit for spawn in first.built.spawns)
    assert first.root != second.root and first.output_base != second.output_base
    hashes = first.package_hashes()
    assert sorted(hashes) == [f"examples/models/{name}.pt" for name in PACKAGES]
    assert hashes == second.package_hashes()


def test_remote_cache_serves_every_analysis_and_link(first, bazel_checkouts, http_cache):
    third = bazel_checkouts("third")
    built = third.build(f"--remote_cache={http_cache}", EXAMPLES)
    cached = [s for s in built.spawns if s.mnemonic in (ANALYZE, LINK)]
    assert len(cached) == len([s for s in first.built.spawns if s.mnemonic in (ANALYZE, LINK)])
    assert all(spawn.remote_cache_hit for spawn in cached), [
        spawn.outputs for spawn in cached if not spawn.remote_cache_hit
    ]
    assert built.executed(ANALYZE) == built.executed(LINK) == []
    hits = sum(spawn.remote_cache_hit for spawn in built.spawns)
    assert f"{hits} remote cache hit" in built.summary()
    assert third.package_hashes() == first.package_hashes()


def rebuild_after_editing(checkout, source: str, target: str):
    """Edit ``source`` (of py_library ``target``), rebuild; check only its analysis reran."""
    path = checkout.root / source
    path.write_text(path.read_text() + "\n# an edit\n")
    rebuilt = checkout.build(EXAMPLES)
    assert rebuilt.executed(ANALYZE) == [analysis_of(source, target)]
    return rebuilt


def test_editing_a_model_reruns_its_analysis_and_its_link_only(second):
    rebuilt = rebuild_after_editing(
        second, "examples/models/classifier.py", "examples/models:classifier"
    )
    assert rebuilt.executed(LINK) == archives("classifier_pkg")
    assert len(rebuilt.spawns) == 2


def test_editing_a_shared_module_relinks_every_package_that_uses_it(second):
    rebuilt = rebuild_after_editing(second, "examples/models/recorded.py", "examples/models:models")
    assert rebuilt.executed(LINK) == archives(*PACKAGES)
    # The checkpoint's build step imports the library too, so it reruns (same weights).
    others = {s.mnemonic for s in rebuilt.spawns} - {ANALYZE, LINK}
    assert others == {"Genrule"}


def test_a_package_that_is_not_self_contained_fails_its_test(second):
    leaky = second.root / "examples/leaky"
    leaky.mkdir()
    (leaky / "leaky_pkg_test.py").write_text(
        (second.root / "examples/models/classifier_pkg_test.py").read_text()
    )
    (leaky / "BUILD.bazel").write_text(
        textwrap.dedent(
            """
            load("//rules:torch_package.bzl", "torch_package", "torch_package_test")

            # The model's own code is left to the environment: the package depends on it.
            torch_package(
                name = "leaky_pkg",
                entry = "examples.models.classifier:build",
                extern = ["examples.**"],
                deps = ["//examples/models:classifier"],
            )

            torch_package_test(
                name = "leaky_pkg_test",
                srcs = ["leaky_pkg_test.py"],
                package = ":leaky_pkg",
            )
            """
        )
    )
    result = second.bazel("test", "//examples/leaky:leaky_pkg_test", check=False)
    assert result.returncode != 0
    log = second.root / "bazel-testlogs/examples/leaky/leaky_pkg_test/test.log"
    assert "No module named 'examples.models" in log.read_text()
