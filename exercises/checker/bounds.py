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
broadcasts, ...) hands the tag on. `launches` records each kernel launched, by name.
"""

import inspect

import numpy as np
import triton.language as tl
import triton.runtime.interpreter as interpreter


class OutOfBounds(Exception):
    """A load or store outside the tensor its pointer came from; raised before the access."""


launches: list[str] = []  # the name of every kernel launched since install (the checker clears it)


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

    def create_masked_load(ptrs, mask, *args):
        _check(ptrs, mask, "loaded")
        return masked_load(ptrs, mask, *args)

    def create_masked_store(ptrs, value, mask, *args):
        _check(ptrs, mask, "stored")
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
        return masked_store(ptr, value, interpreter.TensorHandle(np.ones_like(ptr.data, dtype=bool), tl.int1), None,
                            None)

    builder.create_masked_load, builder.create_masked_store = create_masked_load, create_masked_store
    builder.create_load, builder.create_store = create_load, create_store
    builder.create_atomic_rmw, builder.create_atomic_cas = create_atomic_rmw, create_atomic_cas

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


def out_of_bounds(error: BaseException) -> OutOfBounds | None:
    """The OutOfBounds behind an interpreter error (which wraps what a kernel raised), if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OutOfBounds):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
