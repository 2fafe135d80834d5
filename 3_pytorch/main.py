"""Stage 3 -- PyTorch: torch.autograd, nn.Module and torch.optim train microgpt.

What changes from stage 2: our Tensor engine becomes PyTorch's C++ autograd, our fused
NumPy ops become PyTorch's kernels (F.rms_norm, F.scaled_dot_product_attention,
F.cross_entropy), and our Adam becomes torch.optim.Adam with a LambdaLR schedule. The
model is an nn.Module with the same 4,192 parameters, loaded from the same initial
weights, so float64 reproduces stage 2's losses. What PyTorch buys is not speed on a
4k-parameter model on a CPU -- each op pays a fixed dispatch cost of microseconds, like
our NumPy engine did -- but the same code on a GPU, torch.compile, and scale: at larger
widths the arithmetic outgrows the per-op cost, and there PyTorch's kernels win.

Run:  python 3_pytorch/main.py                          (CPU, float32, 1 thread)
      python 3_pytorch/main.py --dtype float64          (bit-for-bit the stage-2 run, to 1e-6)
      python 3_pytorch/main.py --device cuda --compile
"""

import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from shared import cli, dataset, results  # noqa: E402
from shared.errors import UserError  # noqa: E402
from shared.tokenizer import Tokenizer, positions  # noqa: E402
from shared.weights import GPTConfig, init_run  # noqa: E402

STAGE = "3_pytorch"
HERE = Path(__file__).resolve().parent

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


def grads_by_name(model: "GPT") -> dict[str, torch.Tensor]:
    """Gradients under SPEC.md's names (the stacked q, k, v gradient split back), for tests."""
    grads = {"wte": model.wte.weight.grad, "wpe": model.wpe.weight.grad, "lm_head": model.lm_head.weight.grad}
    for i, block in enumerate(model.layers):
        p = f"layer{i}."
        grads.update(zip((p + "attn_wq", p + "attn_wk", p + "attn_wv"), block.attn.attn_wqkv.weight.grad.chunk(3)))
        grads[p + "attn_wo"] = block.attn.attn_wo.weight.grad
        grads[p + "mlp_fc1"] = block.mlp.mlp_fc1.weight.grad
        grads[p + "mlp_fc2"] = block.mlp.mlp_fc2.weight.grad
    return grads


# ----------------------------------------------------------------------------------------
# Model: nn.Modules, PyTorch's fused kernels inside
# ----------------------------------------------------------------------------------------

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
        qkv = self.attn_wqkv(x).view(B, T, 3, self.n_head, C // self.n_head)  # (B, T, 3, H, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D), scaled by 1/sqrt(D)
        return self.attn_wo(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.mlp_fc1 = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.mlp_fc2 = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x):  # (B, T, C)
        return self.mlp_fc2(F.relu(self.mlp_fc1(x)))  # (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn = CausalSelfAttention(config)
        self.mlp = MLP(config)

    def forward(self, x):  # (B, T, C)
        x = x + self.attn(rmsnorm(x))
        return x + self.mlp(rmsnorm(x))


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
        x = rmsnorm(self.wte(idx) + self.wpe.weight[:T])  # (B, T, C); positions 0..T-1 are a slice
        for block in self.layers:
            x = block(x)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                                            ignore_index=PADDING)  # mean over real targets
        return logits, loss


