"""Stage 4, one kernel: the whole training step -- forward, backward, Adam -- as one Triton kernel.

The per-op kernels of main.py teach what each op does on a GPU; this file is the other end
of the road. microgpt's weights, gradients and Adam moments are 4,192 x 4 floats (about 67
KB in float32): they fit in one GPU block's registers and cache. So one program can run an
entire training step with every activation in registers -- no intermediate ever goes to
memory, no second kernel is launched -- and a loop inside the same kernel runs all 1000
steps of a run in a single launch. What the per-op version spends on 28 launches (or one
graph replay) is gone.

Layout of one step, for SPEC.md's one-layer model (T = block_size rows, padded; n real):
    forward   x = wte[tok] + wpe;  x0 = rmsnorm(x);  h1 = rmsnorm(x0);  q, k, v = h1 W^T
              per head: P = softmax(q_h k_h^T / sqrt(D) + causal mask);  y = sum_h P v_h
              x1 = x0 + y Wo^T;  h2 = rmsnorm(x1);  a = relu(h2 W1^T);  x2 = x1 + a W2^T
              logits = x2 lm_head^T;  loss = mean over real rows of the cross-entropy
    backward  the same chain in reverse, each derivative written above its line
    update    gradients to a flat buffer, a block-wide barrier, one Adam sweep, a barrier

Heads without reshapes: head h's scores are q k^T with every channel outside head h zeroed,
so each head is two tl.dot calls on full (T, C) tiles -- every tile dimension >= 16, as
tensor cores want, where head_dim = 4 alone would be too small.

Run:  python 4_triton/fused_step.py                 (one launch per step)
      python 4_triton/fused_step.py --launch run    (the whole run in one launch)
Same flags, log line and results file as every main.py; float32 and SPEC.md's one-layer
model with power-of-two widths only. Without a CUDA GPU it runs through Triton's interpreter.
"""

import sys
import time

# isort: off
import main as per_op  # stage 4's main.py, imported first: it decides TRITON_INTERPRET before Triton loads
import torch
import triton
import triton.language as tl
# isort: on

from kernels.adam import BLOCK as BLOCK_ADAM
from kernels.adam import adam_update
from kernels.rmsnorm import EPS
from shared import cli, dataset, results
from shared.tokenizer import Tokenizer, padded_document
from shared.weights import GPTConfig, init_run, param_offsets


@triton.jit
def _rmsnorm(x, C: tl.constexpr, EPS: tl.constexpr):
    """y = x * r, r = 1/sqrt(mean(x^2) + eps) per row; returns (y, r)."""
    r = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / C + EPS)
    return x * r[:, None], r


@triton.jit
def _rmsnorm_backward(y, r, g, C: tl.constexpr):
    """dL/dx = r * (g - y * mean(g * y)) per row (derivation in kernels/rmsnorm.py)."""
    return r[:, None] * (g - y * (tl.sum(g * y, axis=1) / C)[:, None])


@triton.jit
def _dot(a, b):
    return tl.dot(a, b, input_precision="ieee")  # exact float32, not TF32


@triton.jit
def _row_softmax(s):
    """softmax along each row; -inf entries get probability 0."""
    p = tl.exp(s - tl.max(s, axis=1)[:, None])
    return p / tl.sum(p, axis=1)[:, None]


@triton.jit
def _head_probabilities(q, k, head, causal, scale):
    """P = softmax(q_h k_h^T * scale) with future keys masked, for the head whose channels
    `head` marks with 1: zeroing q's other channels makes q k^T the head's own scores."""
    s = tl.where(causal, _dot(q * head, tl.trans(k)) * scale, float("-inf"))  # (T, T)
    return _row_softmax(s)


@triton.jit
def _load_tile(ptr, offset, ROWS: tl.constexpr, COLS: tl.constexpr, PADDED_ROWS: tl.constexpr):
    """A (PADDED_ROWS, COLS) tile of the row-major (ROWS, COLS) matrix at ptr + offset; rows past ROWS are zero."""
    rows = tl.arange(0, PADDED_ROWS)
    cols = tl.arange(0, COLS)
    return tl.load(ptr + offset + rows[:, None] * COLS + cols[None, :], mask=rows[:, None] < ROWS, other=0.0)


