"""Loads cases of the bad-archive corpus and reports each outcome as one JSON line.

Run by the tests in a fresh process with a memory limit and a timeout
(``corpus_runner.py CORPUS_DIR [CASE ...]``): a crash, a hang or a blow-up fails the test that
started it, not the test run.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from torchpack import PackageImporter


def exercise(case: dict[str, Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own TypedStorage warnings are not the point
        importer = PackageImporter(case["path"], **case["options"])
        if case["stage"] == "load":
            return importer.load_pickle("data", "t.pkl")
        if case["stage"] == "import":
            return importer.import_module("victim")
        if case["stage"] == "text":
            return importer.load_text("data", "notes.txt")
        return importer


def outcome(case: dict[str, Any]) -> dict[str, Any]:
    try:
        result = exercise(case)
    except Exception as err:  # noqa: BLE001 - the report says what it was
        return {
            "name": case["name"],
            "raised": [cls.__name__ for cls in type(err).__mro__],
            "archive": getattr(err, "archive", None),
            "record": getattr(err, "record", None),
            "message": str(err),
        }
    report: dict[str, Any] = {"name": case["name"], "raised": None}
    if case["then"]:
        # What the package would do once loaded: this is where memory corruption shows.
        try:
            exec(case["then"], {"torch": torch, "result": result})
            report["then"] = "ran"
        except Exception as err:  # noqa: BLE001
            report["then"] = f"{type(err).__name__}: {err}"
    return report


def main() -> None:
    folder = Path(sys.argv[1])
    wanted = set(sys.argv[2:])
    for case in json.loads((folder / "cases.json").read_text()):
        if not wanted or case["name"] in wanted:
            print(json.dumps(outcome(case)), flush=True)


if __name__ == "__main__":
    main()
