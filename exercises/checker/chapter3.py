"""Chapter 3's exercises, checked against PyTorch in float64 and chapter 3's own model.

The answer's tensors come back from its process as data (harness.Tensor: numbers, dtype,
requires_grad); backward runs there, in the answer's own graph, and its gradients come back.
The PyTorch functions an answer calls are recorded there: attention made by SDPA, through
whatever door (F.scaled_dot_product_attention, torch.ops.aten._scaled_dot_product_attention_math,
...), or rmsnorm by torch's, is refused."""

import dataclasses
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from chapters import load, spec_run

from .chapter2 import BatchCase, batches
from .harness import Case, Learner, Prediction, Tensor, over_cases, random_cases
from .verdict import (Mismatch, compare, describe_type, judge_prediction, require_dtype, require_prediction,
                      shape_text)

SDPA = F.scaled_dot_product_attention  # the references, kept before any answer runs
RMS_NORM = F.rms_norm
BACKWARD = torch.autograd.backward


def torch64(array, grad=False):
    return torch.tensor(array, dtype=torch.float64, requires_grad=grad)


def check_explicit_attention(learner: Learner) -> str:
    learner.forbidden = [(F, "scaled_dot_product_attention", "F.scaled_dot_product_attention"),
                         (torch._C._nn, "scaled_dot_product_attention", "F.scaled_dot_product_attention")]
    learner.forbidden_ops = {"scaled_dot_product*": "PyTorch's scaled dot-product attention",
                             "multi_head_attention*": "PyTorch's multi-head attention"}
    learner.load()
    yours = learner.attribute("explicit_attention")

    def run(case: Case) -> None:
        rng = np.random.default_rng(case["seed"])
        shape = (case["B"], case["H"], case["T"], case["D"])
        arrays = [rng.standard_normal(shape) for _ in range(3)]
        g = torch64(rng.standard_normal(shape))
        q, k, v = (torch64(a, grad=True) for a in arrays)
        y = learner.call(yours, q, k, v)
        if not isinstance(y, Tensor):
            raise Mismatch(f"explicit_attention returned {describe_type(y)}, expected a tensor (B, H, T, D)")
        ref = [torch64(a, grad=True) for a in arrays]
        y_ref = SDPA(*ref, is_causal=True)
        plain = [torch64(a) for a in arrays]
        T, D = case["T"], case["D"]
        lower = torch.ones(T, T, dtype=torch.bool).tril()
        scores = plain[0] @ plain[1].transpose(-2, -1)
        compare("y", y, y_ref, atol=1e-10, rtol=1e-8, slips={
            "attention without the 1/sqrt(D) scale": SDPA(*plain, is_causal=True, scale=1.0),
            "the scores divided by D, not sqrt(D)": SDPA(*plain, is_causal=True, scale=1.0 / D),
            "no causal mask: every position sees the future": SDPA(*plain, is_causal=False),
            "the softmax over the wrong dimension: each row of scores (dim=-1) sums to 1":
                (scores / D**0.5).masked_fill(~lower, float("-inf")).softmax(-2).nan_to_num() @ plain[2],
            "a mask that hides the diagonal: position i sees itself too (j <= i), and the first row, seeing nothing, "
            "is 0/0 = NaN": (scores / D**0.5).masked_fill(~lower.tril(-1), float("-inf")).softmax(-1) @ plain[2],
            "the mask upside down: position i may see j <= i, the lower triangle":
                (scores / D**0.5).masked_fill(lower.T.logical_not(), float("-inf")).softmax(-1) @ plain[2],
        })
        if not y.requires_grad:
            raise Mismatch("y does not require grad: build it from q, k and v with torch ops, so autograd can "
                           "differentiate it")
        grads = learner.backward(y, g, [q, k, v])
        BACKWARD(y_ref, g)
        for name, got, r in zip(("dq", "dk", "dv"), grads, ref):
            if got is None:
                raise Mismatch(f"{name} is None: y is not connected to {name[1]} in autograd's graph")
            compare(name, got, r.grad, atol=1e-10, rtol=1e-8)

    cases = [Case(B=1, H=1, T=1, D=1, seed=0), Case(B=1, H=1, T=3, D=4, seed=1), Case(B=2, H=4, T=7, D=4, seed=2),
             Case(B=1, H=2, T=16, D=8, seed=3), Case(B=1, H=1, T=5, D=3, seed=4),
             *random_cases(31, 3, {"B": (1, 3), "H": (1, 4), "T": (1, 16), "D": (1, 8)})]
    over_cases(run, cases, minimum={"B": 1, "H": 1, "T": 1, "D": 1})
    return (f"values and gradients on {len(cases)} cases, one position to 16, against "
            f"F.scaled_dot_product_attention in float64")


