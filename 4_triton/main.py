"""Stage 4 -- Triton: our own kernels, forward and backward, train microgpt.

What changes from stage 3: every op of the training step is a Triton kernel from
`kernels/` -- embedding, rmsnorm, linear (with ReLU or the residual add fused in),
causal attention, cross-entropy (its gradient made in forward), Adam -- wrapped in
torch.autograd.Functions, in the same nn.Modules as stage 3. A 4k-parameter model on a GPU
is not limited by arithmetic or memory but by how many kernels are launched and how much
Python runs per launch, so the design is about launches: fusion cuts the step to 29
kernels at SPEC.md's one layer (kernels_per_step in kernels/__init__.py counts them), all
parameters live in one flat buffer so Adam is one launch, and on a GPU the whole step
(forward, backward, Adam) is captured once as a CUDA graph and replayed, so Python launches
one graph per step. (The whole step as a single kernel is the next move: fused_step.py.)

Batches: activations are (B, T, C) as in stage 3; every kernel's grid has the batch in it
(rows, or one program per document), each document's length is read from device memory,
and weight gradients are summed over the batch in a fixed order -- a large batch's rows
shared among programs whose partial sums are added in order (kernels/partials.py) -- with no
atomics, so a run gives the same bits every time.

Without a CUDA GPU, the same kernels run in Triton's interpreter (kernels/backend.py
decides), which emulates every program with NumPy: right for checking numbers, useless for
speed.

Run:  python 4_triton/main.py                    (CUDA: compiled, CUDA graph)
      python 4_triton/main.py --no-cuda-graph    (CUDA: one Python launch per kernel)
      python 4_triton/main.py --steps 20         (CPU: the interpreter: exact, and slow)
      python 4_triton/main.py --batch-size 64    (64 names per step)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for shared/
from shared import program, runner  # noqa: E402, F401  (program first: load-time errors in one line)
from shared.keep import keep  # noqa: E402  (names a value for the one-step page and the tests)
from shared.tokenizer import Tokenizer  # noqa: E402
from shared.weights import GPTConfig, param_offsets  # noqa: E402

# isort: split
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from kernels import backend, kernels_per_step  # noqa: E402
from kernels.adam import adam_step  # noqa: E402  (the first kernel file: backend.choose(), then Triton)
from kernels.attention import CausalAttention  # noqa: E402
from kernels.cross_entropy import CrossEntropy  # noqa: E402
from kernels.embedding import Embedding  # noqa: E402
from kernels.launch import check_sizes, partial_sums_bytes, per_op_flags  # noqa: E402
from kernels.layout import flat_weights, padded_document  # noqa: E402
from kernels.linear import Linear  # noqa: E402
from kernels.rmsnorm import RMSNorm, RMSNormWithResidual  # noqa: E402

# Optimizer (SPEC.md): Adam with bias correction and a linear learning-rate decay to zero.
LEARNING_RATE = 0.01  # peak learning rate, decayed linearly to 0 over the run
BETA1 = 0.85  # decay of the first-moment (mean gradient) estimate
BETA2 = 0.99  # decay of the second-moment (squared gradient) estimate
EPS_ADAM = 1e-8  # keeps the update finite where the second moment is ~0

# Shapes in comments: B documents per step, T = block_size rows each (a document's n real
# tokens, then padding), C = n_embd, H heads, D = head_dim = C / H, V = vocab_size.
# Weights are (n_out, n_in).


# ----------------------------------------------------------------------------------------
# Autograd: torch.autograd drives our kernels' backward
# ----------------------------------------------------------------------------------------

# Each op is a torch.autograd.Function from kernels/: its forward launches our forward
# kernel and saves what the backward kernel needs. Weights never get a gradient from
# autograd: each backward kernel writes its weight's gradient straight into the flat
# gradient buffer (a FlatWeight's `grad`, below) and hands autograd None for it. These
# wrappers name the arguments and make each weight's view for this forward (see FlatWeight).

def embedding(tokens, n, wte: "FlatWeight", wpe: "FlatWeight"):
    return Embedding.apply(tokens, n, wte.weight(), wpe.weight(), wte.grad, wpe.grad)


def linear(x, weight: "FlatWeight", residual=None, relu=False):
    """relu?(x W^T) (+ residual), one kernel; with a residual, the add is the matmul's epilogue."""
    return Linear.apply(x, weight.weight(), weight.grad, residual, relu)


