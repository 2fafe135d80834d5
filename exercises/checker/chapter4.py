"""Chapter 4's exercises, through Triton's interpreter with every load and store bounds-checked
(bounds.py), against PyTorch in float64.

While a learner's launcher runs, PyTorch may allocate and reshape but not compute (the kernel
is the exercise), and every buffer `torch.empty` makes starts as NaN, so a place the kernel
never stored shows as NaN, not as whatever memory held.
"""

import functools
import math

import numpy as np
import torch

from chapters import load, spec_run
from shared.weights import GPTConfig, param_shapes

from . import bounds
from .harness import Case, Learner, Prediction, Tensor, over_cases, random_cases
from .verdict import Mismatch, compare, describe_type, judge_prediction, require_prediction

ADAM = torch.optim.Adam
NEVER_STORED = "nothing was stored there (the check fills new buffers with NaN): does some program store every element?"
FLOAT32 = {"atol": 1e-6, "rtol": 1e-5}


def kernel_exercise(learner: Learner, kernel: str, forbidden=()) -> None:
    """Load a chapter 4 answer: in its process the launcher allocates NaN-filled buffers,
    computes nothing with PyTorch and reads no tensor's numbers (checker/answer.py)."""
    learner.forbidden = list(forbidden)
    learner.kernel = True
    learner.load()
    if not learner.has(kernel):
        raise Mismatch(f"your file has no `{kernel}`: keep the stub's kernel name")


def launched(learner: Learner, function: str, kernel: str, *args):
    """Call the learner's launcher `function`; it must launch `kernel` and return a tensor."""
    result = learner.call(learner.attribute(function), *args)
    if kernel not in [name for name, _ in learner.launches]:
        raise Mismatch(f"{function}() returned without launching {kernel}: the kernel is the exercise")
    if result is not None and not isinstance(result, Tensor):
        raise Mismatch(f"{function}() returned {describe_type(result)}, expected a tensor")
    return result


def vectors(case: Case, count: int, scale: float = 1.0):
    gen = torch.Generator().manual_seed(case["seed"])
    return [torch.randn(case["N"], generator=gen) * scale for _ in range(count)]


def check_add_block(learner: Learner) -> str:
    kernel_exercise(learner, "add_kernel")

    def run(case: Case) -> None:
        x, z = vectors(case, 2)
        y = launched(learner, "add", "add_kernel", x, z)
        programs = sum(p for name, p in learner.launches if name == "add_kernel")
        if programs != 1:
            raise Mismatch(f"add_kernel ran {programs} programs, each over the whole block: one program handles the "
                           f"block (BLOCK is the whole length), so the launch is add_kernel[(1,)]")
        xd, zd = x.double(), z.double()
        compare("y", y, (x + z).double(), atol=0, rtol=1e-7, unfilled=NEVER_STORED, slips={
            "x + x: both loads read x_ptr (z is at z_ptr)": 2 * xd, "x - z: the sign": xd - zd,
            "x alone: z's block is not added": xd, "z alone: x's block is not added": zd})

    cases = [Case(N=n, seed=i) for i, n in enumerate((1, 2, 16, 128, 1024))]
    over_cases(run, cases, minimum={"N": 1}, valid=lambda c: c["N"] & (c["N"] - 1) == 0)
    return f"y = x + z for {len(cases)} vectors of 1 to 1,024 numbers, one program each, bounds-checked"


def check_masked_tail(learner: Learner) -> str:
    kernel_exercise(learner, "scale_shift_kernel")

    def run(case: Case) -> None:
        (x,) = vectors(case, 1)
        a, b = 1.5 + case["seed"] / 7, -0.25 - case["seed"] / 11
        y = launched(learner, "scale_shift", "scale_shift_kernel", x, a, b)
        xd = x.double()
        compare("y", y, (a * x + b).double(), **FLOAT32, unfilled=NEVER_STORED, slips={
            "a (x + b): the multiply comes first, then the shift": a * (xd + b),
            "a x without + b": a * xd, "x + b without the scale a": xd + b})

    cases = [Case(N=n, seed=i) for i, n in enumerate((1, 63, 64, 65, 200, 1000))] + \
        random_cases(42, 2, {"N": (2, 3000)})
    over_cases(run, cases, minimum={"N": 1})
    lengths = [case["N"] for case in cases]
    said = f"y = a x + b for {len(cases)} lengths from {min(lengths):,} to {max(lengths):,}, bounds-checked"
    block = learner.value("BLOCK")
    if isinstance(block, int) and not isinstance(block, bool) and block > 0:
        whole = [n for n in lengths if n % block == 0]
        said += f"; with your BLOCK = {block}, {len(lengths) - len(whole)} of them end partway through the last block"
        if whole:
            said += f" ({', '.join(f'{n:,}' for n in whole)} fill{'s' if len(whole) == 1 else ''} it exactly)"
    return said