def check_rmsnorm_function(learner: Learner) -> str:
    stage3 = load("3_pytorch")
    learner.forbidden = [(F, "rms_norm", "F.rms_norm"), (torch, "rms_norm", "torch.rms_norm"),
                         (torch.nn, "RMSNorm", "torch.nn.RMSNorm"), (stage3, "rmsnorm", "chapter 3's rmsnorm")]
    learner.forbidden_ops = {"rms_norm": "PyTorch's rmsnorm", "_fused_rms_norm": "PyTorch's rmsnorm",
                             "grad": "torch.autograd.grad (the backward is yours to write)",
                             "backward": "autograd's own backward inside yours"}
    learner.load()
    Function = learner.attribute("RMSNorm")
    if not Function.info.get("autograd_function"):
        what = "a class" if Function.info.get("class") else f"a {Function.info.get('type', 'value')}"
        raise Mismatch(f"RMSNorm is {what}, expected a torch.autograd.Function subclass")

    def run(case: Case) -> None:
        rng = np.random.default_rng(case["seed"])
        shape = (case["B"], case["T"], case["C"])
        x_array, g_array = rng.standard_normal(shape) * 2, rng.standard_normal(shape)
        x, ref = torch64(x_array, grad=True), torch64(x_array, grad=True)
        g = torch64(g_array)
        y = learner.call(Function.apply, x)
        y_ref = RMS_NORM(ref, (case["C"],), eps=1e-5)
        a = x_array
        compare("forward", y, y_ref, atol=1e-12, rtol=1e-10, slips={
            "x / (sqrt(mean(x^2)) + eps): eps goes inside the square root":
                a / (np.sqrt((a * a).mean(-1, keepdims=True)) + 1e-5),
            "the mean over the wrong dimension: rmsnorm normalizes each row, the last dimension":
                a / np.sqrt((a * a).mean(0, keepdims=True) + 1e-5)})
        if not isinstance(y, Tensor) or not y.requires_grad:
            raise Mismatch("RMSNorm.apply(x) does not require grad: forward must return a tensor (autograd connects "
                           "it to backward)")
        (dx,) = learner.backward(y, g, [x])
        if dx is None:
            raise Mismatch("dL/dx is None: your backward returned None for x")
        BACKWARD(y_ref, g)
        yy, r = y_ref.detach().numpy(), 1 / np.sqrt((a * a).mean(-1, keepdims=True) + 1e-5)
        gm = (g_array * yy).mean(-1, keepdims=True)
        compare("dL/dx (your backward)", dx, ref.grad, atol=1e-10, rtol=1e-8, slips={
            "g - y * mean(g * y) without the factor r": g_array - yy * gm,
            "r * g: the normalization's own dependence on x (the second term) is missing": r * g_array,
            "x where y is due: r (g - y mean(g y)) uses the output y": r * (g_array - a * (g_array * a).mean(
                -1, keepdims=True)),
            "the mean over the wrong dimension: per row, the last one": r * (g_array - yy * (g_array * yy).mean(
                0, keepdims=True))})

    cases = [Case(B=1, T=1, C=1, seed=0), Case(B=1, T=1, C=3, seed=1), Case(B=2, T=5, C=16, seed=2),
             Case(B=3, T=4, C=27, seed=3), *random_cases(32, 3, {"B": (1, 3), "T": (1, 8), "C": (2, 40)})]
    over_cases(run, cases, minimum={"B": 1, "T": 1, "C": 1})
    return (f"forward against F.rms_norm and backward against autograd's, on {len(cases)} shapes (a width of 1 and "
            f"widths that are not 16 included), in float64")


