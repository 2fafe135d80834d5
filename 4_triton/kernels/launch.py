"""How every kernel in this folder is launched, and the sizes they can hold: decided here,
beside the launches, as Liger-Kernel decides its kernels' in one `calculate_settings`.

A Triton block has a power of two in every dimension, so a dimension of n is padded to
`block(n)` and the padding masked. `tl.dot` (tensor cores) needs every tile dimension to be at
least 16, so a matmul's tiles are padded to 16 even for a 4-wide head; and a tile is capped
(64 on a side, 64 rows, 1024 elements) so a large batch becomes many programs rather than one
huge one. `calculate_settings` turns one program's tile into its grid, its block sizes and
its warps; each launch shape below (`rows`, `summed_rows`, `matmul`, `per_head`,
`per_document`, `flat`) says how a kernel family tiles its work, and a launcher only names
its shape: `kernel[plan.grid](..., **plan.meta)`. A weight gradient's sum over a large
batch's rows is shared among programs (`split`), each summing its own rows (partials.py).
The one-kernel step (fused_step.py) is one program per share of a batch: `programs_for`
picks how many, and its command line may set them and their warps (`fused_step_flags`).

The sizes a run may ask for are checked here too (`check_sizes`, `check_fused_sizes`: one
line naming what a kernel cannot hold), with the memory a run takes beyond its activations
(`partial_sums_bytes`, `fused_memory`), and each program's launch flags.
"""

import functools
from dataclasses import dataclass

from kernels import backend

backend.choose()  # before Triton loads: compiled on a CUDA GPU, else Triton's CPU interpreter
import triton  # noqa: E402

DOT_MIN = 16  # tl.dot's smallest tile dimension
MATMUL_TILE = 64  # a matmul tile is at most 64 x 64 (x 64 along K)
ROWS = 64  # rows a row-wise program (embedding, rmsnorm) takes at most
FLAT = 1024  # elements one program of a flat sweep takes (Adam, sums, cross-entropy's backward, means)
ROWS_PER_PROGRAM = 256  # rows of a batch one program sums into a weight gradient
MAX_SPLIT = 1024  # partial sums per weight gradient at most (past that, each program takes more rows)
MAX_TILE = 2**20  # Triton's limit on the numbers in one tensor of a program
WARPS = 4  # warps of a program whose tiles hold at most 64 x 64 numbers (Triton's default)


def block(n: int, at_least: int = 1, at_most: int | None = None) -> int:
    """The power-of-two block that holds n numbers (the rest masked), within the given bounds."""
    size = max(at_least, triton.next_power_of_2(max(1, n)))
    return min(size, at_most) if at_most else size


@dataclass(frozen=True)
class Launch:
    """One launch's settings: its grid, and the keywords it passes (the BLOCK_* sizes, num_warps).
    A sum split among programs also says how many rows each takes (`rows_each`)."""

    grid: tuple[int, ...]
    meta: dict
    rows_each: int = 0


