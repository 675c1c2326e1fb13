"""Property: a mutated package either loads with identical content or raises a torchpack error.

The properties (``mutation_properties.py``) run in a fresh process with a memory limit and a
timeout, so a mutation that crashes, hangs or exhausts memory fails the test, not the run. The
suite runs a bounded number of examples per property; for a longer run::

    TORCHPACK_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/safety/test_mutations.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_python

HERE = Path(__file__).parent
EXAMPLES = int(os.environ.get("TORCHPACK_FUZZ_EXAMPLES", "150"))
PROPERTIES = [
    "cut_archives",
    "dropped_records",
    "flipped_bytes",
    "mutated_pickles_load_safely_or_are_refused",
    "renamed_records",
    "verified_archives_load",
]


@pytest.mark.parametrize("name", PROPERTIES)
def test_mutated_packages(name, tmp_path):
    code = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
from mutation_properties import PROPERTIES
PROPERTIES[{name!r}]()
"""
    result = run_python(
        code,
        cwd=tmp_path,
        env={"TORCHPACK_FUZZ_EXAMPLES": str(EXAMPLES), "TMPDIR": str(tmp_path)},
        timeout=60 + EXAMPLES * 2,
        memory_limit_mib=2048,
        check=False,
    )
    assert result.returncode == 0, (
        f"{name} failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    )
