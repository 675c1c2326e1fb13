"""Portable source paths in TorchScript debug records."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from torchpack.export.script_records import portable_debug_pickle, portable_source_path


def test_path_is_made_relative_to_the_deepest_sys_path_folder(tmp_path, monkeypatch) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [str(tmp_path), str(tmp_path / "src")])
    assert portable_source_path(str(tmp_path / "src" / "pkg" / "m.py")) == "pkg/m.py"


def test_path_outside_sys_path_keeps_only_its_file_name(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "path", ["/nonexistent"])
    assert portable_source_path(str(tmp_path / "m.py")) == "m.py"


def test_debug_pickle_strings_are_swapped_and_everything_else_kept(
    tmp_path: Path, monkeypatch
) -> None:
    source = tmp_path / "lib" / "model.py"
    source.parent.mkdir()
    source.write_text("x = 1\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "lib")])
    table = ("", "    def forward(self, x):\n", str(source), "/not/a/file.py")
    record = ("FORMAT_WITH_STRING_TABLE", table, ((0, ((table, 0, 0), 0, 0), 0),))
    for protocol in (2, 4):
        rewritten = pickle.loads(portable_debug_pickle(pickle.dumps(record, protocol=protocol)))
        # Memo references (the table used twice) still resolve after the swap.
        expected_table = ("", "    def forward(self, x):\n", "model.py", "/not/a/file.py")
        expected_ranges = ((0, ((expected_table, 0, 0), 0, 0), 0),)
        assert rewritten == ("FORMAT_WITH_STRING_TABLE", expected_table, expected_ranges)


def test_debug_pickle_without_paths_is_returned_unchanged() -> None:
    data = pickle.dumps(("FORMAT_WITH_STRING_TABLE", ("", "a\n"), ()), protocol=2)
    assert portable_debug_pickle(data) is data
