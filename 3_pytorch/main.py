"""Stage 3 -- PyTorch: torch.autograd, nn.Module and torch.optim train microgpt.

What changes from stage 2: our Tensor engine becomes PyTorch's C++ autograd, our fused
NumPy ops become PyTorch's kernels (F.rms_norm, F.scaled_dot_product_attention,
F.cross_entropy), and our Adam becomes torch.optim.Adam with a LambdaLR schedule. The
model is an nn.Module with the same 4,192 parameters, loaded from the same initial
weights, so float64 reproduces stage 2's losses. What PyTorch buys is not speed on a
4k-parameter model on a CPU -- each op pays a fixed dispatch cost of microseconds, like
our NumPy engine did -- but the same code on a GPU, torch.compile, and scale: at larger
widths the arithmetic outgrows the per-op cost, and there PyTorch's kernels win. With
--compile the loop is the same, and torch.compile turns the step's forward and backward into
one graph of fused C++ loops (README.md, "A compiler on a CPU").

Run:  python 3_pytorch/main.py                          (--device auto: cuda, else mps, else cpu; float32)
      python 3_pytorch/main.py --dtype float64          (stage 2's run, to float64 rounding)
      python 3_pytorch/main.py --device cpu --compile --batch-size 256   (forward and backward compiled)
"""

import contextlib
import functools
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for shared/
from shared import program, runner  # noqa: E402, F401  (program first: load-time errors in one line)
from shared.keep import keep  # noqa: E402  (names a value for the one-step page and the tests)
from shared.tokenizer import Tokenizer, positions  # noqa: E402
from shared.weights import GPTConfig  # noqa: E402

# isort: split
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# Optimizer (SPEC.md): Adam with bias correction and a linear learning-rate decay to zero.
LEARNING_RATE = 0.01  # peak learning rate, decayed linearly to 0 over the run
BETA1 = 0.85  # decay of the first-moment (mean gradient) estimate
BETA2 = 0.99  # decay of the second-moment (squared gradient) estimate
EPS_ADAM = 1e-8  # keeps the update finite where the second moment is ~0
RMSNORM_EPS = 1e-5  # rmsnorm(x) = x / sqrt(mean(x^2) + eps)
PADDING = -100  # the target of a padded position: F.cross_entropy's ignore_index leaves it out

# Shapes in comments: B documents in the step, T positions (the longest document's; shorter
# ones are padded), C = n_embd, H heads, D = head_dim = C / H, V = vocab_size. nn.Linear
# stores its weight (n_out, n_in), SPEC.md's layout.


# ----------------------------------------------------------------------------------------
# Autograd: torch.autograd, in C++
# ----------------------------------------------------------------------------------------

# Nothing to write. Every tensor op PyTorch runs records the op and what its backward needs;
# loss.backward() walks that record in reverse, as our Value and Tensor engines did, with a
# derivative PyTorch already knows for each op.


# ----------------------------------------------------------------------------------------
# Parameters: the shared initial weights loaded into the modules
# ----------------------------------------------------------------------------------------

@torch.no_grad()
def load_weights(model: "GPT", state: dict[str, list[list[float]]]) -> "GPT":
    """Copy the shared initial weights in; q, k, v are stacked into one matrix."""
    def t(name):
        return torch.tensor(state[name], dtype=model.wte.weight.dtype)
    model.wte.weight.copy_(t("wte"))
    model.wpe.weight.copy_(t("wpe"))
    model.lm_head.weight.copy_(t("lm_head"))
    for i, block in enumerate(model.layers):
        p = f"layer{i}."
        block.attn.attn_wqkv.weight.copy_(torch.cat([t(p + "attn_wq"), t(p + "attn_wk"), t(p + "attn_wv")]))
        block.attn.attn_wo.weight.copy_(t(p + "attn_wo"))
        block.mlp.mlp_fc1.weight.copy_(t(p + "mlp_fc1"))
        block.mlp.mlp_fc2.weight.copy_(t(p + "mlp_fc2"))
    return model


# ----------------------------------------------------------------------------------------
# Model: nn.Modules, PyTorch's fused kernels inside
# ----------------------------------------------------------------------------------------

# keep(name, value) gives `value` back unchanged. It names the model's quantities -- x0, q,
# attn, logits, ... (SPEC.md's names, the same in every stage) -- so that the one-step page
# and the tests can read them from this stage's own run (shared/keep.py).

def rmsnorm(x):
    """x / sqrt(mean(x^2) + eps) over the last axis, without a learnable gain (SPEC.md)."""
    return F.rms_norm(x, (x.shape[-1],), eps=RMSNORM_EPS)