class MatmulCounter(TorchDispatchMode):
    """Counts aten::mm calls, what chapter 3's profile calls the step's matrix multiplies, and
    their FLOPs: (m, k) @ (k, n) is m n sums of k multiply-adds, 2 m k n."""

    def __init__(self):
        super().__init__()
        self.mm = 0
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket == torch.ops.aten.mm:
            (m, k), n = args[0].shape, args[1].shape[1]
            self.mm += 1
            self.flops += 2 * m * k * n
        return func(*args, **(kwargs or {}))


NAME = "emma"  # the one name of 3.3's step


@functools.cache
def matmul_step(n_layer: int):
    """(the aten::mm counter of one training step of chapter 3's model at `n_layer` layers on
    NAME, counted as it ran; the model; the name's positions)."""
    from shared.weights import GPTConfig, init_run

    stage3 = load("3_pytorch")
    tokenizer, _, docs, _ = spec_run()
    config = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=n_layer)
    _, state, _ = init_run(list(docs), config, 42)
    model = stage3.load_weights(stage3.GPT(config), state)
    optimizer, _ = stage3.make_optimizer(model, 10, torch.device("cpu"))
    inputs, targets = stage3.batch_tensors([tokenizer.encode_doc(NAME)], config.block_size, "cpu")
    with MatmulCounter() as counter:
        _, loss = model(inputs, targets)
        loss.backward()
        optimizer.step()
    return counter, model, inputs.shape[1]


def linear_sizes(model) -> tuple[int, int]:
    """(n_in x n_out summed over one block's linear layers, the lm_head's n_in x n_out)."""
    return sum(p.numel() for name, p in model.named_parameters() if name.startswith("layers.0.") and p.ndim == 2), \
        model.lm_head.weight.numel()


def check_matmul_flops(learner: Prediction) -> str:
    learner.load()
    guess = learner.attribute("MATMUL_FLOPS_AT_TWO_LAYERS")
    require_prediction("MATMUL_FLOPS_AT_TWO_LAYERS", guess)
    counter, model, n = matmul_step(2)
    answer = counter.flops
    block, head = linear_sizes(model)
    C = model.config.n_embd
    two_layers = 2 * block + head
    judge_prediction("MATMUL_FLOPS_AT_TWO_LAYERS", guess, answer, {
        2 * n * two_layers: "that counts the forward pass only: each linear layer's backward runs two matmuls as "
                            "large, dL/dx = g W and dL/dW = g^T x",
        4 * n * two_layers: "that counts one backward matmul per linear layer: its backward runs two, dL/dx and "
                            "dL/dW",
        3 * n * two_layers: "that counts multiply-adds: each is two floating-point operations, a multiply and an add",
        6 * n * (block + head): "off by one layer: that is a one-layer step; the second block runs its own linear "
                                "layers",
        6 * n * 2 * block: f"the lm_head, outside the blocks, is a linear layer too ({C} -> {head // C})",
        6 * (n - 1) * two_layers: f"{n - 1} positions: a name of {len(NAME)} letters trains {len(NAME)} + 1, "
                                  f"the last letter predicting BOS",
        6 * (n + 1) * two_layers: f"{n + 1} positions: the {n + 1} tokens of [BOS, {', '.join(NAME)}, BOS] make "
                                  f"{n} (input, next token) pairs",
        6 * model.config.block_size * two_layers: f"{model.config.block_size} positions: chapter 3 pads a batch to "
                                                  f"its longest name, not to block_size",
        6 * n * two_layers + 2 * 12 * n * n * C: "attention's own products (q k^T and P v) run inside "
                                                 "F.scaled_dot_product_attention, which is not aten::mm"},
        "Count the linear layers of chapter 3's GPT (3_pytorch/main.py), their shapes and the name's positions "
        "again (check.py 3.3 --hint).")
    return (f"{answer:,} FLOPs in the {counter.mm} aten::mm calls of one real two-layer step of chapter 3's model "
            f"on \"{NAME}\", counted as it ran")