@triton.jit
def _store_tile(ptr, offset, tile, ROWS: tl.constexpr, COLS: tl.constexpr, PADDED_ROWS: tl.constexpr):
    """Store the first ROWS rows of a (PADDED_ROWS, COLS) tile into the (ROWS, COLS) matrix at ptr + offset."""
    rows = tl.arange(0, PADDED_ROWS)
    cols = tl.arange(0, COLS)
    tl.store(ptr + offset + rows[:, None] * COLS + cols[None, :], tile, mask=rows[:, None] < ROWS)


# Triton compiles a separate variant for integer arguments equal to 1 or divisible by 16;
# the step range must not pick the variant, or the first real launch would compile again.
@triton.jit(do_not_specialize=["first_step", "num_steps"])
def train_kernel(
    p_ptr,  # (N,) flat parameters in SPEC.md's order, updated in place
    g_ptr,  # (N,) flat gradients (scratch: written each step, read by the Adam sweep)
    m_ptr,  # (N,) Adam first moments, updated in place
    v_ptr,  # (N,) Adam second moments, updated in place
    documents_ptr,  # (steps, T + 2) int32: per step [n, tokens[0..T]] (tokens padded with 0)
    scalars_ptr,  # (steps, 3) per step [lr_t, 1 - beta1^(t+1), 1 - beta2^(t+1)]
    losses_ptr,  # (steps,) output: each step's loss
    first_step, num_steps,  # run steps first_step .. first_step + num_steps - 1
    beta1, beta2, eps_adam,
    N: tl.constexpr, V: tl.constexpr, V_PAD: tl.constexpr, T: tl.constexpr, C: tl.constexpr,
    H: tl.constexpr, D: tl.constexpr, EPS: tl.constexpr, BLOCK_ADAM: tl.constexpr,
    # where each matrix starts in the flat buffers (shared/weights.py's param_offsets)
    WTE: tl.constexpr, WPE: tl.constexpr, LM_HEAD: tl.constexpr, WQ: tl.constexpr, WK: tl.constexpr,
    WV: tl.constexpr, WO: tl.constexpr, FC1: tl.constexpr, FC2: tl.constexpr,
):
    rows = tl.arange(0, T)
    cols = tl.arange(0, C)
    vcols = tl.arange(0, V_PAD)
    causal = rows[None, :] <= rows[:, None]  # (T, T): key j is visible from query i
    scale = 1.0 / tl.sqrt(tl.full([1], D, tl.float32))

    for step in range(first_step, first_step + num_steps):
        document = documents_ptr + step * (T + 2)
        n = tl.load(document)
        live = rows < n  # real rows; the rest are padding and get no loss and no gradient
        tok = tl.load(document + 1 + rows)
        target = tl.load(document + 2 + rows)

        # ---------------------------------------------------------------- forward
        x = tl.load(p_ptr + WTE + tok[:, None] * C + cols[None, :]) + _load_tile(p_ptr, WPE, ROWS=T, COLS=C,
                                                                                 PADDED_ROWS=T)
        x0, r0 = _rmsnorm(x, C, EPS)
        h1, r1 = _rmsnorm(x0, C, EPS)
        wq = _load_tile(p_ptr, WQ, ROWS=C, COLS=C, PADDED_ROWS=C)
        wk = _load_tile(p_ptr, WK, ROWS=C, COLS=C, PADDED_ROWS=C)
        wv = _load_tile(p_ptr, WV, ROWS=C, COLS=C, PADDED_ROWS=C)
        q = _dot(h1, tl.trans(wq))  # (T, C)
        k = _dot(h1, tl.trans(wk))
        v = _dot(h1, tl.trans(wv))
        y = tl.zeros((T, C), tl.float32)
        for h in tl.static_range(H):
            head = ((cols // D) == h).to(tl.float32)[None, :]  # 1 on head h's channels
            y += _dot(_head_probabilities(q, k, head, causal, scale), v * head)  # lands in head h's channels
        wo = _load_tile(p_ptr, WO, ROWS=C, COLS=C, PADDED_ROWS=C)
        x1 = x0 + _dot(y, tl.trans(wo))
        h2, r2 = _rmsnorm(x1, C, EPS)
        fc1 = _load_tile(p_ptr, FC1, ROWS=4 * C, COLS=C, PADDED_ROWS=4 * C)
        fc2 = _load_tile(p_ptr, FC2, ROWS=C, COLS=4 * C, PADDED_ROWS=C)
        a = tl.maximum(_dot(h2, tl.trans(fc1)), 0.0)  # (T, 4C)
        x2 = x1 + _dot(a, tl.trans(fc2))
        lm_head = _load_tile(p_ptr, LM_HEAD, ROWS=V, COLS=C, PADDED_ROWS=V_PAD)
        logits = tl.where(vcols[None, :] < V, _dot(x2, tl.trans(lm_head)), float("-inf"))  # (T, V_PAD)

        # Cross-entropy over the n real rows: loss_t = logsumexp(z_t) - z_t[target_t].
        z_max = tl.max(logits, axis=1)
        e = tl.exp(logits - z_max[:, None])
        sum_e = tl.sum(e, axis=1)
        is_target = vcols[None, :] == target[:, None]
        z_target = tl.sum(tl.where(is_target, logits, 0.0), axis=1)
        n_real = n.to(tl.float32)
        loss = tl.sum(tl.where(live, tl.log(sum_e) + z_max - z_target, 0.0), axis=0) / n_real
        tl.store(losses_ptr + step, loss)

        # ---------------------------------------------------------------- backward
        # dL/dlogits = (softmax - onehot(target)) / n on real rows, 0 elsewhere
        d_logits = tl.where(live[:, None], (e / sum_e[:, None] - is_target.to(tl.float32)) / n_real, 0.0)
        # logits = x2 lm_head^T:  d lm_head = d_logits^T x2,  d x2 = d_logits lm_head
        _store_tile(g_ptr, LM_HEAD, _dot(tl.trans(d_logits), x2), ROWS=V, COLS=C, PADDED_ROWS=V_PAD)
        d_x2 = _dot(d_logits, lm_head)  # (T, C)
        # x2 = x1 + a W2^T:  d W2 = d_x2^T a,  d a = d_x2 W2,  and d_x2 flows on to x1
        _store_tile(g_ptr, FC2, _dot(tl.trans(d_x2), a), ROWS=C, COLS=4 * C, PADDED_ROWS=C)
        d_a = tl.where(a > 0, _dot(d_x2, fc2), 0.0)  # a = relu(.): gradient only where a > 0
        # a = relu(h2 W1^T):  d W1 = d_a^T h2,  d h2 = d_a W1
        _store_tile(g_ptr, FC1, _dot(tl.trans(d_a), h2), ROWS=4 * C, COLS=C, PADDED_ROWS=4 * C)
        d_x1 = d_x2 + _rmsnorm_backward(h2, r2, _dot(d_a, fc1), C)
        # x1 = x0 + y Wo^T:  d Wo = d_x1^T y,  d y = d_x1 Wo
        _store_tile(g_ptr, WO, _dot(tl.trans(d_x1), y), ROWS=C, COLS=C, PADDED_ROWS=C)
        d_y = _dot(d_x1, wo)
        # Attention, per head (P recomputed from q, k): with g = d_y on head h's channels,
        #   dv_h = P^T g,  dP = g v_h^T,  dS = P (dP - rowsum(dP P)) / sqrt(D),
        #   dq_h = dS k_h,  dk_h = dS^T q_h
        d_q = tl.zeros((T, C), tl.float32)
        d_k = tl.zeros((T, C), tl.float32)
        d_v = tl.zeros((T, C), tl.float32)
        for h in tl.static_range(H):
            head = ((cols // D) == h).to(tl.float32)[None, :]
            prob = _head_probabilities(q, k, head, causal, scale)
            d_prob = _dot(d_y * head, tl.trans(v))  # (T, T)
            d_s = prob * (d_prob - tl.sum(d_prob * prob, axis=1)[:, None]) * scale
            d_v += _dot(tl.trans(prob), d_y * head)
            d_q += _dot(d_s, k * head)
            d_k += _dot(tl.trans(d_s), q * head)
        # q = h1 Wq^T (and k, v alike):  d Wq = d_q^T h1,  d h1 = d_q Wq + d_k Wk + d_v Wv
        _store_tile(g_ptr, WQ, _dot(tl.trans(d_q), h1), ROWS=C, COLS=C, PADDED_ROWS=C)
        _store_tile(g_ptr, WK, _dot(tl.trans(d_k), h1), ROWS=C, COLS=C, PADDED_ROWS=C)
        _store_tile(g_ptr, WV, _dot(tl.trans(d_v), h1), ROWS=C, COLS=C, PADDED_ROWS=C)
        d_h1 = _dot(d_q, wq) + _dot(d_k, wk) + _dot(d_v, wv)
        d_x0 = d_x1 + _rmsnorm_backward(h1, r1, d_h1, C)
        d_x = _rmsnorm_backward(x0, r0, d_x0, C)
        # x = wte[tok] + wpe:  d wte = onehot(tok)^T d_x (a scatter-add as one matmul,
        # deterministic), d wpe = d_x (rows past n are already zero)
        onehot = ((tok[:, None] == vcols[None, :]) & live[:, None]).to(tl.float32)  # (T, V_PAD)
        _store_tile(g_ptr, WTE, _dot(tl.trans(onehot), d_x), ROWS=V, COLS=C, PADDED_ROWS=V_PAD)
        _store_tile(g_ptr, WPE, d_x, ROWS=T, COLS=C, PADDED_ROWS=T)

        # ---------------------------------------------------------------- Adam
        tl.debug_barrier()  # every thread's gradient stores are visible before the sweep
        lr_t = tl.load(scalars_ptr + step * 3)
        bias1 = tl.load(scalars_ptr + step * 3 + 1)
        bias2 = tl.load(scalars_ptr + step * 3 + 2)
        for start in tl.static_range(0, N, BLOCK_ADAM):
            offsets = start + tl.arange(0, BLOCK_ADAM)
            adam_update(p_ptr, g_ptr, m_ptr, v_ptr, offsets, offsets < N, lr_t, bias1, bias2, beta1, beta2, eps_adam)
        tl.debug_barrier()  # the next step reads the updated weights


class FusedTrainer:
    """Training with `train_kernel`: all documents padded into one device buffer up front,
    then either one launch per step or one launch for a whole run."""

    def __init__(self, params: torch.Tensor, config: GPTConfig, num_steps: int):
        if config.n_layer != 1:
            raise ValueError("the fused kernel implements SPEC.md's one-layer model; use the per-op kernels")
        C, T = config.n_embd, config.block_size
        if C < 16 or C & (C - 1) or T < 16 or T & (T - 1):
            raise ValueError("the fused kernel needs n_embd and block_size to be powers of two >= 16")
        self.config, self.num_steps = config, num_steps
        self.params = params
        self.grads, self.m, self.v = (torch.zeros_like(params) for _ in range(3))
        steps = torch.arange(num_steps, dtype=torch.float64)
        beta1, beta2 = per_op.BETA1, per_op.BETA2
        self.scalars = torch.stack([per_op.LEARNING_RATE * (1 - steps / num_steps), 1 - beta1 ** (steps + 1),
                                    1 - beta2 ** (steps + 1)], dim=1).to(params.dtype).to(params.device)
        self.losses = torch.zeros(num_steps, dtype=params.dtype, device=params.device)
        self.documents = None

    def load_documents(self, documents: list[list[int]]):
        """Pre-tokenized documents, one per step, each padded to one row (shared/tokenizer.py)."""
        rows = [padded_document(tokens, self.config.block_size) for tokens in documents]
        self.documents = torch.tensor(rows, dtype=torch.int32).to(self.params.device)

    def launch(self, first_step: int, num_steps: int):
        c = self.config
        offsets = {name.split(".")[-1]: start for name, (start, _, _) in param_offsets(c).items()}
        train_kernel[(1,)](
            self.params, self.grads, self.m, self.v, self.documents, self.scalars, self.losses,
            first_step, num_steps, per_op.BETA1, per_op.BETA2, per_op.EPS_ADAM,
            N=self.params.numel(), V=c.vocab_size, V_PAD=max(16, triton.next_power_of_2(c.vocab_size)),
            T=c.block_size, C=c.n_embd, H=c.n_head, D=c.n_embd // c.n_head, EPS=EPS, BLOCK_ADAM=BLOCK_ADAM,
            WTE=offsets["wte"], WPE=offsets["wpe"], LM_HEAD=offsets["lm_head"], WQ=offsets["attn_wq"],
            WK=offsets["attn_wk"], WV=offsets["attn_wv"], WO=offsets["attn_wo"], FC1=offsets["mlp_fc1"],
            FC2=offsets["mlp_fc2"], num_warps=4,
        )


# ----------------------------------------------------------------------------------------
# Command line: the same flags, log line and results file as every main.py
# ----------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = cli.build_parser(__doc__.splitlines()[0], per_op.HERE)
    parser.add_argument("--launch", choices=["step", "run"], default="step",
                        help="one launch per step (each waits for its loss), or the whole run in one launch")
    args = cli.parse_args(parser, argv)
    if args.batch_size != 1:
        parser.error(per_op.BATCH_REFUSAL)
    if args.n_layer != 1:
        parser.error("the one-kernel step implements SPEC.md's one-layer model; use 4_triton/main.py "
                     "for --n-layer > 1")
    for flag in ("n_embd", "block_size"):
        value = getattr(args, flag)
        if value < 16 or value & (value - 1):
            parser.error(f"the one-kernel step needs --{flag.replace('_', '-')} to be a power of two >= 16, "
                         f"got {value}; use 4_triton/main.py for other sizes")
    return args


def train(args) -> dict:
    docs = dataset.load_docs(dataset.resolve_data_path(args.data))
    tokenizer = Tokenizer.from_docs(docs)
    config = GPTConfig(tokenizer.vocab_size, args.n_layer, args.n_embd, args.n_head, args.block_size)
    docs, state, rng = init_run(docs, config, args.seed)
    device = torch.device("cpu" if per_op.INTERPRET else "cuda")
    model = per_op.GPT(config, state, torch.float32, device)  # for its flat parameters, and for sampling
    t0 = time.perf_counter()
    trainer = FusedTrainer(model.params.flat.data, config, args.steps)
    documents = [tokenizer.encode_doc(docs[i % len(docs)]) for i in range(args.steps)]
    trainer.load_documents(documents)
    trainer.launch(0, 0)  # compiles the kernel (zero steps), so no timed step includes the compile
    setup_s = time.perf_counter() - t0
    mode = "one launch per step" if args.launch == "step" else "the whole run in one launch"
    print(f"{per_op.STAGE}: {len(docs)} docs, vocab {config.vocab_size}, {trainer.params.numel()} parameters, "
          f"{args.steps} steps, float32 on {per_op.device_name()}, the fused one-kernel step, {mode}", flush=True)
    if per_op.INTERPRET:
        print("no CUDA GPU: the kernel runs in Triton's CPU interpreter (NumPy emulation) -- "
              "right numbers, interpreter speed; the timings below measure the interpreter", flush=True)

    env = results.environment(per_op.device_name(), interpreter=per_op.INTERPRET, cuda_graph=False,
                              fused=args.launch, setup_s=setup_s, threads=torch.get_num_threads())
    if args.launch == "run":
        env["timing"] = "the whole run is one launch: each step_ms is the run's time divided by its steps"
    run = results.TrainingRun(
        per_op.STAGE, {**config.to_dict(), "steps": args.steps, "batch_size": 1, "seed": args.seed,
                       "dtype": "float32"},
        trainer.params.numel(), args.out, env, show_eta=per_op.INTERPRET and args.launch == "step",
    )
    doc_len = [min(config.block_size, len(tokens) - 1) for tokens in documents]
    with run:
        if args.launch == "run":
            print(f"one launch for all {args.steps} steps: the log follows when it returns", flush=True)
            t0 = time.perf_counter()
            trainer.launch(0, args.steps)
            losses = trainer.losses.tolist()  # waits for the launch to finish
            run.record_launch(losses, time.perf_counter() - t0, doc_len=doc_len)
        else:
            for step in range(args.steps):
                t0 = time.perf_counter()
                trainer.launch(step, 1)
                loss = trainer.losses[step].item()
                run.record(loss, time.perf_counter() - t0, doc_len=doc_len[step])

    samples = [per_op.sample(model, tokenizer, rng, args.temperature) for _ in range(args.samples)]
    for i, name in enumerate(samples, start=1):
        print(f"sample {i:2d}: {name}")
    return run.finish(samples)


def main(argv=None):
    train(parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli.run(main))