class CausalSelfAttention(nn.Module):
    """All heads at once. q, k, v come from one matmul with the stacked weight [wq; wk; wv].

    F.scaled_dot_product_attention with is_causal=True is one op forward and one backward
    (a fused kernel where the backend has one), against about ten for the explicit
    softmax(q k^T / sqrt(D) + mask) v: with a model this small, fewer ops is what saves time.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.attn_wqkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.attn_wo = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x):  # (B, T, C)
        B, T, C = x.shape
        qkv = keep("qkv", self.attn_wqkv(x))  # (B, T, 3C): [q | k | v]
        q, k, v = qkv.view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D), scaled by 1/sqrt(D)
        y = keep("y", y.transpose(1, 2).reshape(B, T, C))  # (B, T, C): the heads side by side
        return self.attn_wo(y)  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.mlp_fc1 = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.mlp_fc2 = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x):  # (B, T, C)
        h = keep("relu", F.relu(keep("fc1", self.mlp_fc1(x))))  # (B, T, 4C)
        return self.mlp_fc2(h)  # (B, T, C)


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn = CausalSelfAttention(config)
        self.mlp = MLP(config)

    def forward(self, x):  # (B, T, C)
        x = keep("x2", x + self.attn(keep("h_attn", rmsnorm(x))))
        return keep("x3", x + self.mlp(keep("h_mlp", rmsnorm(x))))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))

    def forward(self, idx, targets=None):  # idx (B, T) token ids; targets (B, T), PADDING where none
        T = idx.shape[1]
        x = keep("x0", self.wte(idx) + self.wpe.weight[:T])  # (B, T, C); positions 0..T-1 are a slice
        x = keep("x1", rmsnorm(x))
        for block in self.layers:
            x = block(x)
        logits = keep("logits", self.lm_head(x))  # (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                                            ignore_index=PADDING)  # mean over real targets
        return logits, loss


def batch_tensors(batch: list[list[int]], block_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), each (B, T): every document's first min(block_size, len-1) positions,
    inputs padded with 0 and targets with PADDING, to T = the longest document's positions."""
    n = [positions(tokens, block_size) for tokens in batch]
    T = max(n)  # one tensor from padded lists: per-document tensor ops would cost more than the step
    inputs = torch.tensor([tokens[:k] + [0] * (T - k) for tokens, k in zip(batch, n)], dtype=torch.long)
    targets = torch.tensor([tokens[1:k + 1] + [PADDING] * (T - k) for tokens, k in zip(batch, n)], dtype=torch.long)
    return inputs.to(device), targets.to(device)


# ----------------------------------------------------------------------------------------
# Optimizer: torch.optim.Adam and a linear-decay schedule
# ----------------------------------------------------------------------------------------

def make_optimizer(model: nn.Module, num_steps: int, device: torch.device):
    """Adam over all parameters in one fused kernel where PyTorch has one (CPU and CUDA),
    else one multi-tensor (foreach) launch; lr_t = lr * (1 - step / num_steps)."""
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=(BETA1, BETA2),
                                 eps=EPS_ADAM, fused=fused, foreach=None if fused else True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / num_steps)
    return optimizer, schedule


# ----------------------------------------------------------------------------------------
# Training: forward, backward, optimizer step; one loop on any device, compiled or not
# ----------------------------------------------------------------------------------------

def forward_backward(model: GPT, inputs, targets, phase=contextlib.nullcontext) -> torch.Tensor:
    """The batch's loss (its value), with every parameter's gradient in its .grad. `phase(name)`
    times the forward and the backward where the run asks (eager); compiled, they are one piece."""
    with phase("forward"):
        loss = model(inputs, targets)[1]
    with phase("backward"):
        loss.backward()
    return loss.detach()