def check_transpose_tile(learner: Learner) -> str:
    kernel_exercise(learner, "transpose_kernel")

    def run(case: Case) -> None:
        gen = torch.Generator().manual_seed(case["seed"])
        x = torch.randn(case["M"], case["N"], generator=gen)
        y = launched(learner, "transpose", "transpose_kernel", x)
        compare("y", y, x.T.double(), atol=0, unfilled=NEVER_STORED, slips={
            "x's numbers in x's order: element (i, j) of x goes to row j, column i of y":
                x.double().reshape(case["N"], case["M"])})

    cases = [Case(M=m, N=n, seed=i) for i, (m, n) in enumerate(((1, 1), (1, 5), (5, 1), (16, 8), (17, 9), (20, 33),
                                                                 (40, 7)))] + \
        random_cases(43, 2, {"M": (1, 50), "N": (1, 50)})
    over_cases(run, cases, minimum={"M": 1, "N": 1})
    return (f"y = x^T for {len(cases)} matrices from 1 x 1 to 50 x 50 (edge tiles partly outside), "
            f"bounds-checked")


def check_row_softmax(learner: Learner) -> str:
    kernel_exercise(learner, "softmax_kernel")

    def run(case: Case) -> None:
        gen = torch.Generator().manual_seed(case["seed"])
        x = torch.randn(case["M"], case["C"], generator=gen) * case["scale"] + case["shift"]
        y = launched(learner, "softmax", "softmax_kernel", x)
        xd = x.double()
        a = x.numpy()
        with np.errstate(all="ignore"):
            e = np.exp(a)
            no_max = e / e.sum(-1, keepdims=True)
            padded = 2 ** math.ceil(math.log2(case["C"])) - case["C"]
            zero_padding = np.exp(a - np.maximum(a.max(-1, keepdims=True), 0 if padded else -np.inf))
            zero_padding = zero_padding / (zero_padding.sum(-1, keepdims=True) + padded * np.exp(
                -np.maximum(a.max(-1, keepdims=True), 0)))
        compare("y", y, torch.softmax(xd, -1), **FLOAT32, unfilled=NEVER_STORED, slips={
            "without subtracting the row's max: exp overflows (float32 holds exp(x) only up to x = 88)": no_max,
            "the padding loaded as 0: each padded lane adds exp(0 - max) to the row's sum; load it as -inf":
                zero_padding})

    cases = [Case(M=1, C=1, scale=1.0, shift=0.0, seed=0), Case(M=1, C=3, scale=1.0, shift=0.0, seed=1),
             Case(M=2, C=16, scale=1.0, shift=0.0, seed=2), Case(M=3, C=27, scale=3.0, shift=0.0, seed=3),
             Case(M=2, C=5, scale=1.0, shift=-50.0, seed=4), Case(M=2, C=6, scale=100.0, shift=0.0, seed=5),
             Case(M=4, C=100, scale=1.0, shift=0.0, seed=6)]
    over_cases(run, cases, minimum={"M": 1, "C": 1})
    return (f"softmax of each row for {len(cases)} matrices (widths 1 to 100, none or some a power of two; scores "
            f"near -50 and up to 300) against torch.softmax in float64, bounds-checked")


