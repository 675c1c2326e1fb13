"""Which pickle globals are harmless reconstruction helpers, and which are known to be dangerous.

Torch-free: ``torchpack audit`` judges globals by name and by what the pickle does with them
(:mod:`~torchpack.analysis.pickle_scanner`) without importing anything. Safe loading
(:mod:`torchpack.loading.safe_globals`) judges the resolved objects by the same categories.
"""

from __future__ import annotations

from .glob_group import GlobGroup
from .pickle_scanner import BUILT, CALL, NEW

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
        "torch.Size",
        "torch.device",
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
        # The importer itself: its import_module reaches any module.
        "torch_package_importer.**",
        "torch.load",
        "torch.serialization.load",
        "torch.jit.load",
        "torch.ops.**",
        "torch._ops.**",
        "numpy.load",
    ]
)


# Where torch's operator functions live (a model may hold one: torch._C._nn.gelu, F.relu).
OPERATOR_MODULES = frozenset(
    {
        "torch._C._nn",
        "torch._C._fft",
        "torch._C._linalg",
        "torch._C._special",
        "torch._C._nested",
        "torch._C._sparse",
        "torch.nn.functional",
    }
)
# Protocol 3 reaches torch.relu as getattr(torch._C._VariableFunctionsClass, "relu").
_VARIABLE_FUNCTIONS = "_VariableFunctionsClass."

# May be held as values, never called: calling one allocates at will or runs the importer.
VALUE_ONLY_GLOBALS = frozenset(
    {
        "torch.Tensor",
        "torch.jit._script.unpackage_script_module",
        "torch.fx.graph_module.reduce_package_graph_module",
        "torch.fx._symbolic_trace.Tracer",
    }
)


def is_operator_name(module: str, name: str) -> bool:
    """Named like a torch operator function (safe loading checks the object itself)."""
    if module == "torch._C" and name.startswith(_VARIABLE_FUNCTIONS):
        op = name[len(_VARIABLE_FUNCTIONS) :]
        return "." not in op and not op.startswith("_") and op != "from_file"
    return module in OPERATOR_MODULES and "." not in name


def judge(module: str, name: str, uses: int) -> str | None:
    """``harmless``, ``dangerous`` or None (unknown), by name and by what the pickle does
    with the global (``uses`` from the scan), as safe loading would decide."""
    full_name = f"{module}.{name}"
    if DANGEROUS_GLOBALS.matches(full_name):
        return "dangerous"
    if full_name in HARMLESS_GLOBALS and full_name not in VALUE_ONLY_GLOBALS:
        return "harmless"
    value_only = (
        full_name in VALUE_ONLY_GLOBALS
        or is_operator_name(module, name)
        or ("." not in name and TORCH_VALUE_NAMES.matches(full_name))
    )
    if value_only:
        return "dangerous" if uses & (CALL | NEW | BUILT) else "harmless"
    if "." not in name and NN_MODULE_CLASSES.matches(module):
        # Instantiated without the constructor (NEWOBJ) is how modules are pickled.
        return "dangerous" if uses & CALL else "harmless"
    return None
