"""Our Triton kernels for every op of microgpt's training step, one file per op family.

Each file reads in the order of the Triton tutorials: a naive PyTorch reference (and what
its memory traffic is), the forward kernel, the backward kernel with its derivation above
it, the launcher, a `torch.autograd.Function`, and a benchmark.

Shapes: activations are (B, T, C): B documents of T = block_size rows each, a document's n
real rows first and padding after. Each document's n is read from device memory, so one
compiled kernel, and one captured CUDA graph, serves every batch of every length. Padded
rows hold finite filler and receive zero gradient.

Weights are views of one flat parameter buffer and their gradients views of one flat
gradient buffer. Each backward kernel *writes* its weight's gradient straight into that
buffer (every weight is used once per step, so there is nothing to add to) and hands
autograd `None` for it -- the "gradient accumulation fusion" of Megatron-LM -- so Adam can
update all 4,192 parameters in one launch with no copies.

Where the kernels run -- compiled for a CUDA GPU, or through Triton's CPU interpreter, which
emulates every program with NumPy -- is decided by `backend.choose()`, which every kernel file
calls before it imports Triton. Tile sizes and how a batch is shared among programs are
decided in `launch.py`. This package itself imports neither Triton nor PyTorch: it holds what
the runner asks of stage 4 (its size limits, the memory its partial sums take) and the count
of a step's launches.
"""


def kernels_per_step(n_layer: int, batch_size: int = 1, block_size: int = 16) -> int:
    """Launches in one training step of main.py's model (tests/test_stage4.py counts them).

    Per layer 18: forward 7 (two rmsnorms that pass the residual on, the q/k/v, output, fc1
    and fc2 matmuls, attention) and backward 11 (two for each matmul, dx and dW; attention;
    the two rmsnorms). Once per step 11: forward 5 (embedding, the first rmsnorm, lm_head,
    cross-entropy and the batch mean of its losses), backward 5 (cross-entropy's scaling,
    lm_head's dx and dW, the first rmsnorm, embedding) and Adam. A batch of more rows than
    one program sums (kernels/partials.py) adds an ordered sum of partials after each weight
    gradient that sums over the rows: every matmul's dW and the embedding's, 4 per layer + 2."""
    from kernels.launch import split

    reductions = 4 * n_layer + 2 if split(batch_size * block_size) > 1 else 0
    return 11 + 18 * n_layer + reductions


MAX_TILE = 2**20  # Triton's limit on the numbers in one tensor of a program


def check_sizes(args, parser) -> None:
    """Refuse, as a usage error, sizes a kernel cannot hold. The attention kernels keep a head's
    (T, T, head_dim) products in one program, T and head_dim padded to powers of two; and every
    kernel indexes its activations with 32-bit integers."""
    from kernels.launch import block

    T, D = block(args.block_size), block(args.n_embd // args.n_head)
    if T * T * D > MAX_TILE:
        parser.error(f"stage 4's attention kernel holds a head's T x T x head_dim products in one program, here "
                     f"{T} x {T} x {D} (padded to powers of two), and Triton allows {MAX_TILE:,}; use a shorter "
                     f"--block-size or a smaller head_dim (--n-embd / --n-head)")
    largest = args.batch_size * args.block_size * max(4 * args.n_embd, 256)  # fc1's output, or a vocabulary's logits
    if largest >= 2**31:
        parser.error(f"stage 4's kernels index activations with 32-bit integers, and --batch-size "
                     f"{args.batch_size} makes one of {largest:,} numbers (over 2^31); use a smaller --batch-size")


MAX_FUSED_STEPS = 10**7  # its per-step arrays: 40 bytes a step, 0.4 GB at most


def check_fused_sizes(args, parser) -> None:
    """What the one-kernel step (fused_step.py) can hold, refused as a usage error: SPEC.md's
    one-layer model only, widths that are powers of two >= 16 (it unrolls the model on tl.dot
    tiles), a run's documents counted in 32 bits, and one program for a whole-run launch."""
    if args.programs is not None and args.programs <= 0:
        parser.error("--programs must be positive")
    if args.launch == "run" and (args.programs or 1) != 1:
        parser.error("--launch run is one program (no barrier crosses programs); drop --programs")
    if args.n_layer != 1:
        parser.error("the one-kernel step implements SPEC.md's one-layer model; use 4_triton/main.py "
                     "for --n-layer > 1")
    if args.steps > MAX_FUSED_STEPS:
        parser.error(f"the one-kernel step keeps a few numbers per step on the device (Adam's step scalars, the "
                     f"losses, the positions): --steps must be at most {MAX_FUSED_STEPS:,}, got {args.steps:,}")
    if args.steps * args.batch_size >= 2**31:
        parser.error(f"the one-kernel step counts a run's documents with 32-bit integers: --steps x --batch-size "
                     f"must stay below 2^31, got {args.steps * args.batch_size:,}")
    for flag in ("n_embd", "block_size"):
        value = getattr(args, flag)
        if value < 16 or value & (value - 1):
            parser.error(f"the one-kernel step needs --{flag.replace('_', '-')} to be a power of two >= 16, "
                         f"got {value}; use 4_triton/main.py for other sizes")


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


def partial_sums_bytes(config, batch_size: int, itemsize: int) -> int:
    """Memory for the partial sums of a large batch's weight gradients (kernels/partials.py):
    up to MAX_SPLIT copies of the largest gradient, at once (shared/memory.py adds this)."""
    from kernels.launch import split

    C, T, V = config.n_embd, config.block_size, config.vocab_size
    copies = split(batch_size * T)
    return 0 if copies == 1 else copies * max(4 * C * C, V * C, (V + T) * C) * itemsize


def run_on_its_own(name: str, check, bench, tolerance: float = 1e-5) -> int:
    """What a kernel file does when run as a program: `check(device)` compares its forward and
    backward with the PyTorch reference ({what: largest absolute difference}); on a GPU,
    `bench()` times it with triton.testing.do_bench. One line; exit 1 if a difference is too big."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    errors = check(device)
    where = f"compiled on {torch.cuda.get_device_name()}" if device == "cuda" else "through Triton's interpreter"
    ok = max(errors.values()) <= tolerance
    line = (f"{name}: {'matches' if ok else 'DIFFERS FROM'} PyTorch in float32 ({where}); largest |ours - PyTorch|: "
            + ", ".join(f"{what} {err:.1e}" for what, err in errors.items()) + f" (tolerance {tolerance:.0e})")
    if device == "cuda":
        times = bench()
        theirs = times.get("torch_us", times.get("torch_foreach_us"))
        line += f"; one call, launch included: ours {times['triton_us']:.1f} µs, PyTorch {theirs:.1f} µs"
    print(line)
    return 0 if ok else 1