def reveal_matmul_flops() -> str:
    counter, model, n = matmul_step(2)
    block, head = linear_sizes(model)
    return (f"{counter.flops:,}. Counted in one real two-layer step on \"{NAME}\": {counter.mm} aten::mm calls, "
            f"three per linear layer. A linear layer from n_in to n_out on n positions is 2 n n_in n_out FLOPs "
            f"forward (n x n_out sums of n_in multiply-adds, each 2 FLOPs) and twice that backward (dL/dx = g W, "
            f"dL/dW = g^T x), 6 n n_in n_out in all. \"{NAME}\" trains n = {n} positions; n_in n_out adds up to "
            f"{block:,} per block (attn_wqkv, attn_wo, mlp_fc1, mlp_fc2) and {head} for the lm_head, and "
            f"attention's own products run inside SDPA, not aten::mm: 6 x {n} x (2 x {block:,} + {head}) = "
            f"{6 * n * (2 * block + head):,}.")


def check_ignore_index(learner: Learner) -> str:
    stage2, stage3 = load("2_numpy"), load("3_pytorch")
    batch_tensors, batch_loss = stage3.batch_tensors, stage2.batch_loss
    learner.forbidden = [(stage3, "batch_tensors", "chapter 3's batch_tensors"),
                         (stage2, "batch_arrays", "chapter 2's batch_arrays")]
    learner.load()
    yours = learner.attribute("batch_tensors")
    _, config, _, state = spec_run()
    model = stage3.load_weights(stage3.GPT(config).double(), state)
    _, params = stage2.make_params(state, config)

    def run(case: Case) -> None:
        tokens, block_size = case["_tokens"], case["block_size"]
        result = learner.call(yours, [list(t) for t in tokens], block_size)
        if not isinstance(result, tuple) or len(result) != 2:
            raise Mismatch(f"batch_tensors returned {describe_type(result)}, expected the tuple (inputs, targets)")
        inputs, targets = result
        for name, value in (("inputs", inputs), ("targets", targets)):
            if not isinstance(value, Tensor):
                raise Mismatch(f"{name}: expected a torch tensor, got {describe_type(value)}")
        ref_inputs, ref_targets = batch_tensors(tokens, block_size, "cpu")
        require_dtype("inputs", inputs, "integer", "nn.Embedding looks rows up by integer index")
        if targets.dtype != str(torch.long):
            raise Mismatch(f"targets: dtype {targets.dtype}, expected torch.long: F.cross_entropy takes class "
                           f"indices as int64 (torch.long)")
        for name, got, want in (("inputs", inputs, ref_inputs), ("targets", targets, ref_targets)):
            if got.shape != want.shape:
                slip = " -- padded to block_size: T is the longest name's n in this batch" \
                    if got.ndim == 2 and got.shape[1] == block_size else ""
                raise Mismatch(f"{name}: shape {shape_text(tuple(got.shape))}, expected "
                               f"{shape_text(tuple(want.shape))}{slip}")
        real = ref_targets != -100
        inputs, targets = torch.from_numpy(inputs.array), torch.from_numpy(targets.array)
        compare("inputs", inputs, torch.where(real, ref_inputs, inputs), atol=0, slips={
            "the targets: inputs are tokens[:n], targets tokens[1:n + 1]": ref_targets})
        if bool((inputs < 0).any()) or bool((inputs >= config.vocab_size).any()):
            raise Mismatch(f"inputs hold an id outside 0 .. {config.vocab_size - 1}: the embedding has no such row "
                           f"(-100 is the targets' padding); pad the inputs with a real id such as 0 (the loss never "
                           f"looks at them)")
        zero_padded = torch.where(real, ref_targets, torch.zeros_like(ref_targets))
        compare("targets", targets, ref_targets, atol=0, slips={
            "targets padded with 0: F.cross_entropy counts them as predictions of the letter 'a'": zero_padded,
            "the inputs: targets are the inputs shifted by one": torch.where(real, ref_inputs, ref_targets)})
        with torch.no_grad():
            _, loss = model(inputs.long(), targets)
        expected = batch_loss(tokens, params, dataclasses.replace(config, block_size=block_size))
        compare("chapter 3's loss on your batch", loss.item(), float(expected.data), atol=1e-12, rtol=1e-10)

    cases = [BatchCase(c) for c in batches(block_sizes=(16, 4))]
    over_cases(run, cases)
    return (f"inputs and targets, with their dtypes, on {len(cases)} batches, then chapter 3's loss on them against "
            f"chapter 2's on the same names")
