import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpack.analysis.glob_group import GlobGroup

CASES = [
    # "**" matches zero or more whole segments.
    ("torch.**", "torch", True),
    ("torch.**", "torch.nn", True),
    ("torch.**", "torch.nn.functional", True),
    ("torch.**", "torchvision", False),
    ("torch.**", "my.torch", False),
    ("**.nn", "nn", True),
    ("**.nn", "torch.nn", True),
    ("**.nn", "torch.nn.functional", False),
    ("a.**.b", "a.b", True),
    ("a.**.b", "a.x.y.b", True),
    ("a.**.b", "a.x.y.c", False),
    ("**", "anything.at.all", True),
    ("**", "x", True),
    # "*" matches within one segment, possibly nothing.
    ("torch.*", "torch.nn", True),
    ("torch.*", "torch", False),
    ("torch.*", "torch.nn.functional", False),
    ("torch*.**", "torch", True),
    ("torch*.**", "torchvision", True),
    ("torch*.**", "torchvision.models", True),
    ("torch*.**", "tor", False),
    ("torch*.**", "py.torch", False),
    ("foo*baz*", "foobaz", True),
    ("foo*baz*", "foobarbazqux", True),
    ("foo*baz*", "foo.baz", False),
    ("*", "a", True),
    ("*", "a.b", False),
    ("*.*", "a.b", True),
    # Literals match exactly; regex metacharacters are not special.
    ("torch", "torch", True),
    ("torch", "torch.nn", False),
    ("torch", "torc", False),
    ("a+b", "a+b", True),
    ("a+b", "aab", False),
    ("a[b]", "a[b]", True),
]


@pytest.mark.parametrize(("pattern", "candidate", "expected"), CASES)
def test_pattern_table(pattern, candidate, expected):
    assert GlobGroup(pattern).matches(candidate) is expected


@pytest.mark.parametrize(
    ("pattern", "candidate", "expected"),
    [
        ("a/**/*.py", "a/c.py", True),
        ("a/**/*.py", "a/b/c/d.py", True),
        ("a/*.py", "a/b/c.py", False),
        ("a.py", "a.py", True),
        ("a.py", "axpy", False),  # "." is a literal when it is not the separator
        ("**/*.pkl", "data.pkl", True),
        ("**/*.pkl", "x/y/data.pkl", True),
        ("**/*.pkl", "x/y/data.pkl.bak", False),
    ],
)
def test_slash_separator(pattern, candidate, expected):
    assert GlobGroup(pattern, separator="/").matches(candidate) is expected


def test_exclude():
    g = GlobGroup("torch.**", exclude="torch.nn.**")
    assert g.matches("torch")
    assert g.matches("torch.optim")
    assert not g.matches("torch.nn")
    assert not g.matches("torch.nn.functional")
    assert not g.matches("numpy")


def test_list_include_and_exclude():
    g = GlobGroup(["numpy.**", "scipy.*"], exclude=["numpy.testing.**", "scipy.io"])
    assert g.matches("numpy.linalg")
    assert g.matches("scipy.sparse")
    assert not g.matches("scipy.sparse.linalg")
    assert not g.matches("scipy.io")
    assert not g.matches("numpy.testing")
    assert not g.matches("pandas")


def test_generator_patterns_are_materialised():
    g = GlobGroup(p for p in ["a.**", "b"])
    assert g.matches("a.x") and g.matches("b")
    assert g.matches("a.y")  # the generator was not consumed by the first match
    assert "a.**" in repr(g)


def test_empty_include_matches_nothing():
    assert not GlobGroup([]).matches("torch")


@pytest.mark.parametrize("bad", ["torch.**foo", "a**", "***", "a.b**.c"])
def test_double_star_must_be_whole_segment(bad):
    with pytest.raises(ValueError, match="segment") as info:
        GlobGroup(["ok.**", bad])
    assert repr(bad) in str(info.value)


def test_bad_double_star_in_exclude():
    with pytest.raises(ValueError, match=r"'x\*\*'"):
        GlobGroup("a", exclude="x**")


def test_repr_and_str():
    g = GlobGroup(["a.**", "b"], exclude="a.c")
    assert repr(g) == "GlobGroup(include=['a.**', 'b'], exclude=['a.c'])"
    assert str(g) == repr(g)
    assert "separator='/'" in repr(GlobGroup("a/b", separator="/"))


def test_bad_separator():
    with pytest.raises(ValueError, match="separator"):
        GlobGroup("a", separator="::")


@pytest.fixture(scope="module")
def oracle():
    glob_group = pytest.importorskip("torch.package.glob_group")
    return glob_group.GlobGroup


ORACLE_PATTERNS = [
    "torch",
    "torch.*",
    "torch.**",
    "torch*",
    "torch*.**",
    "*",
    "**",
    "*.*",
    "**.nn",
    "a.**.b",
    "*.nn.**",
    "t*h.n*",
    "torch.nn",
    "",
    "torch.",
    ".torch",
    "a+b.*",
    "**.**",
    "torch.*.functional",
    "*vision*",
]
ORACLE_CANDIDATES = [
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "torchvision",
    "torchvision.models",
    "nn",
    "a.b",
    "a.x.b",
    "a.x.y.b",
    "a+b.c",
    "t.h",
    "th.nn",
    "",
    ".",
    "torch.",
    "x.torch",
    "visionary",
    "torch..nn",
]


def test_matches_torch_package_oracle(oracle):
    for pattern, candidate in itertools.product(ORACLE_PATTERNS, ORACLE_CANDIDATES):
        expected = oracle(pattern).matches(candidate)
        assert GlobGroup(pattern).matches(candidate) is expected, (pattern, candidate)
    for include, exclude in itertools.product(ORACLE_PATTERNS[:8], ORACLE_PATTERNS[:8]):
        ours, theirs = GlobGroup(include, exclude=exclude), oracle(include, exclude=exclude)
        for candidate in ORACLE_CANDIDATES:
            assert ours.matches(candidate) is theirs.matches(candidate), (
                include,
                exclude,
                candidate,
            )


def test_matches_torch_package_oracle_slash(oracle):
    patterns = ["a/**", "a/*.py", "**/*.py", "*/b/**", "a.py"]
    candidates = ["a", "a/b.py", "a/b/c.py", "x/b/y", "a.py", "apy"]
    for pattern, candidate in itertools.product(patterns, candidates):
        expected = oracle(pattern, separator="/").matches(candidate)
        assert GlobGroup(pattern, separator="/").matches(candidate) is expected, (
            pattern,
            candidate,
        )


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.text(alphabet="ab*.", max_size=8),
    candidate=st.text(alphabet="ab.", max_size=8),
)
def test_random_patterns_agree_with_oracle(oracle, pattern, candidate):
    try:
        theirs = oracle(pattern)
    except ValueError:
        with pytest.raises(ValueError):
            GlobGroup(pattern)
        return
    assert GlobGroup(pattern).matches(candidate) is theirs.matches(candidate)
