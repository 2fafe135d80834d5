"""Launch settings of every kernel in this folder, chosen in one place: tile sizes, how a
batch's rows are shared among programs, and contiguous inputs.

A Triton block has a power of two in every dimension, so a dimension of n is padded to
`block(n)` and the padding masked. `tl.dot` (tensor cores) needs every tile dimension to be at
least 16, so a matmul's tiles are padded to 16 even for a 4-wide head; and a tile is capped
(64 on a side, 64 rows, 1024 elements) so a large batch becomes many programs rather than one
huge one. Liger-Kernel keeps the same decisions in one `calculate_settings`.
"""

import functools

import triton

DOT_MIN = 16  # tl.dot's smallest tile dimension
MATMUL_TILE = 64  # a matmul tile is at most 64 x 64 (x 64 along K)
ROWS = 64  # rows a row-wise program (embedding, rmsnorm) takes at most
FLAT = 1024  # elements one program of a flat sweep takes (Adam, sums, cross-entropy's backward, means)
ROWS_PER_PROGRAM = 256  # rows of a batch one program sums into a weight gradient
MAX_SPLIT = 1024  # partial sums per weight gradient at most (past that, each program takes more rows)


def block(n: int, at_least: int = 1, at_most: int | None = None) -> int:
    """The power-of-two block that holds n numbers (the rest masked), within the given bounds."""
    size = max(at_least, triton.next_power_of_2(max(1, n)))
    return min(size, at_most) if at_most else size


def matmul_tiles(M: int, N: int, K: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K) of a matmul's tiles: at least 16 (tl.dot), at most 64."""
    return tuple(block(n, DOT_MIN, MATMUL_TILE) for n in (M, N, K))


def row_block(M: int) -> int:
    """Rows per program of a row-wise kernel: all M when there are few, else 64."""
    return block(M, at_most=ROWS)


def flat_block(n: int) -> int:
    """Elements per program of a flat sweep over n numbers."""
    return block(n, at_most=FLAT)


def split(rows: int) -> int:
    """How many programs share a weight gradient's sum over `rows` rows: 1 up to 256 rows."""
    return min(MAX_SPLIT, triton.cdiv(rows, ROWS_PER_PROGRAM))


def split_rows(M: int, block_m: int) -> tuple[int, int]:
    """(programs, rows each) for a sum over M rows in tiles of block_m: whole tiles per program."""
    rows = triton.cdiv(triton.cdiv(M, split(M)), block_m) * block_m
    return triton.cdiv(M, rows), rows


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


# ---------------------------------------------------------------------------- the one-kernel step

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