def rmsnorm(x):
    return RMSNorm.apply(x)


def rmsnorm_with_residual(x):
    """(rmsnorm(x), x): x comes back for the residual add, so its two gradients meet in one kernel."""
    return RMSNormWithResidual.apply(x)


def causal_attention(qkv, n_head):
    return CausalAttention.apply(qkv, n_head)


def cross_entropy(logits, targets, n):
    return CrossEntropy.apply(logits, targets, n)


# ----------------------------------------------------------------------------------------
# Parameters: one flat buffer, every weight a view of it, every gradient a view of another
# ----------------------------------------------------------------------------------------

class FlatParameters(nn.Module):
    """All weights in one flat nn.Parameter in SPEC.md's order, all gradients in one flat
    buffer beside it. The backward kernels fill the gradient buffer in place, so after
    `loss.backward()` it is complete and one Adam launch updates everything."""

    def __init__(self, config: GPTConfig, state: dict, dtype, device):
        super().__init__()
        self.config, self.offsets = config, param_offsets(config)
        self.flat = nn.Parameter(flat_weights(state, config, dtype, device))  # (kernels/layout.py)
        self.register_buffer("flat_grad", torch.zeros_like(self.flat))

    def matrix(self, name: str) -> "FlatWeight":
        return FlatWeight(self, name)

    def weight(self, name: str) -> torch.Tensor:
        return self._view(self.flat, name)

    def weight_grad(self, name: str) -> torch.Tensor:
        return self._view(self.flat_grad, name)

    def _view(self, flat: torch.Tensor, name: str) -> torch.Tensor:
        start, rows, cols = self.offsets[name]
        return flat[start:start + rows * cols].view(rows, cols)


class FlatWeight:
    """One weight matrix: `weight()` is its view of the flat parameter, `grad` its view of the
    flat gradient buffer.

    `grad` is made once. `weight()` makes a new view in every forward: a view of an
    nn.Parameter is an autograd node, and a node made once would stay in every step's graph,
    made outside the CUDA graph that captures the step (tests/test_stage4.py checks that no
    node outlives its forward)."""

    def __init__(self, params: FlatParameters, name: str):
        self.params, self.name = params, name
        self.grad = params.weight_grad(name)

    def weight(self) -> torch.Tensor:
        return self.params.weight(self.name)


# ----------------------------------------------------------------------------------------
# Model: stage 3's nn.Modules, our kernels inside
# ----------------------------------------------------------------------------------------

# keep(name, value) gives `value` back unchanged. It names the model's quantities -- x0, q,
# attn, logits, ... (SPEC.md's names, the same in every stage) -- so that the one-step page
# and the tests can read them from this stage's own run (shared/keep.py).

class CausalSelfAttention(nn.Module):
    """All heads at once. q, k, v come from one matmul with the stacked weight [wq; wk; wv].

    One attention kernel per direction, one program per (document, head): a whole head
    (T <= 16, D = 4) and its T x T scores fit in registers, so nothing between qkv and y
    touches memory.
    """

    def __init__(self, config: GPTConfig, params: FlatParameters, prefix: str):
        super().__init__()
        self.n_head = config.n_head
        self.attn_wqkv = params.matrix(prefix + "attn_wqkv")  # [wq; wk; wv], (3C, C)
        self.attn_wo = params.matrix(prefix + "attn_wo")

    def forward(self, x, residual):  # (B, T, C)
        qkv = keep("qkv", linear(x, self.attn_wqkv))  # (B, T, 3C): [q | k | v]
        y = keep("y", causal_attention(qkv, self.n_head))  # (B, T, C), scaled by 1/sqrt(D)
        return keep("x2", linear(y, self.attn_wo, residual=residual))  # residual + y Wo^T


class MLP(nn.Module):
    def __init__(self, config: GPTConfig, params: FlatParameters, prefix: str):
        super().__init__()
        self.mlp_fc1, self.mlp_fc2 = params.matrix(prefix + "mlp_fc1"), params.matrix(prefix + "mlp_fc2")

    def forward(self, x, residual):  # (B, T, C)
        h = keep("relu", linear(x, self.mlp_fc1, relu=True))  # (B, T, 4C); fc1's output is never stored
        return keep("x3", linear(h, self.mlp_fc2, residual=residual))  # residual + h W2^T, (B, T, C)


