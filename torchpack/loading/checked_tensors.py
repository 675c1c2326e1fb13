"""torch's tensor rebuild functions as a safely loaded pickle may call them: arguments checked.

torch's rebuild helpers trust their arguments: ``set_`` grows a storage that is too small for
the sizes and strides it is given (a few bytes of pickle allocate gigabytes), sparse tensors
are built without their invariants checked (a CSR tensor with out-of-range indices corrupts
the heap when used), nested tensors are views described by offsets nobody checks. Under
``safe=True`` each helper is replaced by a :class:`~torchpack.loading.checked_calls.CheckedCall`
that checks sizes, strides and offsets against the storage, checks sparse tensors' invariants,
and refuses backward hooks and dunder attributes in a tensor's state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..errors import first_line
from .checked_calls import Check, CheckedCall, SafeLoad, real_object

# torch refuses more dimensions than this in most places; a pickle has no reason for more.
_MAX_DIMS = 64
_SPARSE_LAYOUTS = (
    torch.sparse_coo,
    torch.sparse_csr,
    torch.sparse_csc,
    torch.sparse_bsr,
    torch.sparse_bsc,
)
_QSCHEMES = (
    torch.per_tensor_affine,
    torch.per_channel_affine,
    torch.per_channel_affine_float_qparams,
)


def _dims(load: SafeLoad, name: str, what: str, values: object) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list)) or len(values) > _MAX_DIMS:
        raise load.refuse(f"the pickle calls {name} with {what} {values!r:.80}, not a shape")
    if not all(type(v) is int and v >= 0 for v in values):
        raise load.refuse(f"the pickle calls {name} with {what} {tuple(values)!r:.80}")
    return tuple(values)


def _check_view(
    load: SafeLoad,
    name: str,
    nbytes: int,
    itemsize: int,
    offset: object,
    size: object,
    stride: object,
) -> None:
    """A tensor of ``size``/``stride`` at element ``offset`` must lie inside ``nbytes``."""
    sizes = _dims(load, name, "size", size)
    strides = _dims(load, name, "stride", stride)
    if len(sizes) != len(strides) or type(offset) is not int or offset < 0:
        raise load.refuse(
            f"the pickle calls {name} with size {sizes}, stride {strides} and offset {offset!r}"
        )
    reach = sum((s - 1) * t for s, t in zip(sizes, strides, strict=True))
    elements = 0 if 0 in sizes else offset + 1 + reach
    needed = max(elements, offset) * itemsize
    if needed > nbytes:
        raise load.refuse(
            f"the pickle calls {name} for a tensor of size {sizes}, stride {strides} at offset "
            f"{offset} that needs {needed} bytes, but its storage holds {nbytes}"
        )


def _storage(load: SafeLoad, name: str, storage: object) -> torch.storage.TypedStorage:
    if not isinstance(storage, torch.storage.TypedStorage):
        raise load.refuse(
            f"the pickle calls {name} with a {type(storage).__name__}, not a storage it loaded"
        )
    return storage


def _check_flag(load: SafeLoad, name: str, what: str, value: object) -> None:
    if type(value) is not bool:
        raise load.refuse(f"the pickle calls {name} with {what} {value!r:.80}, not a bool")


def _check_hooks(load: SafeLoad, name: str, hooks: object) -> None:
    # torch never saves backward hooks (an empty OrderedDict): any would run code later.
    if not isinstance(hooks, Mapping) or hooks:
        raise load.refuse(f"the pickle calls {name} with backward hooks {hooks!r:.80}")


def _check_metadata(load: SafeLoad, name: str, metadata: object) -> None:
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(type(k) is str and type(v) is bool for k, v in metadata.items())
    ):
        raise load.refuse(f"the pickle calls {name} with tensor metadata {metadata!r:.80}")


def check_state(load: SafeLoad, name: str, state: object) -> None:
    """Attributes set on a rebuilt tensor: plain names only (no ``__class__``, ``__dict__``)."""
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    for part in parts:
        if part is None:
            continue
        if not isinstance(part, dict):
            raise load.refuse(f"the pickle calls {name} with a state of type {type(part).__name__}")
        for key in part:
            if type(key) is not str or (key.startswith("__") and key.endswith("__")):
                raise load.refuse(f"the pickle calls {name} to set the attribute {key!r:.80}")


def _check_tensor(load: SafeLoad, name: str, what: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise load.refuse(f"the pickle calls {name} with {what} of type {type(value).__name__}")
    return value


def _check_dtype(load: SafeLoad, name: str, dtype: object) -> torch.dtype:
    if not isinstance(dtype, torch.dtype):
        raise load.refuse(f"the pickle calls {name} with dtype {dtype!r:.80}")
    return dtype


def _check_arity(load: SafeLoad, name: str, args: tuple, kwargs: dict, low: int, high: int) -> None:
    if kwargs or not low <= len(args) <= high:
        raise load.refuse(
            f"the pickle calls {name} with {len(args)} arguments and {sorted(kwargs)}"
        )


def _check_rebuild_tensor(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    # (storage, offset, size, stride)
    _check_arity(load, name, args, kwargs, 4, 4)
    _check_storage_view(load, name, args)


def _check_rebuild_tensor_v2(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    # (storage, offset, size, stride, requires_grad, hooks[, metadata])
    _check_arity(load, name, args, kwargs, 6, 7)
    _check_storage_view(load, name, args)
    _check_flag(load, name, "requires_grad", args[4])
    _check_hooks(load, name, args[5])
    if len(args) > 6:
        _check_metadata(load, name, args[6])


def _check_storage_view(load: SafeLoad, name: str, args: tuple) -> None:
    storage = _storage(load, name, args[0])
    itemsize = torch._utils._element_size(storage.dtype)
    _check_view(load, name, storage._untyped_storage.nbytes(), itemsize, *args[1:4])


def _check_rebuild_tensor_v3(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    # (storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])
    _check_arity(load, name, args, kwargs, 7, 8)
    storage = _storage(load, name, args[0])
    dtype = _check_dtype(load, name, args[6])
    nbytes = storage._untyped_storage.nbytes()
    _check_view(load, name, nbytes, torch._utils._element_size(dtype), *args[1:4])
    _check_flag(load, name, "requires_grad", args[4])
    _check_hooks(load, name, args[5])
    if len(args) > 7:
        _check_metadata(load, name, args[7])


def _check_rebuild_parameter(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    # (data, requires_grad, hooks)
    _check_arity(load, name, args, kwargs, 3, 3)
    _check_parameter(load, name, args)


def _check_rebuild_parameter_with_state(
    load: SafeLoad, name: str, *args: Any, **kwargs: Any
) -> None:
    # (data, requires_grad, hooks, state)
    _check_arity(load, name, args, kwargs, 4, 4)
    _check_parameter(load, name, args)
    check_state(load, name, args[3])


def _check_parameter(load: SafeLoad, name: str, args: tuple) -> None:
    _check_tensor(load, name, "data", args[0])
    _check_flag(load, name, "requires_grad", args[1])
    _check_hooks(load, name, args[2])


def _check_rebuild_qtensor(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    # (storage, offset, size, stride, quantizer_params, requires_grad, hooks)
    _check_arity(load, name, args, kwargs, 7, 7)
    _check_storage_view(load, name, args)
    itemsize = torch._utils._element_size(args[0].dtype)
    numel = 1
    for size in args[2]:
        numel *= size
    # torch allocates the whole tensor before viewing the storage (stride 0 makes it bigger).
    load.charge(numel * itemsize, name)
    params = args[4]
    if not isinstance(params, tuple) or not params or params[0] not in _QSCHEMES:
        raise load.refuse(f"the pickle calls {name} with quantizer parameters {params!r:.80}")
    _check_flag(load, name, "requires_grad", args[5])
    _check_hooks(load, name, args[6])


def _check_rebuild_meta(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    # (dtype, size, stride, requires_grad): meta tensors hold no memory.
    _check_arity(load, name, args, kwargs, 4, 4)
    _check_dtype(load, name, args[0])
    if len(_dims(load, name, "size", args[1])) != len(_dims(load, name, "stride", args[2])):
        raise load.refuse(f"the pickle calls {name} with sizes and strides that do not match")
    _check_flag(load, name, "requires_grad", args[3])


def _check_sparse(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    # (layout, data): data is (indices, values, size[, is_coalesced]) for COO, else
    # (compressed_indices, plain_indices, values, size). torch builds the tensor without
    # checking its invariants (by default): out-of-range indices would corrupt memory when it
    # is used, so they are checked here, as torch.sparse.check_sparse_tensor_invariants would.
    _check_arity(load, name, args, kwargs, 2, 2)
    layout, data = args
    if layout not in _SPARSE_LAYOUTS or not isinstance(data, tuple):
        raise load.refuse(f"the pickle calls {name} with layout {layout!r:.40}")
    coo = layout == torch.sparse_coo
    if not (3 <= len(data) <= 4 if coo else len(data) == 4):
        raise load.refuse(f"the pickle calls {name} with {len(data)} parts for {layout}")
    for part in data[:2] if coo else data[:3]:
        _check_tensor(load, name, "an index or value part", part)
    size = _dims(load, name, "size", data[2] if coo else data[3])
    is_coalesced = data[3] if coo and len(data) == 4 else None
    if is_coalesced is not None:
        _check_flag(load, name, "is_coalesced", is_coalesced)
    try:
        if coo:
            torch._validate_sparse_coo_tensor_args(
                data[0], data[1], size, is_coalesced, check_pinning=False
            )
        else:
            torch._validate_sparse_compressed_tensor_args(
                data[0], data[1], data[2], size, layout, check_pinning=False
            )
    except RuntimeError as err:
        raise load.refuse(
            f"the pickle calls {name} for a {layout} tensor whose invariants do not hold: "
            f"{first_line(err)}"
        ) from None


def _check_nested(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    # (buffer, sizes, strides, storage_offsets): component i is the view of ``buffer`` at
    # offsets[i] with sizes[i] and strides[i]; torch does not check they lie inside it.
    _check_arity(load, name, args, kwargs, 4, 4)
    buffer, sizes, strides, offsets = (
        _check_tensor(load, name, what, value)
        for what, value in zip(("buffer", "sizes", "strides", "offsets"), args, strict=True)
    )
    if buffer.dim() != 1 or not buffer.is_contiguous():
        raise load.refuse(f"the pickle calls {name} with a buffer of shape {tuple(buffer.shape)}")
    if (
        sizes.dtype != torch.int64
        or strides.dtype != torch.int64
        or offsets.dtype != torch.int64
        or sizes.dim() != 2
        or strides.shape != sizes.shape
        or offsets.shape != (sizes.shape[0],)
    ):
        raise load.refuse(
            f"the pickle calls {name} with sizes, strides and offsets that do not match"
        )
    if bool((sizes < 0).any() or (strides < 0).any() or (offsets < 0).any()):
        raise load.refuse(f"the pickle calls {name} with negative sizes, strides or offsets")
    empty = (sizes == 0).any(dim=1)
    last = offsets + ((sizes - 1).clamp(min=0) * strides).sum(dim=1)
    if bool(((last >= buffer.numel()) & ~empty).any()):
        raise load.refuse(f"the pickle calls {name} with components outside its buffer")


def _check_wrapper_subclass(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    # (cls, dtype, size, stride, storage_offset, layout, device, requires_grad): no storage.
    _check_arity(load, name, args, kwargs, 8, 8)
    cls = real_object(args[0])
    if not (isinstance(cls, type) and issubclass(cls, torch.Tensor)):
        raise load.refuse(f"the pickle calls {name} with {cls!r:.80}, not a tensor subclass")
    _check_dtype(load, name, args[1])
    _dims(load, name, "size", args[2])
    _dims(load, name, "stride", args[3])
    if type(args[4]) is not int or args[4] < 0 or not isinstance(args[5], torch.layout):
        raise load.refuse(
            f"the pickle calls {name} with offset {args[4]!r:.40}, layout {args[5]!r:.40}"
        )
    check_device(load, name, args[6])
    _check_flag(load, name, "requires_grad", args[7])


def _check_device_copy(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    # (data, dtype, device, requires_grad): a copy of data, converted.
    _check_arity(load, name, args, kwargs, 4, 4)
    data = _check_tensor(load, name, "data", args[0])
    dtype = _check_dtype(load, name, args[1])
    check_device(load, name, args[2])
    _check_flag(load, name, "requires_grad", args[3])
    load.charge(data.numel() * torch._utils._element_size(dtype), name)


def check_device(load: SafeLoad, name: str, device: object) -> torch.device:
    """A device this machine has (tensors on others cannot be made)."""
    if not isinstance(device, (str, torch.device)):
        raise load.refuse(f"the pickle calls {name} with device {device!r:.80}")
    try:
        parsed = torch.device(device)
    except RuntimeError as err:
        raise load.refuse(f"the pickle calls {name} with device {device!r:.80}: {err}") from None
    if parsed.type not in ("cpu", "meta"):
        module = getattr(torch, parsed.type, None)
        available = getattr(module, "is_available", lambda: False)()
        count = getattr(module, "device_count", lambda: 1)() if available else 0
        if not available or (parsed.index is not None and parsed.index >= count):
            raise load.refuse(
                f"the pickle puts a tensor on {parsed}, which this machine does not have"
            )
    return parsed


def _check_from_type(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    # (func, new_type, args, state): func(*args) as new_type, then its state set.
    _check_arity(load, name, args, kwargs, 4, 4)
    func, new_type, func_args, state = args
    if type(func) is not CheckedCall or func.real not in CHECKED_TENSOR_CALLS:
        raise load.refuse(f"the pickle calls {name} with {func!r:.80}, not a tensor rebuild")
    new_type = real_object(new_type)
    if not (isinstance(new_type, type) and issubclass(new_type, torch.Tensor)):
        raise load.refuse(f"the pickle calls {name} with {new_type!r:.80}, not a tensor type")
    if not isinstance(func_args, tuple):
        raise load.refuse(
            f"the pickle calls {name} with arguments of type {type(func_args).__name__}"
        )
    check_state(load, name, state)


def _from_type(func: Callable[..., Any], new_type: Any, args: tuple, state: Any) -> torch.Tensor:
    return torch._tensor._rebuild_from_type_v2(func, real_object(new_type), args, state)


def _check_size(load: SafeLoad, name: str, *args: Any, **kwargs: Any) -> None:
    _check_arity(load, name, args, kwargs, 0, 1)
    if args:
        values = args[0]
        if not isinstance(values, (tuple, list)) or not all(type(v) is int for v in values):
            raise load.refuse(f"the pickle calls {name} with {values!r:.80}, not a shape")
        load.charge(8 * len(values), name)


_utils = torch._utils
CHECKED_TENSOR_CALLS: dict[Any, tuple[Check, Callable[..., Any] | None]] = {
    _utils._rebuild_tensor: (_check_rebuild_tensor, None),
    _utils._rebuild_tensor_v2: (_check_rebuild_tensor_v2, None),
    _utils._rebuild_tensor_v3: (_check_rebuild_tensor_v3, None),
    _utils._rebuild_parameter: (_check_rebuild_parameter, None),
    _utils._rebuild_parameter_with_state: (_check_rebuild_parameter_with_state, None),
    _utils._rebuild_sparse_tensor: (_check_sparse, None),
    _utils._rebuild_nested_tensor: (_check_nested, None),
    _utils._rebuild_qtensor: (_check_rebuild_qtensor, None),
    _utils._rebuild_meta_tensor_no_storage: (_check_rebuild_meta, None),
    _utils._rebuild_wrapper_subclass: (_check_wrapper_subclass, None),
    _utils._rebuild_device_tensor_from_cpu_tensor: (_check_device_copy, None),
    torch._tensor._rebuild_from_type_v2: (_check_from_type, _from_type),
    torch.Size: (_check_size, None),
}
