"""Stage 4 -- Triton: our own kernels, forward and backward, train microgpt.

What changes from stage 3: every op of the training step is a Triton kernel from
`kernels/` -- embedding, rmsnorm, linear (with ReLU or the residual add fused in),
causal attention, cross-entropy (its gradient made in forward), Adam -- wrapped in
torch.autograd.Functions and put together as an nn.Module. A 4k-parameter model on a GPU
is not limited by arithmetic or memory but by how many kernels are launched and how
much Python runs per launch, so the design is about launches: fusion cuts the step to
28 kernels, and on a GPU the whole step (forward, backward, Adam) is captured once as a
CUDA graph and replayed, so Python launches one graph per step.

Without a CUDA GPU, the same kernels run in Triton's interpreter (TRITON_INTERPRET=1),
which emulates every program with NumPy: right for checking numbers, useless for speed.

Run:  python 4_triton/main.py                    (CUDA: compiled, CUDA graph)
      python 4_triton/main.py --no-cuda-graph    (CUDA: one Python launch per kernel)
      python 4_triton/main.py --steps 20         (CPU: the interpreter: exact, and slow)
"""

import os
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

# Triton reads TRITON_INTERPRET when it is first imported: decide before the kernels load.
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1" or not torch.cuda.is_available()
if INTERPRET:
    os.environ["TRITON_INTERPRET"] = "1"


def triton_missing() -> str:
    """One line for a machine without Triton: why, and where each stage runs instead."""
    where = ("stage 4 runs on Linux, through Triton's CPU interpreter on any machine or compiled on an NVIDIA "
             "GPU (pip install -r requirements.txt installs Triton there)")
    if sys.platform == "darwin":
        return f"error: Triton has no macOS build, so stage 4 cannot run on this Mac; stages 1-3 run here, and {where}"
    if sys.platform == "win32":
        return ("error: stage 4 needs Triton, which is not installed; on Windows it is the triton-windows package: "
                "pip install triton-windows (stages 1-3 run without it)")
    return f"error: stage 4 needs Triton, which is not installed; stages 1-3 run without it, and {where}"


try:
    import triton  # noqa: F401  (first imported here, after TRITON_INTERPRET is decided)
except ImportError:
    sys.exit(triton_missing())

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from fused_step import FusedTrainer  # noqa: E402
from kernels.adam import adam_step  # noqa: E402
from kernels.attention import CausalAttention  # noqa: E402
from kernels.cross_entropy import CrossEntropy  # noqa: E402
from kernels.embedding import Embedding  # noqa: E402
from kernels.linear import Linear  # noqa: E402
from kernels.rmsnorm import RMSNorm  # noqa: E402
from shared import cli, dataset, results  # noqa: E402
from shared.errors import UserError  # noqa: E402
from shared.tokenizer import Tokenizer  # noqa: E402
from shared.weights import GPTConfig, init_run, param_shapes  # noqa: E402

STAGE = "4_triton"

# Optimizer (SPEC.md): Adam with bias correction and a linear learning-rate decay to zero.
LEARNING_RATE = 0.01  # peak learning rate, decayed linearly to 0 over the run
BETA1 = 0.85  # decay of the first-moment (mean gradient) estimate
BETA2 = 0.99  # decay of the second-moment (squared gradient) estimate
EPS_ADAM = 1e-8  # keeps the update finite where the second moment is ~0

# Shapes in comments: T = block_size rows (a document's n real tokens, then padding),
# C = n_embd, H heads, D = head_dim, V = vocab_size.


# ----------------------------------------------------------------------------------------
# Model: nn.Module over our autograd Functions; weights are views of one flat buffer
# ----------------------------------------------------------------------------------------