def batch_tensors(batch: list[list[int]], block_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), each (B, T) with T the longest document's positions: every document's
    first min(block_size, len-1) positions, inputs padded with 0 and targets with PADDING."""
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
# Training: forward, backward, optimizer step; the same loop on any device
# ----------------------------------------------------------------------------------------

def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device name; use cpu, cuda, mps or auto") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        raise UserError(f"--device {name} is not available on this machine; use --device cpu or auto")
    return device


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def compile_model(model: GPT, tokenizer: Tokenizer, docs: list[str], config: GPTConfig, device):
    """torch.compile with a dynamic sequence length, compiled up front on two documents of
    different length (forward and backward), so compile time is reported apart from the
    step times. The gradients of the warm-up are discarded."""
    compiled = torch.compile(model, dynamic=True)
    t0 = time.perf_counter()
    for doc in (min(docs, key=len), max(docs, key=len)):
        inputs, targets = batch_tensors([tokenizer.encode_doc(doc)], config.block_size, device)
        compiled(inputs, targets)[1].backward()
    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return compiled, time.perf_counter() - t0


def train(args) -> dict:
    device = pick_device(args.device)
    dtype = getattr(torch, args.dtype)
    if device.type == "mps" and dtype == torch.float64:
        raise UserError("--dtype float64 is not supported on mps; use --dtype float32 or --device cpu")
    torch.set_num_threads(args.threads)
    docs = dataset.load_docs(dataset.resolve_data_path(args.data))
    tokenizer = Tokenizer.from_docs(docs)
    config = GPTConfig(tokenizer.vocab_size, args.n_layer, args.n_embd, args.n_head, args.block_size)
    docs, state, rng = init_run(docs, config, args.seed)
    model = load_weights(GPT(config).to(dtype), state).to(device)
    num_params = sum(p.numel() for p in model.parameters())
    optimizer, schedule = make_optimizer(model, args.steps, device)
    forward = model
    compile_s = None
    if args.compile:
        forward, compile_s = compile_model(model, tokenizer, docs, config, device)
    print(f"{STAGE}: {len(docs)} docs, vocab {config.vocab_size}, {num_params} parameters, "
          f"{args.steps} steps of {args.batch_size} document(s), {args.dtype} on {device_name(device)}, "
          f"torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)"
          + (f", compiled in {compile_s:.1f} s" if args.compile else ""),
          flush=True)

    env = results.environment(device_name(device), threads=torch.get_num_threads(),
                              compile=args.compile, compile_s=compile_s)
    run = results.TrainingRun(
        STAGE, {**config.to_dict(), "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
                "dtype": args.dtype},
        num_params, args.out, env,
    )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with run:
        for step in range(args.steps):
            t0 = time.perf_counter()
            batch = [tokenizer.encode_doc(doc) for doc in dataset.step_documents(docs, step, args.batch_size)]
            inputs, targets = batch_tensors(batch, config.block_size, device)
            _, loss = forward(inputs, targets)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            t3 = time.perf_counter()
            loss_value = loss.item()  # the one host sync per step: the loss we print
            sync()
            # On a CPU every op finishes before the next line, so phase times are real; on a
            # GPU they would only time the launches, so they are not recorded there.
            phases = {} if device.type != "cpu" else dict(
                forward_ms=(t1 - t0) * 1e3, backward_ms=(t2 - t1) * 1e3, optimizer_ms=(t3 - t2) * 1e3)
            doc_len = sum(positions(tokens, config.block_size) for tokens in batch)
            run.record(loss_value, time.perf_counter() - t0, doc_len=doc_len, **phases)

    model.eval()
    samples = [sample(model, tokenizer, rng, args.temperature, device) for _ in range(args.samples)]
    for i, name in enumerate(samples, start=1):
        print(f"sample {i:2d}: {name}")
    return run.finish(samples)


# ----------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------

@torch.no_grad()
def sample(model: GPT, tokenizer: Tokenizer, rng, temperature: float, device) -> str:
    """One name: start from BOS, draw each next token, stop at BOS or block_size tokens."""
    tokens = [tokenizer.bos]
    for _ in range(model.config.block_size):
        logits, _ = model(torch.tensor([tokens], device=device))
        probs = F.softmax(logits[0, -1].double() / temperature, dim=-1)
        token_id = rng.choices(range(model.config.vocab_size), weights=probs.tolist())[0]
        if token_id == tokenizer.bos:
            break
        tokens.append(token_id)
    return tokenizer.decode(tokens)


# ----------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = cli.build_parser(__doc__.splitlines()[0], HERE)
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps, or auto (cuda > mps > cpu)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="float64 reproduces stage 2 to 1e-6 per step")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (time reported apart)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads; with tensors this small, more threads only add overhead")
    args = cli.parse_args(parser, argv)
    if args.threads <= 0:
        parser.error(f"--threads must be positive, got {args.threads}")
    return args


def main(argv=None):
    train(parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli.run(main))