class Block(nn.Module):
    def __init__(self, config: GPTConfig, params: FlatParameters, prefix: str):
        super().__init__()
        self.attn = CausalSelfAttention(config, params, prefix)
        self.mlp = MLP(config, params, prefix)

    def forward(self, x):  # (B, T, C)
        h, x = rmsnorm_with_residual(x)
        x = self.attn(keep("h_attn", h), residual=x)
        h, x = rmsnorm_with_residual(x)
        return self.mlp(keep("h_mlp", h), residual=x)


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, state: dict, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.config = config
        self.params = FlatParameters(config, state, dtype, device)
        self.wte, self.wpe, self.lm_head = (self.params.matrix(name) for name in ("wte", "wpe", "lm_head"))
        self.layers = nn.ModuleList(Block(config, self.params, f"layer{i}.") for i in range(config.n_layer))

    def forward(self, idx, n, targets=None):  # idx (B, T) int32 token ids, padded; n (B,) int32: real rows
        x = keep("x0", embedding(idx, n, self.wte, self.wpe))  # (B, T, C)
        x = keep("x1", rmsnorm(x))
        for block in self.layers:
            x = block(x)
        logits = keep("logits", linear(x, self.lm_head))  # (B, T, V)
        loss = None if targets is None else cross_entropy(logits, targets, n)  # over all real rows
        return logits, loss

    @torch.no_grad()
    def next_logits(self, tokens: list[int]) -> torch.Tensor:
        """(V,) logits for the token after `tokens` (at most block_size of them): a batch of one, padded."""
        block_size, device = self.config.block_size, self.params.flat.device
        padded = torch.zeros((1, block_size), dtype=torch.int32)
        padded[0, :len(tokens)] = torch.tensor(tokens, dtype=torch.int32)
        n = torch.tensor([len(tokens)], dtype=torch.int32, device=device)
        logits, _ = self(padded.to(device), n)
        return logits[0, len(tokens) - 1]


# ----------------------------------------------------------------------------------------
# Optimizer: Adam over the flat buffer, one kernel, its scalars in device memory
# ----------------------------------------------------------------------------------------

class Adam:
    """One launch updates all parameters. The step's scalars (lr_t and the two bias
    corrections) sit in a small device buffer rather than in the launch's arguments, so the
    launch is the same at every step and a CUDA graph can replay it."""

    def __init__(self, params: FlatParameters, num_steps: int):
        self.params, self.num_steps = params, num_steps
        self.m = torch.zeros_like(params.flat_grad)  # first moments
        self.v = torch.zeros_like(params.flat_grad)  # second moments
        pin = params.flat.device.type == "cuda"
        self.scalars_host = torch.zeros(3, dtype=params.flat.dtype, pin_memory=pin)
        self.scalars = torch.zeros(3, dtype=params.flat.dtype, device=params.flat.device)

    def load(self, step: int):
        """Write this step's lr_t, 1 - beta1^(step+1), 1 - beta2^(step+1) to the device. `step` is 0-based."""
        lr_t = LEARNING_RATE * (1 - step / self.num_steps)  # linear decay to zero
        scalars = [lr_t, 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)]
        self.scalars_host.copy_(torch.tensor(scalars, dtype=self.scalars_host.dtype))  # in the weights' dtype
        self.scalars.copy_(self.scalars_host, non_blocking=True)

    def step(self):
        adam_step(self.params.flat.data, self.params.flat_grad, self.m, self.v, self.scalars, BETA1, BETA2, EPS_ADAM)


# ----------------------------------------------------------------------------------------
# Training: the step's inputs in device buffers, so the step can be one CUDA graph
# ----------------------------------------------------------------------------------------