class GPT(nn.Module):
    """microgpt on our kernels.

    All weights live in one flat nn.Parameter in SPEC.md's order and all gradients in one
    flat buffer beside it; each layer's weight and gradient are views. The backward
    kernels write gradients straight into those views, so after `loss.backward()` the
    flat gradient is complete and one Adam launch updates everything.
    """

    def __init__(self, config: GPTConfig, state: dict, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.config = config
        flat = torch.cat([torch.tensor(state[name], dtype=dtype).flatten() for name, _ in param_shapes(config)])
        self.params = nn.Parameter(flat.to(device))
        self.register_buffer("grads", torch.zeros_like(self.params))
        self.offsets, offset = {}, 0
        for name, (rows, cols) in param_shapes(config):
            self.offsets[name] = (offset, rows, cols)
            offset += rows * cols
        # wq, wk, wv are adjacent in SPEC.md's order: [wq; wk; wv] is one (3C, C) view.
        for i in range(config.n_layer):
            start = self.offsets[f"layer{i}.attn_wq"][0]
            self.offsets[f"layer{i}.attn_wqkv"] = (start, 3 * config.n_embd, config.n_embd)

    def weight(self, name):
        """(weight view, gradient view) of one matrix."""
        start, rows, cols = self.offsets[name]
        span = slice(start, start + rows * cols)
        return self.params[span].view(rows, cols), self.grads[span].view(rows, cols)

    def forward(self, tokens, n, targets=None):
        """tokens (T,) int32, padded; n (1,) int32, the real length. Logits (T, V), or the loss."""
        wte, d_wte = self.weight("wte")
        wpe, d_wpe = self.weight("wpe")
        x = Embedding.apply(tokens, n, wte, wpe, d_wte, d_wpe)  # (T, C)
        x, _ = RMSNorm.apply(x)
        for i in range(self.config.n_layer):
            h, x = RMSNorm.apply(x)  # h = rmsnorm(x); x handed through for the residual
            qkv = Linear.apply(h, *self.weight(f"layer{i}.attn_wqkv"))  # (T, 3C)
            y = CausalAttention.apply(qkv, self.config.n_head)  # (T, C)
            x = Linear.apply(y, *self.weight(f"layer{i}.attn_wo"), x)  # x + y Wo^T
            h, x = RMSNorm.apply(x)
            h = Linear.apply(h, *self.weight(f"layer{i}.mlp_fc1"), None, True)  # relu(h W1^T), (T, 4C)
            x = Linear.apply(h, *self.weight(f"layer{i}.mlp_fc2"), x)  # x + h W2^T
        logits = Linear.apply(x, *self.weight("lm_head"))  # (T, V)
        return logits if targets is None else CrossEntropy.apply(logits, targets, n)

    def grads_by_name(self) -> dict[str, torch.Tensor]:
        return {name: self.weight(name)[1] for name, _ in param_shapes(self.config)}


# ----------------------------------------------------------------------------------------
# Training step: inputs in device buffers, Adam in one launch, optionally one CUDA graph
# ----------------------------------------------------------------------------------------

class TrainStep:
    """One training step of the model, from a document's tokens to updated weights.

    Everything a step reads lives in fixed device buffers -- `batch` = [n, tokens..., pad]
    and `hyper` = [lr_t, bias1, bias2] -- filled by one small host-to-device copy each. So
    the launches are identical at every step, and on a GPU they are captured once as a
    CUDA graph and replayed: one launch from Python per step instead of 28.
    """

    def __init__(self, model: GPT, num_steps: int, cuda_graph: bool):
        self.model, self.num_steps = model, num_steps
        device, block_size = model.params.device, model.config.block_size
        pin = device.type == "cuda"
        self.batch_host = torch.zeros(block_size + 2, dtype=torch.int32, pin_memory=pin)
        self.hyper_host = torch.zeros(3, dtype=model.params.dtype, pin_memory=pin)
        self.batch = torch.zeros(block_size + 2, dtype=torch.int32, device=device)
        self.hyper = torch.zeros(3, dtype=model.params.dtype, device=device)
        self.m = torch.zeros_like(model.params)
        self.v = torch.zeros_like(model.params)
        self.seed_grad = torch.ones((), dtype=model.params.dtype, device=device)  # dL/dL, made once
        self.graph = self.graph_loss = None
        if cuda_graph:
            self.capture()

    def launch(self):
        """Queue the whole step on the device; returns the loss as a device tensor."""
        n, block_size = self.batch[0:1], self.model.config.block_size
        loss = self.model(self.batch[1:block_size + 1], n, self.batch[2:block_size + 2])  # inputs, n, targets
        loss.backward(self.seed_grad)  # (plain backward() would launch a kernel to fill a 1)
        adam_step(self.model.params.data, self.model.grads, self.m, self.v, self.hyper, BETA1, BETA2, EPS_ADAM)
        return loss.detach()

    def capture(self):
        """Compile every kernel with a few warm-up steps (then undo them), capture the graph."""
        saved = [t.clone() for t in (self.model.params.data, self.m, self.v)]
        self.load([0, 1, 2, 0], 0)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.launch()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.graph_loss = self.launch()
        torch.cuda.synchronize()
        for t, s in zip((self.model.params.data, self.m, self.v), saved):
            t.copy_(s)

    def load(self, tokens: list[int], step: int):
        """Write a document and this step's Adam scalars into the device buffers."""
        n = min(self.model.config.block_size, len(tokens) - 1)
        self.batch_host.zero_()
        self.batch_host[0] = n
        self.batch_host[1:n + 2] = torch.tensor(tokens[:n + 1], dtype=torch.int32)
        lr_t = LEARNING_RATE * (1 - step / self.num_steps)  # linear decay to zero
        self.hyper_host.copy_(torch.tensor([lr_t, 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)]))
        self.batch.copy_(self.batch_host, non_blocking=True)
        self.hyper.copy_(self.hyper_host, non_blocking=True)

    def __call__(self, tokens: list[int], step: int) -> float:
        self.load(tokens, step)
        if self.graph is not None:
            self.graph.replay()
            return self.graph_loss.item()
        return self.launch().item()