def check_softmax_backward(learner: Learner) -> str:
    kernel_exercise(learner, "softmax_backward_kernel")

    def run(case: Case) -> None:
        gen = torch.Generator().manual_seed(case["seed"])
        x = torch.randn(case["M"], case["C"], generator=gen, dtype=torch.float64) * case.get("scale", 2.0)
        g = torch.randn(case["M"], case["C"], generator=gen, dtype=torch.float64)
        y = torch.softmax(x, -1).float()
        dx = launched(learner, "softmax_backward", "softmax_backward_kernel", y, g.float())
        xd = x.clone().requires_grad_()
        torch.softmax(xd, -1).backward(g)  # the reference: PyTorch's autograd, in float64
        yd, gd, C = y.double(), g.float().double(), case["C"]
        block = 2 ** math.ceil(math.log2(C))
        gy = (gd * yd).sum(-1, keepdim=True)
        compare("dx", dx, xd.grad, **FLOAT32, unfilled=NEVER_STORED, slips={
            "y (1 - y) g, the diagonal of the Jacobian only: every y_i depends on every x_j, so dx_j sums over all "
            "i": yd * (1 - yd) * gd,
            "y (g - sum(g)): the sum is of g_i y_i": yd * (gd - gd.sum(-1, keepdim=True)),
            "g - sum(g y), not multiplied by y": gd - gy,
            "the mean of g y instead of its sum (rmsnorm's backward has a mean; softmax's has none)":
                yd * (gd - gy / C),
            f"the sum of g y divided by BLOCK_C = {block} (softmax's backward has no mean)": yd * (gd - gy / block),
            "a masked load without other=: its padding lanes are undefined on a GPU (NaN here), and the row's sum "
            "takes them in; load the padding as 0.0": torch.full_like(yd, math.nan) if block != C else xd.grad})

    cases = [Case(M=1, C=1, seed=0), Case(M=1, C=3, seed=1), Case(M=2, C=16, seed=2), Case(M=37, C=27, seed=3),
             Case(M=2, C=5, scale=30.0, seed=4), Case(M=3, C=100, seed=5),
             *random_cases(45, 2, {"M": (1, 40), "C": (2, 70)})]
    over_cases(run, cases, minimum={"M": 1, "C": 1})
    return (f"softmax's backward for {len(cases)} matrices (widths 1 to 100, padded to a power of two in the kernel; "
            f"peaked rows where y is nearly one-hot) against PyTorch's autograd in float64, bounds-checked")


def check_adam_kernel(learner: Learner) -> str:
    import kernels.adam as chapter

    kernel_exercise(learner, "adam_kernel", forbidden=[
        (chapter, "adam_kernel", "chapter 4's Adam kernel"), (chapter, "adam_step", "chapter 4's Adam kernel"),
        (torch.optim, "Adam", "torch.optim.Adam")])

    def run(case: Case) -> None:
        n, steps = case["N"], case["steps"]
        params = torch.nn.Parameter(torch.randn(n, generator=torch.Generator().manual_seed(case["seed"]),
                                                dtype=torch.float64))
        optimizer = ADAM([params], lr=0.01, betas=(0.85, 0.99), eps=1e-8)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / 10)
        p = params.detach().float().clone()
        m, v = torch.zeros_like(p), torch.zeros_like(p)
        slips = {"no_correction": "Adam without bias correction: m and v are divided by bias1 and bias2 before use",
                 "eps_inside": "sqrt(v / bias2 + eps): eps goes outside the square root, sqrt(v / bias2) + eps",
                 "unsquared": "v averaging g: it averages g^2",
                 "unstored": "m and v not stored back: every step starts again from moments of 0",
                 "power_step": "a bias correction of 1 - beta^step: at step 0 that is 0, and m / 0 is NaN; the "
                               "correction is 1 - beta^(step + 1)"}
        shadow = {k: p.double().clone() for k in slips}
        sm = {k: torch.zeros(n, dtype=torch.float64) for k in slips}
        sv = {k: torch.zeros(n, dtype=torch.float64) for k in slips}
        for step in range(steps):
            g = torch.randn(n, generator=torch.Generator().manual_seed(100 * case["seed"] + step), dtype=torch.float64)
            params.grad = g
            optimizer.step()
            schedule.step()
            lr_t, b1, b2 = 0.01 * (1 - step / 10), 1 - 0.85 ** (step + 1), 1 - 0.99 ** (step + 1)
            for k in slips:
                m_k = 0.85 * sm[k] + 0.15 * g
                v_k = 0.99 * sv[k] + 0.01 * (g if k == "unsquared" else g * g)
                if k != "unstored":
                    sm[k], sv[k] = m_k, v_k
                if k == "no_correction":
                    shadow[k] = shadow[k] - lr_t * m_k / (v_k.sqrt() + 1e-8)
                elif k == "power_step":  # 1 - beta^0 = 0 at step 0: torch divides to inf, and inf / inf is NaN
                    c1, c2 = 1 - 0.85 ** step, 1 - 0.99 ** step
                    shadow[k] = shadow[k] - lr_t * (m_k / c1) / ((v_k / c2).sqrt() + 1e-8)
                elif k == "eps_inside":
                    shadow[k] = shadow[k] - lr_t * (m_k / b1) / (v_k / b2 + 1e-8).sqrt()
                else:
                    shadow[k] = shadow[k] - lr_t * (m_k / b1) / ((v_k / b2).sqrt() + 1e-8)
            learner.call(learner.attribute("adam_step"), p, g.float(), m, v, step, 10)
            if "adam_kernel" not in [name for name, _ in learner.launches]:
                raise Mismatch("adam_step() returned without launching adam_kernel: the kernel is the exercise")
            compare(f"p after step {step + 1}", learner.updated.get(0, p), params.detach(), atol=1e-6, rtol=1e-5,
                    unfilled=NEVER_STORED, slips={what: shadow[k] for k, what in slips.items()})
            compare(f"m after step {step + 1}", learner.updated.get(2, m), optimizer.state[params]["exp_avg"],
                    atol=1e-7, rtol=1e-5,
                    slips={"m not stored back: store the new moment for the next step": torch.zeros(n)})

    cases = [Case(N=1, steps=1, seed=1), Case(N=1000, steps=2, seed=2), Case(N=1024, steps=1, seed=3),
             Case(N=1025, steps=3, seed=4), Case(N=3000, steps=4, seed=5)]
    over_cases(run, cases, minimum={"N": 1, "steps": 1})
    return (f"p and m after each of up to 4 steps, for {len(cases)} buffers of 1 to 3,000 parameters (a partial last "
            f"block), against torch.optim.Adam with a LambdaLR, bounds-checked")


