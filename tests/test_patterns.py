"""intern / extern / mock / deny patterns, implicit externs, and PackagingError reporting."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import re
from pathlib import Path

import pytest
import torch
from conftest import read_text_record, records_of

from torchpack import EmptyMatchError, PackageExporter, PackageImporter, PackagingError
from torchpack._mock import MOCKED_MODULE_SOURCE
from torchpack.errors import PackagingErrorReason

# A C extension of an installed third-party (non-stdlib) package.
C_EXTENSION = "markupsafe._speedups"

TREE = {
    "pkg/__init__.py": "PKG = 'pkg'\n",
    "pkg/a.py": "A = 'a'\n",
    "pkg/b.py": "B = 'b'\n",
    "pkg/sub/__init__.py": "SUB = 'sub'\n",
    "pkg/sub/deep.py": "DEEP = 'deep'\n",
    "pkg_extra/__init__.py": "EXTRA = 'extra'\n",
    "pkg_extra/x.py": "X = 'x'\n",
    "other.py": "OTHER = 'other'\n",
    "another.py": "ANOTHER = 'another'\n",
}

ROOT_IMPORTS = """\
import pkg
import pkg.a
import pkg.b
import pkg.sub
import pkg.sub.deep
import pkg_extra
import pkg_extra.x
import other
"""

ALL_MODULES = {
    "pkg",
    "pkg.a",
    "pkg.b",
    "pkg.sub",
    "pkg.sub.deep",
    "pkg_extra",
    "pkg_extra.x",
    "other",
}


@pytest.fixture
def tree(source_tree):
    return source_tree(TREE)


def module_record(archive: Path, module: str) -> str | None:
    """The record that holds ``module``'s source, if any."""
    path = module.replace(".", "/")
    records = records_of(archive)
    for candidate in (f"{path}.py", f"{path}/__init__.py"):
        if candidate in records:
            return candidate
    return None


def export(target: Path, configure, root_source: str = ROOT_IMPORTS) -> PackageExporter:
    """Save a module ``root`` with ``root_source`` after ``configure(exporter)``."""
    with PackageExporter(target) as exporter:
        configure(exporter)
        exporter.save_source_string("root", root_source)
    return exporter


def assert_no_archive(folder: Path) -> None:
    # ``src`` is where the source_tree fixture writes its modules.
    left = [p.name for p in folder.iterdir() if p.name != "src"]
    assert left == [], "no archive (and no staging file) may be left behind"


# -- the four actions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "interned"),
    [
        ("pkg.a", {"pkg.a"}),
        (["pkg.a", "other"], {"pkg.a", "other"}),
        (("pkg.b", "pkg_extra.x"), {"pkg.b", "pkg_extra.x"}),
    ],
)
def test_intern(tmp_path: Path, tree, pattern, interned) -> None:
    target = tmp_path / "out.pt"
    exporter = export(target, lambda e: (e.intern(pattern), e.extern("**")))
    for name in ALL_MODULES:
        if name in interned:
            assert module_record(target, name) is not None, name
        else:
            assert module_record(target, name) is None, name
    assert set(exporter.interned_modules()) == interned | {"root"}
    importer = PackageImporter(target)
    assert set(importer.extern_modules) == ALL_MODULES - interned
    importer.import_module("root")


@pytest.mark.parametrize(
    ("pattern", "externed"),
    [
        ("other", {"other"}),
        (["other", "pkg.a", "pkg_extra"], {"other", "pkg.a", "pkg_extra"}),
    ],
)
def test_extern(tmp_path: Path, tree, pattern, externed) -> None:
    target = tmp_path / "out.pt"
    exporter = export(target, lambda e: (e.extern(pattern), e.intern("**")))
    importer = PackageImporter(target)
    assert set(importer.extern_modules) == externed
    assert set(exporter.externed_modules()) == externed
    for name in ALL_MODULES:
        assert (module_record(target, name) is None) == (name in externed), name
    assert read_text_record(target, ".data/extern_modules").splitlines() == sorted(externed)
    importer.import_module("root")