def fused_trainer(model: GPT, tokenizer: Tokenizer, docs: list[str], num_steps: int) -> FusedTrainer:
    """The one-kernel trainer over the model's flat parameters, documents loaded, kernel compiled."""
    trainer = FusedTrainer(model.params.data, model.config, num_steps, BETA1, BETA2, EPS_ADAM, LEARNING_RATE)
    trainer.load_documents([tokenizer.encode_doc(docs[i % len(docs)]) for i in range(num_steps)])
    trainer.launch(0, 0)  # compiles the kernel (zero steps), so no timed step includes the compile
    return trainer


# ----------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------

@torch.no_grad()
def sample(model: GPT, tokenizer: Tokenizer, rng, temperature: float) -> str:
    """One name: start from BOS, draw each next token, stop at BOS or block_size tokens."""
    block_size, device = model.config.block_size, model.params.device
    tokens = [tokenizer.bos]
    for _ in range(block_size):
        padded = torch.zeros(block_size, dtype=torch.int32)
        padded[:len(tokens)] = torch.tensor(tokens, dtype=torch.int32)
        n = torch.tensor([len(tokens)], dtype=torch.int32, device=device)
        logits = model(padded.to(device), n)[len(tokens) - 1].double().cpu()
        probs = torch.softmax(logits / temperature, dim=-1)
        token_id = rng.choices(range(model.config.vocab_size), weights=probs.tolist())[0]
        if token_id == tokenizer.bos:
            break
        tokens.append(token_id)
    return tokenizer.decode(tokens)


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = cli.build_parser(__doc__.splitlines()[0], HERE)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="float64 only through the interpreter (for exact checks)")
    parser.add_argument("--no-cuda-graph", action="store_true",
                        help="on a GPU, launch every kernel from Python instead of replaying one graph")
    parser.add_argument("--fused", choices=["step", "run"], default=None,
                        help="train with the one-kernel step of fused_step.py: one launch per step, "
                             "or the whole run in one launch")
    args = cli.parse_args(parser, argv)
    if args.fused and args.dtype != "float32":
        parser.error("--fused runs in float32 only")
    if args.fused and args.n_layer != 1:
        parser.error("--fused implements SPEC.md's one-layer model; drop --fused for --n-layer > 1")
    for flag in ("n_embd", "block_size"):
        value = getattr(args, flag)
        if args.fused and (value < 16 or value & (value - 1)):
            parser.error(f"--fused needs --{flag.replace('_', '-')} to be a power of two >= 16, got {value}; "
                         f"drop --fused to use the per-op kernels")
    return args