def check_relu_epilogue(learner: Learner) -> str:
    import kernels.linear as chapter

    kernel_exercise(learner, "linear_relu_kernel", forbidden=[
        (chapter, "linear_fwd_kernel", "chapter 4's linear kernel"),
        (chapter, "linear_forward", "chapter 4's linear kernel")])

    def run(case: Case) -> None:
        gen = torch.Generator().manual_seed(case["seed"])
        x, w = torch.randn(case["M"], case["K"], generator=gen), torch.randn(case["N"], case["K"], generator=gen)
        y = launched(learner, "linear_relu", "linear_relu_kernel", x, w)
        xd, wd = x.double(), w.double()
        acc = torch.zeros(case["M"], case["N"], dtype=torch.float64)
        for k0 in range(0, case["K"], 16):
            acc = torch.relu(acc + xd[:, k0:k0 + 16] @ wd[:, k0:k0 + 16].T)
        slips = {"x W^T without the ReLU": xd @ wd.T, "the ReLU inside the loop over K: it clips partial sums; "
                                                       "apply it once, to the finished tile": acc,
                 "W's tile not transposed: tl.dot(a, b) multiplies a (M, K) by b (K, N), so W's (N, K) tile needs "
                 "tl.trans": untransposed_tiles(xd, wd),
                 "the ReLU on the inputs (x's tile), relu(x) W^T: it goes on the finished tile, relu(x W^T)":
                     torch.relu(xd) @ wd.T,
                 "TF32: tl.dot multiplies float32 in TF32 (10-bit mantissas, about 1e-3 off) unless asked "
                 "for input_precision=\"ieee\", as chapter 4 does": torch.relu(tf32(xd) @ tf32(wd).T)}
        compare("y", y, torch.relu(xd @ wd.T), atol=1e-5, rtol=1e-5, unfilled=NEVER_STORED, slips=slips)

    cases = [Case(M=1, N=1, K=1, seed=5), Case(M=16, N=16, K=16, seed=1), Case(M=1, N=16, K=40, seed=2),
             Case(M=37, N=70, K=20, seed=3), Case(M=5, N=33, K=40, seed=4),
             *random_cases(47, 2, {"M": (1, 40), "N": (1, 40), "K": (1, 40)})]
    over_cases(run, cases, minimum={"M": 1, "N": 1, "K": 1})
    return (f"relu(x W^T) for {len(cases)} shapes up to (37, 20) x (70, 20)^T (edge tiles masked, K not a multiple of "
            f"16) against PyTorch in float64, bounds-checked")


def tf32(a: torch.Tensor) -> torch.Tensor:
    """float32 rounded to TF32, as a GPU's tensor cores read it (and the checked interpreter, bounds.py)."""
    return torch.from_numpy(bounds.tf32(a.float().numpy())).double()


