"""The conformance tests are written against torch.package. Run as part of the suite they test
torch.package itself (so they are known to be right); tests/test_conformance.py runs them
again with torch.package swapped for torchpack (``-p swap_torch_package``)."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# Scenario modules, not tests.
collect_ignore = ["conformance_models"]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture
def buffer():
    import io

    return io.BytesIO()