def device_description() -> str:
    return "cpu" if INTERPRET else torch.cuda.get_device_name()


def train(args) -> dict:
    device = torch.device("cpu" if INTERPRET else "cuda")
    if args.dtype == "float64" and not INTERPRET:
        raise UserError("--dtype float64 runs only through the interpreter; use float32 on a GPU "
                        "or set TRITON_INTERPRET=1")
    docs = dataset.load_docs(dataset.resolve_data_path(args.data))
    tokenizer = Tokenizer.from_docs(docs)
    config = GPTConfig(tokenizer.vocab_size, args.n_layer, args.n_embd, args.n_head, args.block_size)
    docs, state, rng = init_run(docs, config, args.seed)
    model = GPT(config, state, getattr(torch, args.dtype), device)
    cuda_graph = not INTERPRET and not args.no_cuda_graph and not args.fused
    t0 = time.perf_counter()
    if args.fused:
        step_fn = fused_trainer(model, tokenizer, docs, args.steps)
        mode = "the fused one-kernel step, " + ("one launch per step" if args.fused == "step" else
                                                 "the whole run in one launch")
    else:
        step_fn = TrainStep(model, args.steps, cuda_graph)
        mode = "28 kernels per step" + (", replayed as one CUDA graph" if cuda_graph else "")
    setup_s = time.perf_counter() - t0
    print(f"{STAGE}: {len(docs)} docs, vocab {config.vocab_size}, {model.params.numel()} parameters, "
          f"{args.steps} steps, {args.dtype} on {device_description()}, {mode}", flush=True)
    if INTERPRET:
        print("no CUDA GPU: every kernel runs in Triton's CPU interpreter (NumPy emulation) -- "
              "right numbers, interpreter speed; the timings below measure the interpreter", flush=True)

    env = results.environment(device_description(), interpreter=INTERPRET, cuda_graph=cuda_graph,
                              fused=args.fused, setup_s=setup_s, threads=torch.get_num_threads())
    if args.fused == "run":
        env["timing"] = "the whole run is one launch: each step_ms is the run's time divided by its steps"
    run = results.TrainingRun(
        STAGE, {**config.to_dict(), "steps": args.steps, "seed": args.seed, "dtype": args.dtype},
        model.params.numel(), args.out, env, show_eta=INTERPRET and args.fused != "run",
    )
    with run:
        if args.fused == "run":
            print(f"one launch for all {args.steps} steps: the log follows when it returns", flush=True)
            t0 = time.perf_counter()
            step_fn.launch(0, args.steps)
            losses = step_fn.losses.tolist()  # waits for the launch to finish
            per_step = (time.perf_counter() - t0) / args.steps
            for step, loss in enumerate(losses):
                run.record(loss, per_step, doc_len=int(step_fn.batches[step, 0]))
            run.total_s = per_step * args.steps  # the launch itself, not the printing of the log after it
        else:
            for step in range(args.steps):
                t0 = time.perf_counter()
                tokens = tokenizer.encode_doc(docs[step % len(docs)])
                if args.fused:
                    step_fn.launch(step, 1)
                    loss = step_fn.losses[step].item()
                else:
                    loss = step_fn(tokens, step)
                run.record(loss, time.perf_counter() - t0, doc_len=min(config.block_size, len(tokens) - 1))

    samples = [sample(model, tokenizer, rng, args.temperature) for _ in range(args.samples)]
    for i, name in enumerate(samples, start=1):
        print(f"sample {i:2d}: {name}")
    return run.finish(samples)


def main(argv=None):
    train(parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli.run(main))
