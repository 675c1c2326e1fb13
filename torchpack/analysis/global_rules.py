"""Which pickle globals are harmless reconstruction helpers, and which are known to be dangerous.

Torch-free: ``torchpack audit`` judges globals by name without importing anything, and safe
loading (:mod:`torchpack.loading.safe_globals`) starts from the same lists.
"""

from __future__ import annotations

from .glob_group import GlobGroup

HARMLESS_GLOBALS = frozenset(
    {
        # Plain containers and values, and what protocol 2 uses to rebuild objects and bytes.
        "builtins.set",
        "builtins.frozenset",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.complex",
        "builtins.bool",
        "builtins.slice",
        "builtins.range",
        "builtins.object",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
        "collections.Counter",
        "copyreg._reconstructor",
        "_codecs.encode",
        # torch's tensor, parameter and storage rebuild functions.
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_sparse_tensor",
        "torch._utils._rebuild_nested_tensor",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "torch._utils._rebuild_wrapper_subclass",
        "torch._utils._rebuild_device_tensor_from_cpu_tensor",
        "torch._tensor._rebuild_from_type_v2",
        "torch.serialization._get_layout",
        "torch.nn.parameter.Parameter",
        "torch.nn.parameter.Buffer",
        "torch.Tensor",
        "torch.Size",
        "torch.device",
        "torch.UntypedStorage",
    }
)

# torch.nn module classes: unpickling one only fills its __dict__.
NN_MODULE_CLASSES = GlobGroup("torch.nn.modules.**")

# By name, for tools that cannot import torch to look: storage classes, dtypes, layouts,
# memory formats and quantization schemes are plain values.
TORCH_VALUE_NAMES = GlobGroup(
    [
        "torch.*Storage",
        "torch.float*",
        "torch.int*",
        "torch.uint*",
        "torch.bfloat16",
        "torch.half",
        "torch.double",
        "torch.long",
        "torch.short",
        "torch.bool",
        "torch.complex*",
        "torch.cfloat",
        "torch.cdouble",
        "torch.qint*",
        "torch.quint*",
        "torch.bits*",
        "torch.strided",
        "torch.sparse_*",
        "torch._mkldnn",
        "torch.jagged",
        "torch.*_format",
        "torch.per_*",
    ]
)

# Callables that run code, touch the system or fetch things: flagged by `torchpack audit`,
# refused by safe loading.
DANGEROUS_GLOBALS = GlobGroup(
    [
        "builtins.exec",
        "builtins.eval",
        "builtins.compile",
        "builtins.__import__",
        "builtins.getattr",
        "builtins.setattr",
        "builtins.delattr",
        "builtins.open",
        "builtins.globals",
        "builtins.locals",
        "builtins.vars",
        "builtins.breakpoint",
        "builtins.input",
        "__builtin__.**",
        "os.**",
        "posix.**",
        "nt.**",
        "subprocess.**",
        "sys.**",
        "importlib.**",
        "runpy.**",
        "shutil.**",
        "socket.**",
        "pickle.**",
        "_pickle.**",
        "marshal.**",
        "ctypes.**",
        "code.**",
        "codeop.**",
        "pty.**",
        "multiprocessing.**",
        "webbrowser.**",
        "urllib.**",
        "http.**",
        "pathlib.**",
        "io.**",
        "_io.**",
        "types.**",
        "functools.partial",
        "operator.attrgetter",
        "operator.methodcaller",
        "operator.itemgetter",
        "torch.hub.**",
        "torch.load",
        "torch.serialization.load",
        "torch.jit.load",
        "torch.ops.**",
        "torch._ops.**",
        "numpy.load",
    ]
)


def is_harmless(module: str, name: str) -> bool:
    """By name: a reconstruction helper, a torch value, or a ``torch.nn`` module class."""
    full_name = f"{module}.{name}"
    if full_name in HARMLESS_GLOBALS:
        return True
    # A dotted name reaches through an attribute (`conv.F.conv2d`): not what the rules mean.
    return "." not in name and (
        TORCH_VALUE_NAMES.matches(full_name) or NN_MODULE_CLASSES.matches(module)
    )