def untransposed_tiles(x: torch.Tensor, w: torch.Tensor, tile: int = 16) -> torch.Tensor:
    """What 4.7's kernel computes when it forgets tl.trans: each 16 x 16 tile of W, padded with
    zeros, used as a (K, N) tile."""
    M, K = x.shape
    N = w.shape[0]
    pad = lambda a, rows, cols: torch.nn.functional.pad(a, (0, cols - a.shape[1], 0, rows - a.shape[0]))  # noqa: E731
    rows, cols, depth = -(-M // tile) * tile, -(-N // tile) * tile, -(-K // tile) * tile
    xp, wp = pad(x, rows, depth), pad(w, cols, depth)
    y = torch.zeros(rows, cols, dtype=x.dtype)
    for n0 in range(0, cols, tile):
        for k0 in range(0, depth, tile):
            y[:, n0:n0 + tile] += xp[:, k0:k0 + tile] @ wp[n0:n0 + tile, k0:k0 + tile]
    return torch.relu(y[:M, :N])


@functools.cache
def launches_per_step(n_layer: int, batch_size: int = 1) -> int:
    """Kernel launches in one real training step of chapter 4 at `n_layer` layers on a batch of
    the first `batch_size` names: the step's own code runs, and each launch it makes is counted
    instead of run (which kernels a step launches does not depend on the numbers they compute)."""

    stage4 = load("4_triton")
    tokenizer, _, docs, _ = spec_run()
    config = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=n_layer)
    state = {name: [[0.01] * cols for _ in range(rows)] for name, (rows, cols) in param_shapes(config)}
    step = stage4.TrainStep(stage4.GPT(config, state), num_steps=10, cuda_graph=False, batch_size=batch_size)
    step.load([tokenizer.encode_doc(doc) for doc in docs[:batch_size]], 0)
    with bounds.counting_launches() as launched:
        step.launch()
    return len(launched)


LAYERS, NAMES = 3, 17  # 4.8's step: --n-layer 3 --batch-size 17


def check_launches(learner: Prediction) -> str:
    learner.load()
    name = "LAUNCHES_AT_THREE_LAYERS_17_NAMES"
    guess = learner.attribute(name)
    require_prediction(name, guess)
    answer = launches_per_step(LAYERS, NAMES)
    block_size = GPTConfig().block_size
    rows = NAMES * block_size
    judge_prediction(name, guess, answer, {
        65: f"that is a step whose weight gradients each sum in one program: {NAMES} names are {NAMES} x "
            f"{block_size} = {rows} rows (every document is padded to block_size), past the 256 rows one program sums",
        71: "6 ordered sums of partials is a one-layer step's: every layer's matmuls sum their dW over the rows too",
        77: "the layers' matmuls only: lm_head's dW and the embedding's sum over the batch's rows too",
        83: "6 sums per layer: lm_head's and the embedding's gradients are summed once per step, not per layer",
        105: "35 x 3: the once-per-step kernels (embedding, lm_head, cross-entropy, Adam, ...) do not repeat per "
             "layer",
        answer - 22: "off by one layer: that is a two-layer step",
        answer + 22: "off by one layer: that is a four-layer step"},
        "Sort the kernels of a step into per-layer and per-step, then the weight gradients that sum over the "
        "batch's rows (check.py 4.8 --hint).")
    return (f"{answer} launches, counted as one real step of three layers and {NAMES} names ({rows} rows) makes "
            f"them")


def reveal_launches() -> str:
    first, one, batch = launches_per_step(1), launches_per_step(LAYERS), launches_per_step(LAYERS, NAMES)
    per_layer = (one - first) // (LAYERS - 1)
    once, block_size = first - per_layer, GPTConfig().block_size
    return (f"{batch}. Counted in real steps: for one name, {first} launches at one layer and {one} at three, so "
            f"{once} run once per step and {per_layer} per layer ({once} + 3 x {per_layer} = {one}); for {NAMES} "
            f"names, {batch}. {NAMES} names are {NAMES} x {block_size} = {NAMES * block_size} rows "
            f"(every document padded to block_size), past the 256 rows one program sums, so every weight gradient "
            f"that sums over the rows is summed in parts and one more launch adds the parts in order: the 4 "
            f"matmuls' dW of every layer, and lm_head's and the embedding's once, 4 x 3 + 2 = {batch - one}.")