def calculate_settings(grid: tuple[int, ...], tile: int, rows_each: int = 0, **blocks: int) -> Launch:
    """The one place warps are chosen: 4 while a program's largest tile holds at most 64 x 64
    numbers -- every tile of SPEC.md's model, at any batch -- then twice as many each time the
    tile grows fourfold, up to 32 (1024 threads): a bigger tile, more threads to share it, as
    Liger-Kernel's calculate_settings grows warps with the row."""
    warps = WARPS
    while tile > 64 * 64 * (warps // WARPS) ** 2 and warps < 32:
        warps *= 2
    return Launch(tuple(grid), {**blocks, "num_warps": warps}, rows_each)


# ---------------------------------------------------------------------------- each kernel family's shape
# (cached: a run launches the same shapes every step, and on a GPU without a graph the Python
# spent per launch is the step's time; a shape that splits a sum is cached by its split)

@functools.cache
def rows(M: int, C: int) -> Launch:
    """A row-wise kernel (embedding's forward, rmsnorm): a program takes up to ROWS whole rows
    of C (rows are independent, so a batch's B * T rows are simply split among programs)."""
    block_m, block_c = block(M, at_most=ROWS), block(C)
    return calculate_settings((triton.cdiv(M, block_m),), block_m * block_c, BLOCK_M=block_m, BLOCK_C=block_c)


def summed_rows(M: int, C: int, outputs: int) -> Launch:
    """A sum over M rows of C into each of `outputs` rows (the embedding's gradient): one program
    per output row and share of the batch's rows (`split_rows`), walking its rows ROWS at a time."""
    return _summed_rows(M, C, outputs, split(M))


@functools.cache
def _summed_rows(M: int, C: int, outputs: int, parts: int) -> Launch:
    block_m, block_c = block(M, at_most=ROWS), block(C)
    programs, rows_each = split_rows(M, block_m, parts)
    return calculate_settings((outputs, programs), block_m * block_c, rows_each, BLOCK_M=block_m, BLOCK_C=block_c)


def matmul(M: int, N: int, K: int, over: str) -> Launch:
    """A tile of y = x W^T (x (M, K), W (N, K)): at least 16 (tl.dot), at most 64 on a side.
    `over` names the output the grid covers: "MN" (y), "MK" (dx), or "NK" (dW, summed over M:
    one program per tile while M is small, else several, each over its own rows)."""
    return _matmul(M, N, K, over, split(M) if over == "NK" else 1)


@functools.cache
def _matmul(M: int, N: int, K: int, over: str, parts: int) -> Launch:
    block_m, block_n, block_k = (block(n, DOT_MIN, MATMUL_TILE) for n in (M, N, K))
    tile = max(block_m * block_n, block_m * block_k, block_n * block_k)
    blocks = dict(BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k)
    if over == "MN":
        return calculate_settings((triton.cdiv(M, block_m), triton.cdiv(N, block_n)), tile, **blocks)
    if over == "MK":
        return calculate_settings((triton.cdiv(M, block_m), triton.cdiv(K, block_k)), tile, **blocks)
    programs, rows_each = split_rows(M, block_m, parts)
    return calculate_settings((triton.cdiv(N, block_n), triton.cdiv(K, block_k), programs), tile, rows_each,
                              **blocks)


def matmul_tiles(M: int, N: int, K: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K) of a matmul's tiles (report/diagrams.py draws them)."""
    meta = matmul(M, N, K, "MN").meta
    return meta["BLOCK_M"], meta["BLOCK_N"], meta["BLOCK_K"]


@functools.cache
def per_head(B: int, H: int, T: int, D: int) -> Launch:
    """Attention: one program per (document, head), holding the head's T x T x D products."""
    block_t, block_d = block(T), block(D)
    return calculate_settings((B, H), block_t * block_t * block_d, BLOCK_T=block_t, BLOCK_D=block_d)


@functools.cache
def per_document(B: int, T: int, V: int) -> Launch:
    """Cross-entropy's forward: one program per document, its T x V logits whole."""
    block_t, block_v = block(T), block(V)
    return calculate_settings((B,), block_t * block_v, BLOCK_T=block_t, BLOCK_V=block_v)


@functools.cache
def flat(n: int, name: str = "BLOCK", programs: int | None = None) -> Launch:
    """A flat sweep over n numbers, FLAT at a time: as many programs as it takes, or `programs`
    (one: a single program loops over the blocks in a fixed order, as a mean must)."""
    size = block(n, at_most=FLAT)
    return calculate_settings((programs or triton.cdiv(n, size),), size, **{name: size})


def split(rows: int) -> int:
    """How many programs share a weight gradient's sum over `rows` rows: 1 up to 256 rows."""
    return min(MAX_SPLIT, triton.cdiv(rows, ROWS_PER_PROGRAM))


def split_rows(M: int, block_m: int, parts: int | None = None) -> tuple[int, int]:
    """(programs, rows each) for a sum over M rows in tiles of block_m, in `parts` (split(M)) or
    fewer: whole tiles per program."""
    rows_each = triton.cdiv(triton.cdiv(M, parts or split(M)), block_m) * block_m
    return triton.cdiv(M, rows_each), rows_each


def ensure_contiguous(function):
    """Make every tensor argument contiguous before a kernel indexes it as rows of memory (a
    copy only where one is not): for the autograd Functions, where PyTorch hands in tensors of
    any strides, as Liger-Kernel's decorator of the same name does."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        def fix(value):
            return value.contiguous() if hasattr(value, "is_contiguous") else value
        return function(*map(fix, args), **{key: fix(value) for key, value in kwargs.items()})
    return wrapper


# ---------------------------------------------------------------------------- the sizes a run may ask for
# (the runner asks before training: a size no kernel can hold is one line, a usage error)

def check_sizes(args) -> str | None:
    """What the per-op kernels (main.py) cannot hold, or None. The attention kernels keep a head's
    (T, T, head_dim) products in one program, T and head_dim padded to powers of two; and every
    kernel indexes its activations with 32-bit integers."""
    T, D = block(args.block_size), block(args.n_embd // args.n_head)
    if T * T * D > MAX_TILE:
        return (f"stage 4's attention kernel holds a head's T x T x head_dim products in one program, here "
                f"{T} x {T} x {D} (padded to powers of two), and Triton allows {MAX_TILE:,}; use a shorter "
                f"--block-size or a smaller head_dim (--n-embd / --n-head)")
    largest = args.batch_size * args.block_size * max(4 * args.n_embd, 256)  # fc1's output, or a vocabulary's logits
    if largest >= 2**31:
        return (f"stage 4's kernels index activations with 32-bit integers, and --batch-size {args.batch_size} "
                f"makes one of {largest:,} numbers (over 2^31); use a smaller --batch-size")
    return None


MAX_FUSED_STEPS = 10**7  # the one-kernel step's per-step arrays: 40 bytes a step, 0.4 GB at most


def check_fused_sizes(args) -> str | None:
    """What the one-kernel step (fused_step.py) cannot hold, or None: SPEC.md's one-layer model
    only, widths that are powers of two >= 16 (it unrolls the model on tl.dot tiles), a run's
    documents counted in 32 bits, and one program for a whole-run launch."""
    if args.programs is not None and args.programs <= 0:
        return "--programs must be positive"
    if args.launch == "run" and (args.programs or 1) != 1:
        return "--launch run is one program (no barrier crosses programs); drop --programs"
    if args.n_layer != 1:
        return "the one-kernel step implements SPEC.md's one-layer model; use 4_triton/main.py for --n-layer > 1"
    if args.steps > MAX_FUSED_STEPS:
        return (f"the one-kernel step keeps a few numbers per step on the device (Adam's step scalars, the "
                f"losses, the positions): --steps must be at most {MAX_FUSED_STEPS:,}, got {args.steps:,}")
    if args.steps * args.batch_size >= 2**31:
        return (f"the one-kernel step counts a run's documents with 32-bit integers: --steps x --batch-size "
                f"must stay below 2^31, got {args.steps * args.batch_size:,}")
    for flag in ("n_embd", "block_size"):
        value = getattr(args, flag)
        if value < 16 or value & (value - 1):
            return (f"the one-kernel step needs --{flag.replace('_', '-')} to be a power of two >= 16, "
                    f"got {value}; use 4_triton/main.py for other sizes")
    return None


def partial_sums_bytes(config, batch_size: int, itemsize: int) -> int:
    """Memory for the partial sums of a large batch's weight gradients (kernels/partials.py):
    up to MAX_SPLIT copies of the largest gradient, at once (shared/memory.py adds this)."""
    C, T, V = config.n_embd, config.block_size, config.vocab_size
    copies = split(batch_size * T)
    return 0 if copies == 1 else copies * max(4 * C * C, V * C, (V + T) * C) * itemsize


def tile_bytes(config, batch_size: int, itemsize: int) -> int:
    """What the one-kernel step holds per program beyond the weights (shared/memory.py adds this):
    a tile's attention, per head the (R, R) scores and probabilities and their two gradients,
    R = block_size rows at one document per tile (`--docs-per-tile` multiplies R); in registers
    on a GPU, as arrays in the interpreter."""
    return 4 * config.n_head * config.block_size ** 2 * itemsize


def fused_memory():
    """How the one-kernel step holds memory, for the runner's fit check (shared/memory.py): no
    activations kept between kernels (they live in registers), every document padded to
    block_size, and its tiles (tile_bytes)."""
    from shared.memory import Memory  # (here, not above: a kernel file runs on its own, without shared/)

    return Memory(keeps_activations=False, pads_to_block_size=True, extra=tile_bytes)


# ---------------------------------------------------------------------------- the programs' launch flags

def per_op_flags(parser) -> None:
    """main.py's launch setting, on its command line."""
    parser.add_argument("--no-cuda-graph", action="store_true",
                        help="on a GPU, launch every kernel from Python instead of replaying one graph")


PROGRAMS_PER_SM = 4  # resident programs per SM for the one-kernel step: enough to hide each other's latency


def programs_for(batch_size: int, interpret: bool) -> int:
    """Programs sharing a batch in the one-kernel step: a few per SM on a GPU; 4 in the
    interpreter, so its reduction runs there too; never more than the documents."""
    if interpret:
        return min(batch_size, 4)
    import torch

    return min(batch_size, PROGRAMS_PER_SM * torch.cuda.get_device_properties(0).multi_processor_count)


def fused_step_flags(parser) -> None:
    """The one-kernel step's launch settings, on its command line (fused_step.py)."""
    parser.add_argument("--launch", choices=["step", "run"], default="step",
                        help="one launch per step (each waits for its loss), or the whole run in one launch "
                             "(one program: batches then run on one SM)")
    parser.add_argument("--programs", type=int, default=None,
                        help=f"programs sharing a batch (default {PROGRAMS_PER_SM} per SM on a GPU, 4 in the "
                             "interpreter; never more than the batch's tiles)")
    parser.add_argument("--docs-per-tile", type=int, default=1, choices=[1, 2, 4, 8],
                        help="documents a program puts through the model together, as one tile of rows")
    parser.add_argument("--warps", type=int, default=4, choices=[1, 2, 4, 8, 16], help="warps per program")
