"""Stand-ins for the names of a mocked module.

This file is copied verbatim into every package that mocks a module, as the top-level module
``_mock``, so it must not import anything at all (not even typing): a package can only import
what it lists. Each mocked module's source is :data:`MOCKED_MODULE_SOURCE`: any name imported
from it is a :class:`MockedObject`, and any use of one raises :class:`NotImplementedError`
naming the mocked name.
"""

MOCKED_MODULE_SOURCE = """\
from _mock import MockedObject
def __getattr__(attr: str):
    return MockedObject(__name__ + '.' + attr, _suppress_err=True)
"""

# Every operation Python may look up on the type; each one raises instead of doing something.
_GUARDED_METHODS = """
    abs add and bool bytes call ceil complex contains copy deepcopy delattr delitem dir divmod
    enter eq exit float floor floordiv ge getattr getitem getstate gt hash iadd iand ifloordiv
    ilshift imod imul index instancecheck int invert ior ipow irshift isub iter itruediv ixor le
    len lshift lt mod mul ne neg or pos pow radd rand rdivmod reduce reduce_ex reversed rfloordiv
    rlshift rmod rmul ror round rpow rrshift rshift rsub rtruediv rxor setattr setitem sizeof
    sub subclasscheck truediv trunc xor
""".split()


class MockedObject:
    """A name from a module that was mocked out when the package was made."""

    _name: str

    def __new__(cls, *args, **kwargs):
        # Only the mocked module's __getattr__ may create these; anything else (an unpickler,
        # say) means a mocked object is really used.
        if not kwargs.get("_suppress_err"):
            raise NotImplementedError(
                f"Object '{cls._name}' was mocked out during packaging but it is being used in "
                "'__new__'. If this happens in load_pickle, the pickled object contains a "
                "mocked object: intern or extern its module instead of mocking it."
            )
        return super().__new__(cls)

    def __init__(self, name: str, _suppress_err: bool) -> None:
        object.__setattr__(self, "_name", name)

    def __repr__(self) -> str:
        return f"MockedObject({self._name})"


def _guard(method_name: str):
    def _not_implemented(self, *args, **kwargs):
        raise NotImplementedError(
            f"Object '{self._name}' was mocked out during packaging but it is being used in "
            f"'{method_name}'. Intern or extern the module it comes from to use it."
        )

    _not_implemented.__name__ = method_name
    return _not_implemented


for _method in _GUARDED_METHODS:
    setattr(MockedObject, f"__{_method}__", _guard(f"__{_method}__"))
