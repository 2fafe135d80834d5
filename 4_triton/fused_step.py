"""Stage 4, one kernel: the whole training step -- forward, backward, Adam -- as one Triton kernel.

The per-op kernels of main.py teach what each op does on a GPU; this file is the other end
of the road. microgpt's weights, gradients and Adam moments are 4,192 x 4 floats (about 67
KB in float32): they fit in one GPU block's registers and cache. So one program can run an
entire training step with every activation in registers -- no intermediate ever goes to
memory, no second kernel is launched -- and a loop inside the same kernel runs all 1000
steps of a run in a single launch. What the per-op version spends on 29 launches (or one
graph replay) is gone.

Layout of one step, for SPEC.md's one-layer model (T = block_size rows per document, padded):
    forward   x = wte[tok] + wpe;  x0 = rmsnorm(x);  h1 = rmsnorm(x0);  q, k, v = h1 W^T
              per head: P = softmax(q_h k_h^T / sqrt(D) + causal mask);  y = sum_h P v_h
              x1 = x0 + y Wo^T;  h2 = rmsnorm(x1);  a = relu(h2 W1^T);  x2 = x1 + a W2^T
              logits = x2 lm_head^T;  loss = mean over real rows of the cross-entropy
    backward  the same chain in reverse, each derivative written above its line
    update    gradients to a flat buffer, a block-wide barrier, one Adam sweep, a barrier

Heads without reshapes: head h's scores are q k^T with every channel outside head h zeroed,
so each head is two tl.dot calls on full (T, C) tiles -- every tile dimension >= 16, as
tensor cores want, where head_dim = 4 alone would be too small.

Batches: a program takes its documents DOCS at a time, as one tile of DOCS * T rows (the
causal mask also keeps documents apart), and sums their weight gradients. One program can
still run the whole run in one launch. With many programs (a GPU has 132 SMs), each writes
its partial gradient to its own row of a buffer, and a second kernel adds the rows in a
fixed order and runs Adam: the same bits on every run, which float atomics would not give.

Run:  python 4_triton/fused_step.py                       (one launch per step)
      python 4_triton/fused_step.py --launch run          (the whole run in one launch)
      python 4_triton/fused_step.py --batch-size 4096     (many programs, two launches per step)
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


@triton.jit
def _store_partial(ptr, offset, grad, first, ROWS: tl.constexpr, COLS: tl.constexpr, PADDED_ROWS: tl.constexpr):
    """A weight's gradient from one tile of documents, into the flat buffer at ptr: stored by a
    program's first tile, added to what is there by the next ones."""
    if not first:
        grad += _load_tile(ptr, offset, ROWS=ROWS, COLS=COLS, PADDED_ROWS=PADDED_ROWS)
    _store_tile(ptr, offset, grad, ROWS=ROWS, COLS=COLS, PADDED_ROWS=PADDED_ROWS)