def tokenized_documents(run) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Every document of the run as one row, tokenized and padded once, before step 1: (inputs,
    targets), each (N, T) on the run's device, T the longest document's positions; and each
    document's positions. A step gathers its B rows: building them again from Python lists at
    every step would cost more than the compiled step itself at large B."""
    docs = [run.tokenizer.encode_doc(doc) for doc in run.docs]
    return *batch_tensors(docs, run.config.block_size, run.device), [positions(d, run.config.block_size) for d in docs]


def train(run) -> GPT:
    """Train from SPEC.md's initial weights on `run.device` (a CPU, a CUDA GPU or an Apple GPU).
    `run` (shared/runner.py) counts the steps and records each; with --compile the loop is the
    same, and forward_backward is compiled (below)."""
    model = load_weights(GPT(run.config).to(getattr(torch, run.dtype)), run.initial_weights).to(run.device)
    optimizer, schedule = make_optimizer(model, run.num_steps, run.device)
    inputs, targets, lengths = tokenized_documents(run)  # (N, T), (N, T), N
    lengths = torch.tensor(lengths)  # (N,): a step's rows are gathered as tensors, not from Python lists
    gradients, width = functools.partial(forward_backward, phase=run.phase), longest
    if run.args.compile:
        gradients, width = compiled_forward_backward(run, model, inputs, targets, lengths), compiled_width
    for step in run.steps():
        rows = step_rows(step, run.batch_size, len(lengths))
        T = width(lengths[rows])  # the batch cut to T positions: its longest document's (compiled: rounded up)
        loss = gradients(model, inputs[rows, :T], targets[rows, :T])
        with run.phase("optimizer"):
            optimizer.step()
            schedule.step()  # (LambdaLR counts the steps itself)
            optimizer.zero_grad(set_to_none=True)
        run.end_step(loss)
    return model


def step_rows(step: int, batch_size: int, n: int) -> torch.Tensor:
    """The table's rows a step trains on: SPEC.md's documents step*B + j, mod N."""
    return torch.arange(step * batch_size, step * batch_size + batch_size) % n


def longest(lengths: torch.Tensor) -> int:
    """A batch's width: its longest document's positions (the rest of a row is padding)."""
    return int(lengths.max())


# The compiled step (--compile): the same loop, with forward_backward compiled.
#
# Eager, PyTorch runs forward_backward one op at a time, and each op pays the dispatcher and
# autograd's bookkeeping around microseconds of arithmetic (README.md, "One step, op by op").
# torch.compile reads the function once -- Dynamo traces its Python into a graph of ops -- and
# Inductor writes that graph as a few fused C++ loops (Triton kernels on a GPU) around the
# matmuls. Adam stays as it is: torch.optim's fused Adam is already one kernel for every
# parameter, and PyTorch does not trace into it. README.md ("A compiler on a CPU") measures it.

WIDTH_MULTIPLE = 4  # a compiled batch's width is rounded up to a multiple of this: at most block_size / 4 programs


def compiled_width(lengths: torch.Tensor) -> int:
    """A compiled batch's width: its longest document's positions rounded up to a multiple of
    WIDTH_MULTIPLE. Compiled code is written for one shape, so each width is a program of its
    own: the rounding keeps them few (12 and 16 for names at B = 256), at the price of a few
    padded positions more than eager computes."""
    return -(-longest(lengths) // WIDTH_MULTIPLE) * WIDTH_MULTIPLE


def compiled_forward_backward(run, model: GPT, inputs, targets, lengths):
    """forward_backward, compiled before step 1 for each width the run's batches have (one call
    on a batch of each), timed apart from the steps. The calls fill the gradients, which are
    cleared again; they leave the weights as they were."""
    # dynamic=False: code for the shape it is traced at; a batch of a new width is traced again
    compiled = torch.compile(forward_backward, dynamic=False, options=cpu_options() if run.device.type == "cpu" else {})
    # loss.backward() traced into the same graph as the forward (as torch.autograd.grad and the
    # gradients' accumulation into .grad), where by default Dynamo ends the graph at backward()
    # and leaves the rest to the autograd engine: one graph, which Inductor fuses across. Every
    # width may be compiled, past Dynamo's default limit of 8 programs for one function.
    widths = -(-run.config.block_size // WIDTH_MULTIPLE)
    step = torch._dynamo.config.patch(trace_autograd_ops=True, recompile_limit=max(8, widths))(compiled)
    first_step = {}  # each width the batches have, and the first step with it: one pass over the data is enough
    for s in range(min(run.steps_to_train, -(-len(lengths) // run.batch_size))):  # (a width past the table's is its)
        width = min(compiled_width(lengths[step_rows(s, run.batch_size, len(lengths))]), inputs.shape[1])
        first_step.setdefault(width, s)
    run.note(compile=True, batch_widths=sorted(first_step))
    # Attention is traced as SDPBackend.MATH computes it -- its matmuls and a softmax, which
    # Inductor fuses with their neighbours -- not as a call into the CPU's FlashAttention kernel,
    # built for long sequences, which it can neither look into nor fuse with. The choice is made
    # at the trace, here, and the compiled code keeps it.
    many = "s" if len(first_step) > 1 else ""
    with (run.timed("compile", first=f"compiling the step for {len(first_step)} batch width{many} before step 1: "
                                      "tens of seconds the first time, a few once Inductor's cache holds its code"),
          torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH)):
        for T, s in sorted(first_step.items()):
            rows = step_rows(s, run.batch_size, len(lengths))
            step(model, inputs[rows, :T], targets[rows, :T])
            model.zero_grad(set_to_none=True)
    return step


def cpu_options() -> dict:
    """Inductor's options on a CPU, each measured in README.md ("A compiler on a CPU")."""
    options = {"cpp_wrapper": True}  # the kernels are called from one C++ function, with no Python between them
    if torch.get_num_threads() == 1:  # (on several threads, not: below)
        options["post_grad_custom_post_pass"] = small_products_as_loops()
    return options


