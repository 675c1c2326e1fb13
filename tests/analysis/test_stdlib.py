import pytest

from torchpack.analysis.stdlib import is_stdlib_module


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("os", True),
        ("os.path", True),
        ("collections.abc", True),
        ("_thread", True),
        ("__future__", True),
        ("torch", False),
        ("sympy.core", False),
        ("osx", False),
        ("", False),
    ],
)
def test_is_stdlib_module(name, expected):
    assert is_stdlib_module(name) is expected