@pytest.mark.parametrize(
    ("pattern", "mocked"),
    [
        ("other", {"other"}),
        (["other", "pkg.sub", "pkg_extra.x"], {"other", "pkg.sub", "pkg_extra.x"}),
    ],
)
def test_mock(tmp_path: Path, tree, pattern, mocked) -> None:
    target = tmp_path / "out.pt"
    exporter = export(target, lambda e: (e.mock(pattern), e.intern("**")))
    assert set(exporter.mocked_modules()) == mocked
    assert "_mock.py" in records_of(target)
    for name in ALL_MODULES:
        record = module_record(target, name)
        assert record is not None, name
        is_stub = read_text_record(target, record) == MOCKED_MODULE_SOURCE
        assert is_stub == (name in mocked), name
    # Packages stay packages when mocked.
    if "pkg.sub" in mocked:
        assert "pkg/sub/__init__.py" in records_of(target)
    PackageImporter(target).import_module("root")


@pytest.mark.parametrize(
    ("pattern", "denied"),
    [
        ("other", {"other"}),
        (["other", "pkg.a"], {"other", "pkg.a"}),
    ],
)
def test_deny(tmp_path: Path, tree, pattern, denied) -> None:
    target = tmp_path / "out.pt"
    with pytest.raises(PackagingError) as info:
        export(target, lambda e: (e.deny(pattern), e.intern("**")))
    assert set(info.value.broken_modules) == denied
    for name in denied:
        assert "denied" in info.value.broken_modules[name].lower()
        assert name in str(info.value)
    assert_no_archive(tmp_path)


def test_exclude_single_and_list(tmp_path: Path, tree) -> None:
    target = tmp_path / "out.pt"

    def configure(e: PackageExporter) -> None:
        e.intern("pkg.**", exclude="pkg.b")
        e.extern("pkg*.**", exclude=["pkg_extra.x", "pkg.sub.*"])
        e.mock("**")

    exporter = export(target, configure)
    assert set(exporter.interned_modules()) == {"root", "pkg", "pkg.a", "pkg.sub", "pkg.sub.deep"}
    assert set(exporter.externed_modules()) == {"pkg.b", "pkg_extra"}
    assert set(exporter.mocked_modules()) == {"pkg_extra.x", "other"}


def test_exclude_everything_leaves_module_without_action(tmp_path: Path, tree) -> None:
    with pytest.raises(PackagingError) as info:
        export(
            tmp_path / "out.pt",
            lambda e: e.intern("**", exclude="other"),
            "import other\nimport pkg.a\n",
        )
    assert set(info.value.broken_modules) == {"other"}
    assert "match" in info.value.broken_modules["other"].lower()


# -- order and globs ------------------------------------------------------------------------


def test_first_matching_action_wins_mock_first(tmp_path: Path, tree) -> None:
    target = tmp_path / "out.pt"
    exporter = export(target, lambda e: (e.mock("pkg.a"), e.intern("pkg.**")), "import pkg.a\n")
    assert exporter.mocked_modules() == ["pkg.a"]
    assert "pkg.a" not in exporter.interned_modules()
    assert read_text_record(target, "pkg/a.py") == MOCKED_MODULE_SOURCE


def test_first_matching_action_wins_intern_first(tmp_path: Path, tree) -> None:
    target = tmp_path / "out.pt"
    exporter = export(target, lambda e: (e.intern("pkg.**"), e.mock("pkg.a")), "import pkg.a\n")
    assert exporter.mocked_modules() == []
    assert "pkg.a" in exporter.interned_modules()
    assert read_text_record(target, "pkg/a.py") == TREE["pkg/a.py"]
    assert "_mock.py" not in records_of(target)