SMALL_SIDE = 64  # a matrix product with every side at most this is written as loops (below)


def small_products_as_loops():
    """A compiler pass of our own, which Inductor runs on the step's graph before it writes code.

    Attention's matrix products are B x H separate tiny ones (16 x 4 by 4 x 16 here), one
    batched matmul (aten.bmm) each, forward and backward. The math library runs a product that
    small far below its speed, and Inductor cannot fuse into a library call. The pass rewrites
    each such bmm, a @ b, as what it means: sum over k of a[:, i, k] * b[:, k, j], a multiply and a
    sum, which Inductor writes as plain loops and fuses with the softmax beside them. It marks
    a and b to be written to memory first, so that the loops read them instead of recomputing,
    for every product, the ops that made them. The Linear layers' matmuls stay library calls.

    On one thread only: on several, Inductor's C++ splits each of these loops' short sums among
    the threads, instead of the loops around them, and the step runs several times slower."""
    from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files

    aten = torch.ops.aten

    class SmallProductsAsLoops(CustomGraphPass):
        def __call__(self, graph: torch.fx.Graph) -> None:
            for node in graph.find_nodes(op="call_function", target=aten.bmm.default):
                a, b = node.args  # (N, n, k) and (N, k, m)
                if max(*a.meta["val"].shape[1:], b.meta["val"].shape[2]) > SMALL_SIDE:
                    continue
                a.meta["inductor_realize_to_strides"] = b.meta["inductor_realize_to_strides"] = True
                with graph.inserting_before(node):
                    products = graph.call_function(aten.mul.Tensor, (  # a * b broadcast to (N, n, k, m)
                        graph.call_function(aten.unsqueeze.default, (a, 3)),
                        graph.call_function(aten.unsqueeze.default, (b, 1))))
                    total = graph.call_function(aten.sum.dim_IntList, (products, [2]))  # summed over k: (N, n, m)
                node.replace_all_uses_with(total)
                graph.erase_node(node)

        def uuid(self):  # Inductor's cache keys its compiled code on this: a hash of this file
            return get_hash_for_files((__file__,))

    return SmallProductsAsLoops()


# ----------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------

@torch.no_grad()
def sample(model: GPT, config: GPTConfig, tokenizer: Tokenizer, rng, temperature: float) -> str:
    """One name: start from BOS, draw each next token, stop at BOS or block_size tokens."""
    tokens = [tokenizer.bos]
    for _ in range(config.block_size):
        logits, _ = model(torch.tensor([tokens], device=model.lm_head.weight.device))
        probs = F.softmax(logits[0, -1].double() / temperature, dim=-1)
        token_id = rng.choices(range(config.vocab_size), weights=probs.tolist())[0]
        if token_id == tokenizer.bos:
            break
        tokens.append(token_id)
    return tokenizer.decode(tokens)


# ----------------------------------------------------------------------------------------
# Command line: shared/runner.py reads the flags and the data, and times and records the run
# ----------------------------------------------------------------------------------------

def compile_flag(parser) -> None:
    parser.add_argument("--compile", action="store_true",
                        help="compile the step's forward and backward with torch.compile (the compile is timed "
                             "apart from the steps)")


def check_flags(args) -> str | None:
    """--compile on a CPU: Inductor writes C++ and builds it, so a C++ compiler must be there;
    without one, this line before training, rather than Inductor's traceback at the first step."""
    if not args.compile or runner.torch_device(args).device.type != "cpu":
        return None
    from torch._inductor import cpp_builder, exc

    try:
        cpp_builder.get_cpp_compiler()
    except exc.InvalidCxxCompiler:
        return ("--compile on a CPU needs a C++ compiler (g++ or clang++ on PATH, or one named by $CXX) and none "
                "was found; install one (Debian/Ubuntu: apt install g++; macOS: xcode-select --install) or leave "
                "out --compile")
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir  # where Inductor writes its code

    problem = runner.unwritable_folder(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or default_cache_dir())
    return (f"--compile writes the compiled code to Inductor's cache folder, and {problem}; set "
            f"TORCHINDUCTOR_CACHE_DIR to a folder that can be written") if problem else None


# --dtype float32 (default) or float64; --device cpu, cuda, mps or auto; --threads; and this stage's --compile
FLAGS = runner.Flags(dtypes=("float32", "float64"), device=runner.torch_device, extra=compile_flag, check=check_flags)

if __name__ == "__main__":
    runner.main(__file__, FLAGS, train, sample)
