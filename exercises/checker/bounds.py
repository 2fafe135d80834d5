"""Triton's interpreter with every load and store checked against the buffers a kernel was given.

On a GPU a load past the end of a tensor reads whatever lies there, and a store past it
overwrites someone else's memory; in the interpreter, which runs each program with NumPy on
the CPU, the same store writes into the Python process's own heap, and the process dies later
in glibc (`free(): invalid pointer`), differently on every run. So before the interpreter
touches memory, this module checks every active lane of every load, store and atomic: its
address must lie inside the tensor its pointer was computed from. If not, the kernel stops
with `OutOfBounds`, before the access, and says which program, which buffer, which offset:

    program (2,) stored y_ptr at offset 1040, past the end (1036 elements): mask the store

How a pointer knows its tensor: a kernel's tensor arguments become pointer handles when the
launch starts; `install` tags each with its buffer (name, address, extent), and every
interpreter operation that makes a pointer from a pointer (`x_ptr + offsets`, `[:, None]`,
broadcasts, ...) hands the tag on. `launches` records each kernel launched, by name, and
`programs` how many programs it ran; `stores` the addresses every store wrote, so that
`stored_mask` can tell a checker which elements of a tensor some kernel stored.

Two things the interpreter does that a GPU does not are made to behave as on a GPU: a masked
load without `other=` leaves its masked-off lanes undefined there, so here they are NaN (a
reduction over them shows it), and `tl.dot` multiplies float32 in TF32 unless asked for
`input_precision="ieee"`, so here its inputs are rounded to TF32's 10-bit mantissa first.
"""

import contextlib
import inspect

import numpy as np
import triton.language as tl
import triton.runtime.interpreter as interpreter


class OutOfBounds(Exception):
    """A load or store outside the tensor its pointer came from; raised before the access."""


launches: list[str] = []  # the name of every kernel launched since install (the checker clears it)
programs: list[int] = []  # how many programs each of those launches ran
stores: list[np.ndarray] | None = None  # a checker sets a list: the byte addresses every store wrote


class Buffer:
    """One tensor argument of a launch: its parameter name and the bytes it spans."""

    def __init__(self, name: str, tensor):
        self.name = name
        self.start = tensor.data_ptr()
        self.itemsize = tensor.element_size()
        span = 0 if tensor.numel() == 0 else 1 + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride()))
        self.elements = span
        self.end = self.start + span * self.itemsize


class Launch:
    def __init__(self, kernel: str, buffers: dict[int, Buffer], grid_ndim: int):
        self.kernel, self.buffers, self.grid_ndim = kernel, buffers, grid_ndim


current: Launch | None = None


def _program() -> str:
    index = interpreter.interpreter_builder.grid_idx or (0, 0, 0)
    ndim = current.grid_ndim if current else 3
    return "(" + ", ".join(str(i) for i in index[:ndim]) + ("," if ndim == 1 else "") + ")"