class TrainStep:
    """One training step, from a batch of documents' tokens to updated weights.

    Everything a step reads lives in fixed device buffers -- the B documents, padded to
    block_size (kernels/layout.py), and Adam's scalars -- filled by one small host-to-device
    copy each. So the launches are identical at every step, and on a GPU they are captured
    once as a CUDA graph and replayed: one launch from Python per step instead of one per kernel
    (29 at SPEC.md's one layer and one name: kernels_per_step).
    """

    def __init__(self, model: GPT, num_steps: int, cuda_graph: bool, batch_size: int = 1):
        self.model, self.optimizer = model, Adam(model.params, num_steps)
        device, block_size = model.params.flat.device, model.config.block_size
        # [n (B), inputs (B, T), targets (B, T)], flat, so each of the three is a contiguous view
        size = batch_size * (2 * block_size + 1)
        self.batch_host = torch.zeros(size, dtype=torch.int32, pin_memory=device.type == "cuda")
        self.batch = torch.zeros(size, dtype=torch.int32, device=device)
        self.batch_size = batch_size
        self.seed_grad = torch.ones((), dtype=model.params.flat.dtype, device=device)  # dL/dL, made once
        self.graph = self.graph_loss = None
        if cuda_graph:
            self.capture()

    def launch(self):
        """Queue the whole step on the device; returns the loss as a device tensor."""
        B, T = self.batch_size, self.model.config.block_size
        n, inputs, targets = self.batch[:B], self.batch[B:B + B * T].view(B, T), self.batch[B + B * T:].view(B, T)
        _, loss = self.model(inputs, n, targets)
        loss.backward(self.seed_grad)  # (plain backward() would launch a kernel to fill a 1)
        self.optimizer.step()
        return loss.detach()

    def capture(self):
        """Compile every kernel with a few warm-up steps on a side stream (then undo them), and
        capture one step into a CUDA graph: from then on a replay launches all of it."""
        state = (self.model.params.flat.data, self.optimizer.m, self.optimizer.v)
        saved = [t.clone() for t in state]
        self.load([[0, 1, 2, 0]] * self.batch_size, 0)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.launch()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.graph_loss = self.launch()
        for t, s in zip(state, saved):  # (queued after the warm-up, on the stream that waited for it)
            t.copy_(s)

    def load(self, batch: list[list[int]], step: int):
        """Write a batch of B tokenized documents and this step's Adam scalars into the device buffers."""
        T = self.model.config.block_size
        rows = torch.tensor([padded_document(tokens, T) for tokens in batch])  # (B, T + 2): [n, tokens...]
        self.batch_host.copy_(torch.cat([rows[:, 0], rows[:, 1:T + 1].flatten(), rows[:, 2:T + 2].flatten()]))
        self.batch.copy_(self.batch_host, non_blocking=True)
        self.optimizer.load(step)

    def __call__(self, batch: list[list[int]], step: int) -> float:
        self.load(batch, step)
        if self.graph is not None:
            self.graph.replay()
            return self.graph_loss.item()
        return self.launch().item()


def train(run) -> GPT:
    """Train from SPEC.md's initial weights, on a CUDA GPU or through the interpreter.
    `run` (shared/runner.py) hands out each step's documents and records the step."""
    model = GPT(run.config, run.initial_weights, getattr(torch, run.dtype), run.device)
    cuda_graph = run.device.type == "cuda" and not run.args.no_cuda_graph
    with run.timed("setup"):  # on a GPU: compile every kernel and capture the step
        step_fn = TrainStep(model, run.num_steps, cuda_graph, run.batch_size)
    run.note(cuda_graph=cuda_graph,
             kernels_per_step=kernels_per_step(run.config.n_layer, run.batch_size, run.config.block_size))
    for step, batch in run.batches():
        run.end_step(step_fn(batch, step))
    return model


# ----------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------

def sample(model: GPT, config: GPTConfig, tokenizer: Tokenizer, rng, temperature: float) -> str:
    """One name: start from BOS, draw each next token, stop at BOS or block_size tokens.
    (Anything with `next_logits(tokens)` samples the same way: fused_step.py's trainer too.)"""
    tokens = [tokenizer.bos]
    for _ in range(config.block_size):
        probs = torch.softmax(model.next_logits(tokens).double().cpu() / temperature, dim=-1)
        token_id = rng.choices(range(config.vocab_size), weights=probs.tolist())[0]
        if token_id == tokenizer.bos:
            break
        tokens.append(token_id)
    return tokenizer.decode(tokens)


# ----------------------------------------------------------------------------------------
# Command line: shared/runner.py reads the flags and the data, and times and records the run
# ----------------------------------------------------------------------------------------

# --dtype float32 (default) or float64 (interpreter only); a CUDA GPU, else Triton's interpreter; --no-cuda-graph;
# the sizes our kernels can hold; the memory a large batch's partial sums take (all in kernels/launch.py)
FLAGS = runner.Flags(dtypes=("float32", "float64"), device=backend.device, extra=per_op_flags, check=check_sizes,
                     memory=runner.Memory(extra=partial_sums_bytes, pads_to_block_size=True))

if __name__ == "__main__":
    runner.main(__file__, FLAGS, train, sample)