def test_first_matching_action_wins_deny_vs_extern(tmp_path: Path, tree) -> None:
    export(tmp_path / "ok.pt", lambda e: (e.extern("other"), e.deny("**")), "import other\n")
    assert PackageImporter(tmp_path / "ok.pt").extern_modules == ["other"]
    with pytest.raises(PackagingError) as info:
        export(tmp_path / "bad.pt", lambda e: (e.deny("**"), e.extern("other")), "import other\n")
    assert set(info.value.broken_modules) == {"other"}


@pytest.mark.parametrize(
    ("pattern", "matched"),
    [
        ("pkg.**", {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.deep"}),
        ("pkg.*", {"pkg.a", "pkg.b", "pkg.sub"}),
        (
            "pkg*.**",
            {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.deep", "pkg_extra", "pkg_extra.x"},
        ),
        ("pkg*", {"pkg", "pkg_extra"}),
        ("pkg.*.deep", {"pkg.sub.deep"}),
        ("**.x", {"pkg_extra.x"}),
        ("pkg", {"pkg"}),
    ],
)
def test_glob_forms(tmp_path: Path, tree, pattern: str, matched: set[str]) -> None:
    target = tmp_path / "out.pt"
    exporter = export(target, lambda e: (e.extern(pattern), e.mock("**")))
    assert set(PackageImporter(target).extern_modules) == matched
    assert set(exporter.mocked_modules()) == ALL_MODULES - matched


# -- allow_empty ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["intern", "extern", "mock"])
def test_allow_empty_false_that_matches_nothing_raises_at_close(
    tmp_path: Path, tree, action: str
) -> None:
    target = tmp_path / "out.pt"
    with pytest.raises(EmptyMatchError, match=re.escape(f"{action}('nothing_like_this.**')")):
        with PackageExporter(target) as exporter:
            getattr(exporter, action)("nothing_like_this.**", allow_empty=False)
            exporter.intern("**")
            # Declaring the pattern and saving is fine; the check is at close.
            exporter.save_source_string("root", "import other\n")
    assert_no_archive(tmp_path)


@pytest.mark.parametrize("action", ["intern", "extern", "mock"])
def test_allow_empty_default_true_matches_nothing_fine(tmp_path: Path, tree, action: str) -> None:
    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        getattr(exporter, action)("nothing_like_this.**")
        exporter.intern("**")
        exporter.save_source_string("root", "import other\n")
    assert module_record(target, "other") == "other.py"


def test_allow_empty_false_that_matches_is_fine(tmp_path: Path, tree) -> None:
    target = tmp_path / "out.pt"
    export(
        target, lambda e: (e.extern("other", allow_empty=False), e.intern("**")), "import other\n"
    )
    assert PackageImporter(target).extern_modules == ["other"]


@pytest.mark.parametrize(
    ("pattern", "root_source"),
    [
        ("torch.**", "import torch\nT = torch.ones(1)\n"),
        ("torch", "import torch\n"),
        ("json", "import json\n"),
        (["collections.**", "os.**"], "import collections\nimport os.path\n"),
    ],
)
def test_extern_of_implicitly_extern_module_counts_as_match(
    tmp_path: Path, pattern, root_source: str
) -> None:
    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.extern(pattern, allow_empty=False)
        exporter.save_source_string("root", root_source)
        exporter.save_pickle("t", "t.pkl", torch.arange(3))
    importer = PackageImporter(target)
    assert torch.equal(importer.load_pickle("t", "t.pkl"), torch.arange(3))
    importer.import_module("root")


def test_extern_torch_allow_empty_false_with_tensor_pickle(tmp_path: Path) -> None:
    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.extern("torch.**", allow_empty=False)
        exporter.save_pickle("model", "model.pkl", torch.nn.Linear(2, 2))
    assert any(m.startswith("torch") for m in PackageImporter(target).extern_modules)


# -- implicit externs -----------------------------------------------------------------------


def test_stdlib_is_extern_automatically(tmp_path: Path) -> None:
    target = tmp_path / "out.pt"
    source = "import json\nimport collections\nimport os.path\nfrom dataclasses import dataclass\n"
    with PackageExporter(target) as exporter:
        exporter.save_source_string("root", source)
    listed = read_text_record(target, ".data/extern_modules").splitlines()
    assert {"json", "collections", "os.path", "dataclasses"} <= set(listed)
    assert listed == sorted(listed)
    assert not any(r.startswith(("json/", "collections/")) for r in records_of(target))
    assert PackageImporter(target).import_module("root").json is importlib.import_module("json")


def test_torch_is_extern_automatically(tmp_path: Path) -> None:
    target = tmp_path / "out.pt"
    with PackageExporter(target) as exporter:
        exporter.save_source_string("root", "import torch.nn.functional as F\n")
        exporter.save_pickle("m", "m.pkl", torch.nn.ReLU())
    externs = PackageImporter(target).extern_modules
    assert "torch.nn.functional" in externs
    assert not any(r.startswith("torch/") for r in records_of(target))


@pytest.mark.parametrize("name", ["sys", "io"])
def test_sys_and_io_are_not_implicitly_extern(tmp_path: Path, name: str) -> None:
    target = tmp_path / "out.pt"
    with pytest.raises(PackagingError, match=rf"\b{name}\b") as info:
        with PackageExporter(target) as exporter:
            exporter.save_source_string("root", f"import {name}\n")
    assert set(info.value.broken_modules) == {name}
    assert_no_archive(tmp_path)

    with PackageExporter(target) as exporter:
        exporter.extern(name)
        exporter.save_source_string("root", f"import {name}\n")
    assert name in PackageImporter(target).extern_modules


# -- PackagingError causes ------------------------------------------------------------------


def test_module_matching_no_action(tmp_path: Path, tree) -> None:
    target = tmp_path / "out.pt"
    with pytest.raises(PackagingError) as info:
        export(target, lambda e: e.intern("pkg.**"), "import pkg.a\nimport other\n")
    assert set(info.value.broken_modules) == {"other"}
    assert "other" in str(info.value)
    assert_no_archive(tmp_path)


def test_denied_module_is_needed(tmp_path: Path, tree) -> None:
    with pytest.raises(PackagingError, match="denied") as info:
        export(tmp_path / "out.pt", lambda e: (e.deny("pkg.a"), e.intern("**")), "import pkg.a\n")
    assert set(info.value.broken_modules) == {"pkg.a"}
    assert_no_archive(tmp_path)


def test_c_extension_cannot_be_interned_by_pattern(tmp_path: Path) -> None:
    spec = importlib.util.find_spec(C_EXTENSION)
    assert spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
    with pytest.raises(PackagingError, match=re.escape(C_EXTENSION)) as info:
        with PackageExporter(tmp_path / "out.pt") as exporter:
            exporter.intern("markupsafe.**")
            exporter.save_source_string("root", f"import {C_EXTENSION}\n")
    assert C_EXTENSION in info.value.broken_modules
    assert "extension" in str(info.value).lower()
    assert_no_archive(tmp_path)


def test_c_extension_cannot_be_saved_with_save_module(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match=re.escape(C_EXTENSION)) as info:
        with PackageExporter(tmp_path / "out.pt") as exporter:
            exporter.intern("markupsafe.**")
            # markupsafe/__init__.py is interned as the parent package; its own import:
            exporter.extern("typing_extensions")
            exporter.save_module(C_EXTENSION)
    assert set(info.value.broken_modules) == {C_EXTENSION}
    assert "* Module is a C extension module." in str(info.value)
    assert_no_archive(tmp_path)


def test_module_whose_source_file_is_gone(tmp_path: Path, source_tree) -> None:
    root = source_tree({"gone_mod.py": "GONE = 1\n"})
    import gone_mod

    assert gone_mod.GONE == 1
    (root / "gone_mod.py").unlink()
    target = tmp_path / "out.pt"
    with pytest.raises(PackagingError, match="gone_mod") as info:
        with PackageExporter(target) as exporter:
            exporter.intern("gone_mod")
            exporter.save_source_string("root", "import gone_mod\n")
    assert set(info.value.broken_modules) == {"gone_mod"}
    assert not target.exists()


@pytest.mark.parametrize("module", ["sys", "io"])
def test_mocking_sys_or_io_fails_at_export_with_torch_packages_advice(
    tmp_path: Path, source_tree, module: str
) -> None:
    # The docs' mock("**") for the rest matches them; a stub for either breaks the package at
    # load (torch.package mocks them too), so the export refuses and says to extern them.
    source_tree({"uses_std.py": f"import {module}\n\nVALUE = {module}.__name__\n"})
    target = tmp_path / "out.pt"
    with pytest.raises(PackagingError) as info:
        with PackageExporter(target) as exporter:
            exporter.intern("uses_std")
            exporter.mock("**")
            exporter.save_module("uses_std")
    assert info.value.broken_modules == {module: PackagingErrorReason.STDLIB_MOCKED.value}
    message = str(info.value)
    assert "standard library and was matched by a mock pattern" in message
    assert f'add it to the extern list by calling PackageExporter.extern("`{module}`")' in message
    assert not target.exists()

    with PackageExporter(target) as exporter:
        exporter.intern("uses_std")
        exporter.extern(module)
        exporter.mock("**")
        exporter.save_module("uses_std")
    assert exporter.externed_modules() == [module]
    assert PackageImporter(target).import_module("uses_std").VALUE == module


def test_one_packaging_error_lists_every_broken_module(tmp_path: Path, source_tree) -> None:
    source_tree(
        {
            "chain/__init__.py": "",
            "chain/a.py": "from chain import b\n\n\nclass Obj:\n    pass\n",
            "chain/b.py": (
                f"import sys\nimport unmatched_mod\nimport denied_mod\nimport {C_EXTENSION}\n"
            ),
            "unmatched_mod.py": "",
            "denied_mod.py": "",
        }
    )
    import chain.a

    target = tmp_path / "out.pt"
    with pytest.raises(PackagingError) as info:
        with PackageExporter(target, debug=True) as exporter:
            exporter.intern(["chain.**", "markupsafe.**"])
            exporter.deny("denied_mod")
            exporter.save_pickle("model", "model.pkl", chain.a.Obj())

    broken = info.value.broken_modules
    assert set(broken) == {"sys", "unmatched_mod", "denied_mod", C_EXTENSION}
    assert all(isinstance(reason, str) and reason for reason in broken.values())
    assert len(set(broken.values())) == 3  # no action (x2), denied, no source
    assert broken["sys"] == broken["unmatched_mod"]
    message = str(info.value)
    for name in broken:
        assert name in message
    assert "Pulled in by: <model.model.pkl> -> chain.a -> chain.b" in message
    assert message.count("Pulled in by:") == 4
    assert_no_archive(tmp_path)


def test_packaging_error_chain_through_save_module(tmp_path: Path, source_tree) -> None:
    source_tree(
        {
            "top_mod.py": "import mid_mod\n",
            "mid_mod.py": "import bottom_mod\n",
            "bottom_mod.py": "import other_unmatched\n",
            "other_unmatched.py": "",
        }
    )
    with pytest.raises(PackagingError) as info:
        with PackageExporter(tmp_path / "out.pt", debug=True) as exporter:
            exporter.intern(["mid_mod", "bottom_mod"])
            exporter.save_module("top_mod")
    assert set(info.value.broken_modules) == {"other_unmatched"}
    assert "top_mod -> mid_mod -> bottom_mod -> other_unmatched" in str(info.value)
    assert_no_archive(tmp_path)