def _check(ptrs, mask, verb: str, masked: bool = True) -> None:
    """Raise OutOfBounds if an active lane of `ptrs` (where `mask` is true) lies outside its buffer;
    `masked` says whether the kernel gave a mask at all."""
    addresses = np.asarray(ptrs.data, dtype=np.uint64)
    active = np.broadcast_to(np.asarray(mask.data, dtype=bool), addresses.shape) if mask is not None else None
    if active is not None and not active.any():
        return
    access = max(1, ptrs.get_element_ty().primitive_bitwidth // 8)
    buffer = ptrs.attr.get("buffer")
    candidates = [buffer] if buffer else list(current.buffers.values()) if current else []
    if not candidates:
        return
    signed = addresses.astype(np.int64)
    inside = np.zeros(addresses.shape, dtype=bool)
    for b in candidates:
        inside |= (signed >= b.start) & (signed + access <= b.end)
    outside = ~inside if active is None else active & ~inside
    if not outside.any():
        return
    first = tuple(int(i) for i in np.argwhere(outside)[0])
    address = int(signed[first])
    b = buffer or min(candidates, key=lambda c: abs(address - c.start))
    offset = (address - b.start) // b.itemsize
    where = "before the start" if offset < 0 else "past the end"
    others = int(outside.sum()) - 1
    more = f" (and {others} more lane{'s' if others > 1 else ''} outside it)" if others else ""
    noun = {"loaded": "load", "stored": "store"}.get(verb, verb)
    fix = f"mask the {noun}" if not masked else (f"the {noun}'s mask lets this lane through: check the mask and the "
                                                  f"offsets (a row stride?)")
    raise OutOfBounds(f"program {_program()} {verb} {b.name} at offset {offset}, {where} ({b.elements} "
                      f"element{'s' if b.elements != 1 else ''}){more}: {fix}")


def _tagging(method):
    """Wrap an interpreter operation so that a pointer made from a tagged pointer keeps the tag."""
    def wrapped(*args, **kwargs):
        result = method(*args, **kwargs)
        if isinstance(result, interpreter.TensorHandle) and isinstance(result.dtype, tl.pointer_type) \
                and "buffer" not in result.attr:
            for arg in args:
                if isinstance(arg, interpreter.TensorHandle) and "buffer" in arg.attr:
                    result.attr["buffer"] = arg.attr["buffer"]
                    break
        return result
    return wrapped


def install() -> None:
    """Check the interpreter's memory accesses from now on (once per process)."""
    builder = interpreter.interpreter_builder
    if getattr(builder, "_bounds_checked", False):
        return
    builder._bounds_checked = True
    for name in dir(type(builder)):
        if name.startswith("create_"):
            setattr(builder, name, _tagging(getattr(builder, name)))

    masked_load, masked_store = builder.create_masked_load, builder.create_masked_store
    atomic_rmw, atomic_cas = builder.create_atomic_rmw, builder.create_atomic_cas

    def create_masked_load(ptrs, mask, other, *args):
        _check(ptrs, mask, "loaded")
        loaded = masked_load(ptrs, mask, other, *args)
        if other is None and loaded.data.dtype.kind == "f":  # lanes a GPU leaves undefined
            off = ~np.broadcast_to(np.asarray(mask.data, dtype=bool), loaded.data.shape)
            if off.any():
                loaded.data = np.where(off, np.nan, loaded.data).astype(loaded.data.dtype)
        return loaded

    def create_masked_store(ptrs, value, mask, *args):
        _check(ptrs, mask, "stored")
        _record_store(ptrs, mask)
        return masked_store(ptrs, value, mask, *args)

    def create_atomic_rmw(op, ptr, val, mask, *args):
        _check(ptr, mask, "updated atomically")
        return atomic_rmw(op, ptr, val, mask, *args)

    def create_atomic_cas(ptr, cmp, val, *args):
        _check(ptr, None, "compared-and-swapped")
        return atomic_cas(ptr, cmp, val, *args)

    def create_load(ptr, *args):  # no mask given: every lane loads
        _check(ptr, None, "loaded", masked=False)
        return masked_load(ptr, interpreter.TensorHandle(np.ones_like(ptr.data, dtype=bool), tl.int1), None, None,
                           None, False)

    def create_store(ptr, value, *args):
        _check(ptr, None, "stored", masked=False)
        _record_store(ptr, None)
        return masked_store(ptr, value, interpreter.TensorHandle(np.ones_like(ptr.data, dtype=bool), tl.int1), None,
                            None)

    builder.create_masked_load, builder.create_masked_store = create_masked_load, create_masked_store
    builder.create_load, builder.create_store = create_load, create_store
    builder.create_atomic_rmw, builder.create_atomic_cas = create_atomic_rmw, create_atomic_cas

    dot, set_grid_dim = builder.create_dot, builder.set_grid_dim

    def create_dot(a, b, d, input_precision, *args):
        if _is_tf32(input_precision) and a.data.dtype == np.float32 and b.data.dtype == np.float32:
            a = interpreter.TensorHandle(tf32(a.data), a.dtype)
            b = interpreter.TensorHandle(tf32(b.data), b.dtype)
        return dot(a, b, d, input_precision, *args)

    def record_grid(nx, ny, nz):
        programs.append(int(nx) * int(ny) * int(nz))
        return set_grid_dim(nx, ny, nz)

    builder.create_dot, builder.set_grid_dim = create_dot, record_grid

    init_args, implicit_cvt = interpreter.GridExecutor._init_args_hst, interpreter._implicit_cvt

    def _init_args_hst(self, args_dev, kwargs):
        global current
        args_hst, kwargs_hst = init_args(self, args_dev, kwargs)
        names = inspect.getfullargspec(self.fn).args
        buffers = {}
        for name, arg in [*zip(names, args_hst), *kwargs_hst.items()]:
            if hasattr(arg, "data_ptr"):
                buffers[id(arg)] = Buffer(name, arg)
        grid_ndim = 3 if callable(self.grid) else len(self.grid)
        current = Launch(self.fn.__name__, buffers, grid_ndim)
        launches.append(self.fn.__name__)
        return args_hst, kwargs_hst

    def _implicit_cvt(arg):
        converted = implicit_cvt(arg)
        if current is not None and id(arg) in current.buffers and hasattr(converted, "handle"):
            converted.handle.attr["buffer"] = current.buffers[id(arg)]
        return converted

    interpreter.GridExecutor._init_args_hst = _init_args_hst
    interpreter._implicit_cvt = _implicit_cvt


def _record_store(ptrs, mask) -> None:
    if stores is None:
        return
    addresses = np.asarray(ptrs.data, dtype=np.uint64)
    if mask is not None:
        addresses = addresses[np.broadcast_to(np.asarray(mask.data, dtype=bool), addresses.shape)]
    stores.append(addresses.ravel().copy())


def stored_mask(tensor) -> np.ndarray:
    """Which elements of `tensor` a kernel stored since `stores` was cleared (its shape, bools)."""
    shape, strides = tuple(tensor.shape), tuple(tensor.stride())
    offsets = np.zeros(shape, dtype=np.int64)
    for axis, (n, stride) in enumerate(zip(shape, strides)):
        offsets = offsets + (np.arange(n, dtype=np.int64) * stride).reshape([-1 if i == axis else 1
                                                                             for i in range(len(shape))])
    addresses = (tensor.data_ptr() + offsets * tensor.element_size()).astype(np.uint64)
    written = np.concatenate(stores) if stores else np.zeros(0, dtype=np.uint64)
    return np.isin(addresses, written)


def _is_tf32(precision) -> bool:
    return "TF32" in str(precision) and "TF32x3" not in str(precision)


def tf32(values: np.ndarray) -> np.ndarray:
    """float32 rounded to TF32 (10 mantissa bits, to nearest even), as a GPU's tensor cores read it."""
    bits = values.astype(np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0xFFF) + ((bits >> np.uint32(13)) & np.uint32(1))) & np.uint32(0xFFFFE000)
    return np.where(np.isfinite(values), rounded.view(np.float32), values).astype(np.float32)


@contextlib.contextmanager
def counting_launches():
    """Within: every launch is recorded by its kernel's name in the list yielded, and not run."""
    launched: list[str] = []
    run = interpreter.GridExecutor.__call__

    def count(self, *args, **kwargs):
        launched.append(self.fn.__name__)

    interpreter.GridExecutor.__call__ = count
    try:
        yield launched
    finally:
        interpreter.GridExecutor.__call__ = run


def out_of_bounds(error: BaseException) -> OutOfBounds | None:
    """The OutOfBounds behind an interpreter error (which wraps what a kernel raised), if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OutOfBounds):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
