"""Stage 3 -- PyTorch: torch.autograd, nn.Module and torch.optim train microgpt.

What changes from stage 2: our Tensor engine becomes PyTorch's C++ autograd, our fused
NumPy ops become PyTorch's kernels (F.rms_norm, F.scaled_dot_product_attention,
F.cross_entropy), and our Adam becomes torch.optim.Adam with a LambdaLR schedule. The
model is an nn.Module with the same 4,192 parameters, loaded from the same initial
weights, so float64 reproduces stage 2's losses. What PyTorch buys is not speed on a
4k-parameter model on a CPU -- each op pays a fixed dispatch cost of microseconds, like
our NumPy engine did -- but the same code on a GPU, torch.compile, and scale: at larger
widths the arithmetic outgrows the per-op cost, and there PyTorch's kernels win. With
--compile the whole step (forward, backward and Adam) is one compiled graph.

Run:  python 3_pytorch/main.py                          (--device auto: cuda, else mps, else cpu; float32)
      python 3_pytorch/main.py --dtype float64          (stage 2's run, to float64 rounding)
      python 3_pytorch/main.py --device cpu --compile --batch-size 256   (the whole step compiled)
"""

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


def batch_tensors(batch: list[list[int]], block_size: int, device, pad_to: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), each (B, T): every document's first min(block_size, len-1) positions,
    inputs padded with 0 and targets with PADDING, to T = the longest document's positions, or
    to `pad_to` (the compiled step pads to the data's longest: one shape for every step)."""
    n = [positions(tokens, block_size) for tokens in batch]
    T = pad_to or max(n)  # one tensor from padded lists: per-document tensor ops would cost more than the step
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
# Training: forward, backward, optimizer step; the same loop on any device
# ----------------------------------------------------------------------------------------

def train(run) -> GPT:
    """Train from SPEC.md's initial weights on `run.device` (a CPU, a CUDA GPU or an Apple GPU).
    `run` (shared/runner.py) hands out each step's documents and records the step."""
    model = load_weights(GPT(run.config).to(getattr(torch, run.dtype)), run.initial_weights).to(run.device)
    if run.args.compile:
        return train_compiled(run, model)
    optimizer, schedule = make_optimizer(model, run.num_steps, run.device)
    for _, batch in run.batches():  # (the LambdaLR schedule counts the steps itself)
        with run.phase("forward"):
            _, loss = model(*batch_tensors(batch, run.config.block_size, run.device))
        with run.phase("backward"):
            loss.backward()
        with run.phase("optimizer"):
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
        run.end_step(loss)
    return model


# The compiled step (--compile): forward, backward and Adam as one graph.
#
# The loop above asks PyTorch for one op at a time, so a compiler can see only a piece of the
# step. Here the step is one function of plain tensors: the weights in one flat buffer, Adam's
# two moments beside it, the step count, the batch. torch.func.grad_and_value turns the loss
# function into one that also returns the gradient, so torch.compile traces forward, backward
# and the update as one graph, and Inductor compiles it into a few fused C++ loops (CPU) or
# Triton kernels (GPU) around the matmuls. Every batch is padded to the longest document, so
# the graph has one shape and is compiled once. README.md ("A compiler on a CPU") measures it.

def flatten_parameters(model: nn.Module) -> torch.Tensor:
    """Move every parameter into one flat buffer, in model.parameters() order; each parameter
    becomes a view of its slice, so the module (and sampling) sees every update to the buffer."""
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    for p, view in zip(model.parameters(), parameter_views(model, flat).values()):
        p.data = view
    return flat


def parameter_views(model: nn.Module, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """{name: the parameter's slice of `flat`, shaped like it}: what the model is called with."""
    views, offset = {}, 0
    for name, p in model.named_parameters():
        views[name] = flat[offset:offset + p.numel()].view(p.shape)
        offset += p.numel()
    return views


def compiled_step(model: GPT, num_steps: int, device: torch.device):
    """step(flat, m, v, t, inputs, targets) -> loss: one training step, compiled on its first
    call. It updates the weights `flat`, the moments `m`, `v` and the step count `t` in place,
    with torch.optim.Adam's arithmetic and the same linear schedule."""

    def loss_of(flat, inputs, targets):
        return torch.func.functional_call(model, parameter_views(model, flat), (inputs, targets))[1]

    def step(flat, m, v, t, inputs, targets):  # (N,) (N,) (N,) (1,) (B, T) (B, T)
        # attention as matmuls and a softmax the compiler sees, not a call to a library kernel
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            grad, loss = torch.func.grad_and_value(loss_of)(flat, inputs, targets)
        t.add_(1)  # float64: exact for any step count; the scalars below in the weights' dtype
        lr = (LEARNING_RATE * (1 - (t - 1) / num_steps)).to(flat.dtype)  # the schedule, steps t = 1, 2, ...
        m.mul_(BETA1).add_(grad, alpha=1 - BETA1)
        v.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
        m_hat, v_hat = m / (1 - BETA1 ** t).to(flat.dtype), v / (1 - BETA2 ** t).to(flat.dtype)  # bias correction
        flat.sub_(lr * m_hat / (v_hat.sqrt() + EPS_ADAM))
        return loss.detach()

    # fullgraph: a graph break (Python the compiler cannot trace) is an error, not a silent
    # fall-back to eager; dynamic=False: compiled for the shapes it is called with, never for
    # symbolic ones; on a CPU the C++ wrapper calls the kernels with no Python between them
    return torch.compile(step, fullgraph=True, dynamic=False, options={"cpp_wrapper": device.type == "cpu"})


def train_compiled(run, model: GPT) -> GPT:
    """The compiled loop: the same documents, in SPEC.md's order, and the same losses as train()'s
    to float rounding. Every document is tokenized and padded once, before the steps, to T = the
    longest document's positions (one shape for every step); a step gathers its B rows."""
    flat = flatten_parameters(model)
    m, v = torch.zeros_like(flat), torch.zeros_like(flat)
    # the step count, a one-element float64 vector: as a 0-d tensor, Inductor's C++ wrapper
    # passed it by value and its increment was lost (torch 2.13: NaN weights at step 2)
    t = torch.zeros(1, dtype=torch.float64, device=flat.device)
    step = compiled_step(model, run.num_steps, run.device)
    block, B, N = run.config.block_size, run.batch_size, len(run.docs)
    docs = [run.tokenizer.encode_doc(doc) for doc in run.docs]  # in Python once, not in every step
    T = max(positions(tokens, block) for tokens in docs)
    all_inputs, all_targets = batch_tensors(docs, block, run.device, pad_to=T)  # (N, T) each

    def warm_up_step(batch):  # compiles the step before the first one, on copies: no weight changes
        return step(flat.clone(), m.clone(), v.clone(), t.clone(), *batch_tensors(batch, block, run.device, pad_to=T))
    run.warm_up(warm_up_step)
    for i in run.steps():
        rows = torch.arange(i * B, i * B + B, device=run.device) % N  # SPEC.md: documents i*B + j, mod N
        run.end_step(step(flat, m, v, t, all_inputs[rows], all_targets[rows]))
    return model


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

# --dtype float32 (default) or float64; --device cpu, cuda, mps or auto; --threads; --compile
FLAGS = runner.Flags(dtypes=("float32", "float64"), device=runner.torch_device, compile=True)

if __name__ == "__main__":
    runner.main(__file__, FLAGS, train, sample)
