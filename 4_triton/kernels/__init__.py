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
calls before it imports Triton. How each kernel is launched -- its grid, tile sizes and warps,
how a batch is shared among programs -- and the sizes a run may ask for are decided beside the
launches, in `launch.py`. This package itself imports neither Triton nor PyTorch: it holds the
count of a step's launches and what a kernel file does when run on its own.
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