# Triton compiles a separate variant for integer arguments equal to 1 or divisible by 16;
# the step range must not pick the variant, or the first real launch would compile again.
@triton.jit(do_not_specialize=["first_step", "num_steps"])
def train_kernel(
    p_ptr,  # (N,) flat parameters in SPEC.md's order, updated in place (if ADAM)
    g_ptr,  # (programs, N) flat gradients, one row per program: the program's documents' sum
    m_ptr,  # (N,) Adam first moments, updated in place (if ADAM)
    v_ptr,  # (N,) Adam second moments, updated in place (if ADAM)
    documents_ptr,  # (num_docs, T + 2) int32: every document of the shuffled list, [n, tokens[0..T]]
    counts_ptr,  # (steps,) int32: real target positions in each step's batch
    scalars_ptr,  # (steps, 3) per step [lr_t, 1 - beta1^(t+1), 1 - beta2^(t+1)]
    losses_ptr,  # output. One program: (steps,), each step's loss at its step (the whole buffer,
    #              never a slice: a slice's alignment would pick another compiled variant). Several
    #              programs: (programs,), each program's share of the step's loss
    first_step, num_steps,  # run steps first_step .. first_step + num_steps - 1
    num_docs, batch_size,  # step s trains documents (s * batch_size + j) mod num_docs
    beta1, beta2, eps_adam,
    N: tl.constexpr, V: tl.constexpr, V_PAD: tl.constexpr, T: tl.constexpr, C: tl.constexpr,
    H: tl.constexpr, D: tl.constexpr, EPS: tl.constexpr, BLOCK_ADAM: tl.constexpr,
    DOCS: tl.constexpr,  # documents per tile: their DOCS * T rows go through the model together
    ADAM: tl.constexpr,  # one program: it finishes the step itself with an Adam sweep
    # where each matrix starts in the flat buffers (shared/weights.py's param_offsets)
    WTE: tl.constexpr, WPE: tl.constexpr, LM_HEAD: tl.constexpr, WQ: tl.constexpr, WK: tl.constexpr,
    WV: tl.constexpr, WO: tl.constexpr, FC1: tl.constexpr, FC2: tl.constexpr,
):
    R: tl.constexpr = DOCS * T  # rows of a tile
    pid, programs = tl.program_id(0), tl.num_programs(0)
    g_ptr += pid * N  # this program's row of partial gradients
    rows = tl.arange(0, R)
    pos = rows % T  # a row's position in its document
    cols = tl.arange(0, C)
    vcols = tl.arange(0, V_PAD)
    # key j is visible from query i: same document, and not later
    causal = (rows[None, :] // T == rows[:, None] // T) & (pos[None, :] <= pos[:, None])  # (R, R)
    DTYPE = p_ptr.dtype.element_ty  # float32 on a GPU; float64 too in the interpreter, for exact checks
    scale = 1.0 / tl.sqrt(tl.full([1], D, DTYPE))

    for step in range(first_step, first_step + num_steps):
        count = tl.load(counts_ptr + step).to(DTYPE)
        wq = _load_tile(p_ptr, WQ, ROWS=C, COLS=C, PADDED_ROWS=C)
        wk = _load_tile(p_ptr, WK, ROWS=C, COLS=C, PADDED_ROWS=C)
        wv = _load_tile(p_ptr, WV, ROWS=C, COLS=C, PADDED_ROWS=C)
        wo = _load_tile(p_ptr, WO, ROWS=C, COLS=C, PADDED_ROWS=C)
        fc1 = _load_tile(p_ptr, FC1, ROWS=4 * C, COLS=C, PADDED_ROWS=4 * C)
        fc2 = _load_tile(p_ptr, FC2, ROWS=C, COLS=4 * C, PADDED_ROWS=C)
        lm_head = _load_tile(p_ptr, LM_HEAD, ROWS=V, COLS=C, PADDED_ROWS=V_PAD)
        row_losses = tl.zeros((R,), DTYPE)
        # This program's tiles of the step's batch: tile i holds documents i*DOCS .. i*DOCS+DOCS-1.
        for tile in range(pid, tl.cdiv(batch_size, DOCS), programs):
            in_batch = tile * DOCS + rows // T  # the row's document, counted within the step
            document = documents_ptr + ((step * batch_size + in_batch) % num_docs) * (T + 2)
            n = tl.load(document, mask=in_batch < batch_size, other=0)
            live = pos < n  # real rows; the rest are padding (or past the batch) and get no gradient
            tok = tl.load(document + 1 + pos)
            target = tl.load(document + 2 + pos)

            # ------------------------------------------------------------ forward
            x = tl.load(p_ptr + WTE + tok[:, None] * C + cols[None, :]) + tl.load(
                p_ptr + WPE + pos[:, None] * C + cols[None, :])
            x0, r0 = _rmsnorm(x, C, EPS)
            h1, r1 = _rmsnorm(x0, C, EPS)
            q = _dot(h1, tl.trans(wq))  # (R, C)
            k = _dot(h1, tl.trans(wk))
            v = _dot(h1, tl.trans(wv))
            y = tl.zeros((R, C), DTYPE)
            for h in tl.static_range(H):
                head = ((cols // D) == h).to(DTYPE)[None, :]  # 1 on head h's channels
                y += _dot(_head_probabilities(q, k, head, causal, scale), v * head)  # lands in head h's channels
            x1 = x0 + _dot(y, tl.trans(wo))
            h2, r2 = _rmsnorm(x1, C, EPS)
            a = tl.maximum(_dot(h2, tl.trans(fc1)), 0.0)  # (R, 4C)
            x2 = x1 + _dot(a, tl.trans(fc2))
            logits = tl.where(vcols[None, :] < V, _dot(x2, tl.trans(lm_head)), float("-inf"))  # (R, V_PAD)

            # Cross-entropy over the real rows: loss_t = logsumexp(z_t) - z_t[target_t].
            z_max = tl.max(logits, axis=1)
            e = tl.exp(logits - z_max[:, None])
            sum_e = tl.sum(e, axis=1)
            is_target = vcols[None, :] == target[:, None]
            z_target = tl.sum(tl.where(is_target, logits, 0.0), axis=1)
            row_losses += tl.where(live, tl.log(sum_e) + z_max - z_target, 0.0)

            # ------------------------------------------------------------ backward
            # The loss is the mean over the step's `count` real positions, so
            # dL/dlogits = (softmax - onehot(target)) / count on real rows, 0 elsewhere.
            # Each weight's gradient is this tile's sum over its rows, added to the program's row
            # of g_ptr (stored by the first tile, so nothing needs zeroing).
            first = tile == pid
            d_logits = tl.where(live[:, None], (e / sum_e[:, None] - is_target.to(DTYPE)) / count, 0.0)
            # logits = x2 lm_head^T:  d lm_head = d_logits^T x2,  d x2 = d_logits lm_head
            _store_partial(g_ptr, LM_HEAD, _dot(tl.trans(d_logits), x2), first, ROWS=V, COLS=C, PADDED_ROWS=V_PAD)
            d_x2 = _dot(d_logits, lm_head)  # (R, C)
            # x2 = x1 + a W2^T:  d W2 = d_x2^T a,  d a = d_x2 W2,  and d_x2 flows on to x1
            _store_partial(g_ptr, FC2, _dot(tl.trans(d_x2), a), first, ROWS=C, COLS=4 * C, PADDED_ROWS=C)
            d_a = tl.where(a > 0, _dot(d_x2, fc2), 0.0)  # a = relu(.): gradient only where a > 0
            # a = relu(h2 W1^T):  d W1 = d_a^T h2,  d h2 = d_a W1
            _store_partial(g_ptr, FC1, _dot(tl.trans(d_a), h2), first, ROWS=4 * C, COLS=C, PADDED_ROWS=4 * C)
            d_x1 = d_x2 + _rmsnorm_backward(h2, r2, _dot(d_a, fc1), C)
            # x1 = x0 + y Wo^T:  d Wo = d_x1^T y,  d y = d_x1 Wo
            _store_partial(g_ptr, WO, _dot(tl.trans(d_x1), y), first, ROWS=C, COLS=C, PADDED_ROWS=C)
            d_y = _dot(d_x1, wo)
            # Attention, per head (P recomputed from q, k): with g = d_y on head h's channels,
            #   dv_h = P^T g,  dP = g v_h^T,  dS = P (dP - rowsum(dP P)) / sqrt(D),
            #   dq_h = dS k_h,  dk_h = dS^T q_h
            d_q = tl.zeros((R, C), DTYPE)
            d_k = tl.zeros((R, C), DTYPE)
            d_v = tl.zeros((R, C), DTYPE)
            for h in tl.static_range(H):
                head = ((cols // D) == h).to(DTYPE)[None, :]
                prob = _head_probabilities(q, k, head, causal, scale)
                d_prob = _dot(d_y * head, tl.trans(v))  # (R, R)
                d_s = prob * (d_prob - tl.sum(d_prob * prob, axis=1)[:, None]) * scale
                d_v += _dot(tl.trans(prob), d_y * head)
                d_q += _dot(d_s, k * head)
                d_k += _dot(tl.trans(d_s), q * head)
            # q = h1 Wq^T (and k, v alike):  d Wq = d_q^T h1,  d h1 = d_q Wq + d_k Wk + d_v Wv
            _store_partial(g_ptr, WQ, _dot(tl.trans(d_q), h1), first, ROWS=C, COLS=C, PADDED_ROWS=C)
            _store_partial(g_ptr, WK, _dot(tl.trans(d_k), h1), first, ROWS=C, COLS=C, PADDED_ROWS=C)
            _store_partial(g_ptr, WV, _dot(tl.trans(d_v), h1), first, ROWS=C, COLS=C, PADDED_ROWS=C)
            d_h1 = _dot(d_q, wq) + _dot(d_k, wk) + _dot(d_v, wv)
            d_x0 = d_x1 + _rmsnorm_backward(h1, r1, d_h1, C)
            d_x = _rmsnorm_backward(x0, r0, d_x0, C)  # (R, C); rows past n are already zero
            # x = wte[tok] + wpe[pos]: both are scatter-adds, written as matmuls with one-hot
            # matrices (deterministic, no atomics): d wte = onehot(tok)^T d_x, d wpe = onehot(pos)^T d_x
            onehot = ((tok[:, None] == vcols[None, :]) & live[:, None]).to(DTYPE)  # (R, V_PAD)
            _store_partial(g_ptr, WTE, _dot(tl.trans(onehot), d_x), first, ROWS=V, COLS=C, PADDED_ROWS=V_PAD)
            at_pos = (pos[:, None] == tl.arange(0, T)[None, :]).to(DTYPE)  # (R, T)
            _store_partial(g_ptr, WPE, _dot(tl.trans(at_pos), d_x), first, ROWS=T, COLS=C, PADDED_ROWS=T)
            tl.debug_barrier()  # this tile's partial sums are in place before the next tile adds to them
        if ADAM:
            tl.store(losses_ptr + step, tl.sum(row_losses, axis=0) / count)
        else:
            tl.store(losses_ptr + pid, tl.sum(row_losses, axis=0) / count)

        if ADAM:  # one program has the whole step's gradient: it updates the weights itself
            tl.debug_barrier()  # every thread's gradient stores are visible before the sweep
            lr_t = tl.load(scalars_ptr + step * 3)
            bias1 = tl.load(scalars_ptr + step * 3 + 1)
            bias2 = tl.load(scalars_ptr + step * 3 + 2)
            for start in tl.static_range(0, N, BLOCK_ADAM):
                offsets = start + tl.arange(0, BLOCK_ADAM)
                adam_update(p_ptr, g_ptr, m_ptr, v_ptr, offsets, offsets < N, lr_t, bias1, bias2, beta1, beta2,
                            eps_adam)
            tl.debug_barrier()  # the next step reads the updated weights


# With several programs, each has summed the gradient of its own documents; no program can
# wait for the others (there is no barrier across a grid), so a second launch adds the
# programs' rows in a fixed order -- the same bits on every run, which float atomics would
# not give -- and runs the Adam sweep on the sum.
@triton.jit(do_not_specialize=["step"])
def reduce_adam_kernel(
    p_ptr, g_ptr, m_ptr, v_ptr,  # as in train_kernel; g_ptr's row 0 receives the sum
    scalars_ptr,  # (steps, 3) per step [lr_t, 1 - beta1^(t+1), 1 - beta2^(t+1)]
    loss_parts_ptr,  # (programs,) each program's share of the step's loss
    losses_ptr,  # (steps,) output: each step's loss
    step, programs, beta1, beta2, eps_adam,
    N: tl.constexpr, BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < N
    total = tl.load(g_ptr + offsets, mask=mask)
    loss = tl.load(loss_parts_ptr)
    for i in range(1, programs):  # in order: the same sum on every run
        total += tl.load(g_ptr + i * N + offsets, mask=mask)
        loss += tl.load(loss_parts_ptr + i)
    tl.store(g_ptr + offsets, total, mask=mask)
    adam_update(p_ptr, g_ptr, m_ptr, v_ptr, offsets, mask, tl.load(scalars_ptr + step * 3),
                tl.load(scalars_ptr + step * 3 + 1), tl.load(scalars_ptr + step * 3 + 2), beta1, beta2, eps_adam)
    if tl.program_id(0) == 0:
        tl.store(losses_ptr + step, loss)


def step_counts(lengths: list[int], num_steps: int, batch_size: int) -> list[int]:
    """Real target positions of each step's batch, documents (s * B + j) mod len(lengths)."""
    total, prefix = sum(lengths), [0]
    for n in lengths:
        prefix.append(prefix[-1] + n)

    def first(k):  # the positions of the first k documents of the endlessly repeated list
        laps, rest = divmod(k, len(lengths))
        return laps * total + prefix[rest]

    return [first((s + 1) * batch_size) - first(s * batch_size) for s in range(num_steps)]


class FusedTrainer:
    """Training with `train_kernel`: every document padded into one device buffer up front.

    One program: one launch per step, or one launch for a whole run, Adam inside the kernel.
    Several programs (batches): each trains its share of the step's documents, then
    `reduce_adam_kernel` sums their gradients and updates the weights -- two launches a step.
    """

    def __init__(self, params: torch.Tensor, config: GPTConfig, num_steps: int, batch_size: int = 1,
                 programs: int = 1, docs_per_tile: int = 1, num_warps: int = 4):
        if config.n_layer != 1:
            raise ValueError("the fused kernel implements SPEC.md's one-layer model; use the per-op kernels")
        C, T = config.n_embd, config.block_size
        if C < 16 or C & (C - 1) or T < 16 or T & (T - 1):
            raise ValueError("the fused kernel needs n_embd and block_size to be powers of two >= 16")
        self.config, self.num_steps, self.batch_size = config, num_steps, batch_size
        self.programs = max(1, min(programs, triton.cdiv(batch_size, docs_per_tile)))
        self.docs_per_tile, self.num_warps = docs_per_tile, num_warps
        self.params = params
        self.m, self.v = torch.zeros_like(params), torch.zeros_like(params)
        self.partials = torch.zeros((self.programs, params.numel()), dtype=params.dtype, device=params.device)
        self.grads = self.partials[0]  # after a step: the whole batch's gradient
        steps = torch.arange(num_steps, dtype=torch.float64)
        beta1, beta2 = per_op.BETA1, per_op.BETA2
        self.scalars = torch.stack([per_op.LEARNING_RATE * (1 - steps / num_steps), 1 - beta1 ** (steps + 1),
                                    1 - beta2 ** (steps + 1)], dim=1).to(params.dtype).to(params.device)
        self.losses = torch.zeros(num_steps, dtype=params.dtype, device=params.device)
        self.loss_parts = torch.zeros(self.programs, dtype=params.dtype, device=params.device)
        self.documents = self.counts = None

    def load_documents(self, documents: list[list[int]]):
        """The tokenized documents in training order, each padded to one row (shared/tokenizer.py);
        step s trains documents (s * B + j) mod len(documents), as SPEC.md says."""
        rows = [padded_document(tokens, self.config.block_size) for tokens in documents]
        self.documents = torch.tensor(rows, dtype=torch.int32).to(self.params.device)
        counts = step_counts([row[0] for row in rows], self.num_steps, self.batch_size)
        self.counts = torch.tensor(counts, dtype=torch.int32).to(self.params.device)

    def launch(self, first_step: int, num_steps: int):
        """Steps first_step .. first_step + num_steps - 1: one launch with one program (several
        steps allowed), or two launches per step with several."""
        if self.programs == 1:
            self._train(first_step, num_steps, self.losses, adam=True)
            return
        for step in range(first_step, first_step + num_steps):
            self._train(step, 1, self.loss_parts, adam=False)
            reduce_adam_kernel[(triton.cdiv(self.params.numel(), BLOCK_ADAM),)](
                self.params, self.partials, self.m, self.v, self.scalars, self.loss_parts, self.losses, step,
                self.programs, per_op.BETA1, per_op.BETA2, per_op.EPS_ADAM, N=self.params.numel(), BLOCK=BLOCK_ADAM)

    def _train(self, first_step: int, num_steps: int, losses: torch.Tensor, adam: bool):
        c = self.config
        offsets = {name.split(".")[-1]: start for name, (start, _, _) in param_offsets(c).items()}
        train_kernel[(self.programs,)](
            self.params, self.partials, self.m, self.v, self.documents, self.counts, self.scalars, losses,
            first_step, num_steps, len(self.documents), self.batch_size, per_op.BETA1, per_op.BETA2,
            per_op.EPS_ADAM,
            N=self.params.numel(), V=c.vocab_size, V_PAD=max(16, triton.next_power_of_2(c.vocab_size)),
            T=c.block_size, C=c.n_embd, H=c.n_head, D=c.n_embd // c.n_head, EPS=EPS, BLOCK_ADAM=BLOCK_ADAM,
            DOCS=self.docs_per_tile, ADAM=adam,
            WTE=offsets["wte"], WPE=offsets["wpe"], LM_HEAD=offsets["lm_head"], WQ=offsets["attn_wq"],
            WK=offsets["attn_wk"], WV=offsets["attn_wv"], WO=offsets["attn_wo"], FC1=offsets["mlp_fc1"],
            FC2=offsets["mlp_fc2"], num_warps=self.num_warps,
        )


# ----------------------------------------------------------------------------------------
# Command line: the same flags, log line and results file as every main.py
# ----------------------------------------------------------------------------------------

PROGRAMS_PER_SM = 4  # enough resident programs to hide each other's latency


def default_programs(batch_size: int) -> int:
    """Programs for a batch: on a GPU, a few per SM; in the interpreter 4, so the reduction runs."""
    per_device = 4 if per_op.INTERPRET else PROGRAMS_PER_SM * torch.cuda.get_device_properties(0).multi_processor_count
    return min(batch_size, per_device)


def parse_args(argv=None):
    parser = cli.build_parser(__doc__.splitlines()[0], per_op.HERE)
    parser.add_argument("--launch", choices=["step", "run"], default="step",
                        help="one launch per step (each waits for its loss), or the whole run in one launch "
                             "(one program: batches then run on one SM)")
    parser.add_argument("--programs", type=int, default=None,
                        help=f"programs sharing a batch (default {PROGRAMS_PER_SM} per SM on a GPU, 4 in the "
                             "interpreter; never more than the batch's tiles)")
    parser.add_argument("--docs-per-tile", type=int, default=1, choices=[1, 2, 4, 8],
                        help="documents a program puts through the model together, as one tile of rows")
    parser.add_argument("--warps", type=int, default=4, choices=[1, 2, 4, 8, 16], help="warps per program")
    args = cli.parse_args(parser, argv)
    if args.programs is not None and args.programs <= 0:
        parser.error("--programs must be positive")
    if args.launch == "run" and (args.programs or 1) != 1:
        parser.error("--launch run is one program (no barrier crosses programs); drop --programs")
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
    programs = 1 if args.launch == "run" else args.programs or default_programs(args.batch_size)
    trainer = FusedTrainer(model.params.flat.data, config, args.steps, args.batch_size, programs,
                           args.docs_per_tile, args.warps)
    trainer.load_documents([tokenizer.encode_doc(doc) for doc in docs])
    trainer.launch(0, 0)  # compiles the kernel (zero steps), so no timed step includes the compile
    if trainer.programs > 1:  # and the reduction kernel, on a scratch copy of the weights
        FusedTrainer(trainer.params.clone(), config, 1, args.batch_size, programs, args.docs_per_tile,
                     args.warps).launch(0, 0)
    setup_s = time.perf_counter() - t0
    mode = ("the whole run in one launch" if args.launch == "run" else "one launch per step" if trainer.programs == 1
            else f"{trainer.programs} programs and a reduction, two launches per step")
    print(f"{per_op.STAGE}: {len(docs)} docs, vocab {config.vocab_size}, {trainer.params.numel()} parameters, "
          f"{args.steps} steps of {args.batch_size} document{'s' if args.batch_size > 1 else ''}, float32 on "
          f"{per_op.device_name()}, the fused one-kernel step, {mode}", flush=True)
    if per_op.INTERPRET:
        print("no CUDA GPU: the kernel runs in Triton's CPU interpreter (NumPy emulation) -- "
              "right numbers, interpreter speed; the timings below measure the interpreter", flush=True)

    env = results.environment(per_op.device_name(), interpreter=per_op.INTERPRET, cuda_graph=False,
                              fused=args.launch, setup_s=setup_s, threads=torch.get_num_threads(),
                              programs=trainer.programs, docs_per_tile=args.docs_per_tile, warps=args.warps)
    if args.launch == "run":
        env["timing"] = "the whole run is one launch: each step_ms is the run's time divided by its steps"
    run = results.TrainingRun(
        per_op.STAGE, {**config.to_dict(), "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
                       "dtype": "float32"},
        trainer.params.numel(), args.out, env, show_eta=per_op.INTERPRET and args.launch == "step",
    )
    doc_len = trainer.counts.tolist()  # real target positions per step
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
