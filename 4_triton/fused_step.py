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
still run the whole run in one launch. With many programs (an H100 has 132 SMs), each writes
its partial gradient to its own row of a buffer, and a second kernel adds the rows in a
fixed order (kernels/partials.py's `ordered_sum`) and runs Adam: the same bits on every run,
which float atomics would not give.

What is not the kernel is main.py's: the initial weights as one flat buffer and each
document as one padded row come from kernels/layout.py, as main.py's do; SPEC.md's Adam
constants and main.py's sampling loop are restated here (tests/test_fused.py holds the two
programs to the same losses, weights and names). Sampling asks this file's trainer for the
logits of the next token (its forward runs the same code as training, `_forward`, one launch
per drawn token).

Run:  python 4_triton/fused_step.py                       (one launch per step)
      python 4_triton/fused_step.py --launch run          (the whole run in one launch)
      python 4_triton/fused_step.py --batch-size 4096     (many programs, two launches per step)
The flags, log line and results file of every main.py, and its own launch settings
(kernels/launch.py: --launch, --programs, --docs-per-tile, --warps); SPEC.md's one-layer
model with power-of-two widths only. Without a CUDA GPU it runs through Triton's interpreter
(there, --dtype float64 too, for exact checks).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for shared/
from shared import program, runner  # noqa: E402, F401  (program first: load-time errors in one line)
from shared.dataset import positions_per_step  # noqa: E402
from shared.tokenizer import Tokenizer  # noqa: E402
from shared.weights import GPTConfig, param_offsets  # noqa: E402

# isort: split
from kernels import backend  # noqa: E402

backend.choose()  # before Triton loads: compiled on a CUDA GPU, else Triton's CPU interpreter
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from kernels import launch  # noqa: E402
from kernels.adam import adam_update  # noqa: E402
from kernels.layout import flat_weights, padded_document  # noqa: E402
from kernels.partials import ordered_sum  # noqa: E402
from kernels.rmsnorm import EPS  # noqa: E402

# Optimizer (SPEC.md, as main.py): Adam with bias correction and a linear learning-rate decay to zero.
LEARNING_RATE = 0.01  # peak learning rate, decayed linearly to 0 over the run
BETA1 = 0.85  # decay of the first-moment (mean gradient) estimate
BETA2 = 0.99  # decay of the second-moment (squared gradient) estimate
EPS_ADAM = 1e-8  # keeps the update finite where the second moment is ~0


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


@triton.jit
def _load_weights(p_ptr, V: tl.constexpr, V_PAD: tl.constexpr, C: tl.constexpr, LM_HEAD: tl.constexpr,
                  WQ: tl.constexpr, WK: tl.constexpr, WV: tl.constexpr, WO: tl.constexpr, FC1: tl.constexpr,
                  FC2: tl.constexpr):
    """Every weight matrix as a tile in registers; lm_head's rows padded to V_PAD with zeros."""
    wq = _load_tile(p_ptr, WQ, ROWS=C, COLS=C, PADDED_ROWS=C)
    wk = _load_tile(p_ptr, WK, ROWS=C, COLS=C, PADDED_ROWS=C)
    wv = _load_tile(p_ptr, WV, ROWS=C, COLS=C, PADDED_ROWS=C)
    wo = _load_tile(p_ptr, WO, ROWS=C, COLS=C, PADDED_ROWS=C)
    fc1 = _load_tile(p_ptr, FC1, ROWS=4 * C, COLS=C, PADDED_ROWS=4 * C)
    fc2 = _load_tile(p_ptr, FC2, ROWS=C, COLS=4 * C, PADDED_ROWS=C)
    lm_head = _load_tile(p_ptr, LM_HEAD, ROWS=V, COLS=C, PADDED_ROWS=V_PAD)
    return wq, wk, wv, wo, fc1, fc2, lm_head


@triton.jit
def _forward(p_ptr, tok, pos, causal, wq, wk, wv, wo, fc1, fc2, lm_head, R: tl.constexpr, V: tl.constexpr,
             V_PAD: tl.constexpr, C: tl.constexpr, H: tl.constexpr, D: tl.constexpr, EPS: tl.constexpr,
             WTE: tl.constexpr, WPE: tl.constexpr):
    """microgpt's forward on a tile of R rows (token ids `tok`, positions `pos`, R x R `causal`
    mask): every activation the backward needs, and the logits (R, V_PAD), -inf past V."""
    DTYPE = p_ptr.dtype.element_ty
    cols = tl.arange(0, C)
    vcols = tl.arange(0, V_PAD)
    scale = 1.0 / tl.sqrt(tl.full([1], D, DTYPE))
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
    return x0, r0, h1, r1, q, k, v, y, x1, h2, r2, a, x2, logits


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
    scale = 1.0 / tl.sqrt(tl.full([1], D, DTYPE))  # (the backward's attention needs it too)

    for step in range(first_step, first_step + num_steps):
        count = tl.load(counts_ptr + step).to(DTYPE)
        wq, wk, wv, wo, fc1, fc2, lm_head = _load_weights(p_ptr, V=V, V_PAD=V_PAD, C=C, LM_HEAD=LM_HEAD, WQ=WQ,
                                                          WK=WK, WV=WV, WO=WO, FC1=FC1, FC2=FC2)
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
            x0, r0, h1, r1, q, k, v, y, x1, h2, r2, a, x2, logits = _forward(
                p_ptr, tok, pos, causal, wq, wk, wv, wo, fc1, fc2, lm_head, R=R, V=V, V_PAD=V_PAD, C=C, H=H,
                D=D, EPS=EPS, WTE=WTE, WPE=WPE)

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
    tl.store(g_ptr + offsets, ordered_sum(g_ptr, offsets, mask, programs, N), mask=mask)  # in order: same bits
    adam_update(p_ptr, g_ptr, m_ptr, v_ptr, offsets, mask, tl.load(scalars_ptr + step * 3),
                tl.load(scalars_ptr + step * 3 + 1), tl.load(scalars_ptr + step * 3 + 2), beta1, beta2, eps_adam)
    if tl.program_id(0) == 0:
        first = tl.arange(0, 1)  # the step's loss: the programs' shares, added in the same fixed order
        tl.store(losses_ptr + step + first, ordered_sum(loss_parts_ptr, first, first < 1, programs, 1))


@triton.jit
def logits_kernel(
    p_ptr,  # (N,) flat parameters in SPEC.md's order
    document_ptr,  # (T + 2,) int32: one document, padded as kernels/layout.py's padded_document lays it out
    logits_ptr,  # output (T, V): the logits at each of the document's T rows
    V: tl.constexpr, V_PAD: tl.constexpr, T: tl.constexpr, C: tl.constexpr, H: tl.constexpr, D: tl.constexpr,
    EPS: tl.constexpr, WTE: tl.constexpr, WPE: tl.constexpr, LM_HEAD: tl.constexpr, WQ: tl.constexpr,
    WK: tl.constexpr, WV: tl.constexpr, WO: tl.constexpr, FC1: tl.constexpr, FC2: tl.constexpr,
):
    """The forward alone, for sampling: train_kernel's `_forward` on one document of T rows."""
    pos = tl.arange(0, T)
    causal = pos[None, :] <= pos[:, None]  # (T, T)
    tok = tl.load(document_ptr + 1 + pos)
    wq, wk, wv, wo, fc1, fc2, lm_head = _load_weights(p_ptr, V=V, V_PAD=V_PAD, C=C, LM_HEAD=LM_HEAD, WQ=WQ, WK=WK,
                                                      WV=WV, WO=WO, FC1=FC1, FC2=FC2)
    x0, r0, h1, r1, q, k, v, y, x1, h2, r2, a, x2, logits = _forward(  # (only the logits are used)
        p_ptr, tok, pos, causal, wq, wk, wv, wo, fc1, fc2, lm_head, R=T, V=V, V_PAD=V_PAD, C=C, H=H, D=D, EPS=EPS,
        WTE=WTE, WPE=WPE)
    vcols = tl.arange(0, V_PAD)
    tl.store(logits_ptr + pos[:, None] * V + vcols[None, :], logits, mask=vcols[None, :] < V)


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
        self.scalars = torch.stack([LEARNING_RATE * (1 - steps / num_steps), 1 - BETA1 ** (steps + 1),
                                    1 - BETA2 ** (steps + 1)], dim=1).to(params.dtype).to(params.device)
        self.losses = torch.zeros(num_steps, dtype=params.dtype, device=params.device)
        self.loss_parts = torch.zeros(self.programs, dtype=params.dtype, device=params.device)
        self.documents = self.counts = None

    def load_documents(self, documents: list[list[int]]):
        """The tokenized documents in training order, each padded to one row (kernels/layout.py);
        step s trains documents (s * B + j) mod len(documents), as SPEC.md says."""
        rows = [padded_document(tokens, self.config.block_size) for tokens in documents]
        self.documents = torch.tensor(rows, dtype=torch.int32).to(self.params.device)
        counts = positions_per_step([row[0] for row in rows], self.num_steps, self.batch_size)
        self.counts = torch.tensor(list(counts), dtype=torch.int32).to(self.params.device)

    def launch(self, first_step: int, num_steps: int):
        """Steps first_step .. first_step + num_steps - 1: one launch with one program (several
        steps allowed), or two launches per step with several."""
        if self.programs == 1:
            self._train(first_step, num_steps, self.losses, adam=True)
            return
        plan = launch.flat(self.params.numel())
        for step in range(first_step, first_step + num_steps):
            self._train(step, 1, self.loss_parts, adam=False)
            reduce_adam_kernel[plan.grid](self.params, self.partials, self.m, self.v, self.scalars, self.loss_parts,
                                          self.losses, step, self.programs, BETA1, BETA2, EPS_ADAM,
                                          N=self.params.numel(), **plan.meta)

    def _train(self, first_step: int, num_steps: int, losses: torch.Tensor, adam: bool):
        train_kernel[(self.programs,)](
            self.params, self.partials, self.m, self.v, self.documents, self.counts, self.scalars, losses,
            first_step, num_steps, len(self.documents), self.batch_size, BETA1, BETA2, EPS_ADAM,
            N=self.params.numel(), BLOCK_ADAM=launch.flat(self.params.numel()).meta["BLOCK"], DOCS=self.docs_per_tile,
            ADAM=adam,
            num_warps=self.num_warps, **self.model_constants())

    def launch_settings(self) -> dict:
        return {"programs": self.programs, "docs_per_tile": self.docs_per_tile, "warps": self.num_warps}

    def run(self, num_steps: int) -> list[float]:
        """The first num_steps steps in one launch (one program); their losses."""
        self.launch(0, num_steps)
        return self.losses[:num_steps].tolist()  # (waits for the launch to finish)

    def next_logits(self, tokens: list[int]) -> torch.Tensor:
        """(V,) logits for the token after `tokens`: what `sample` asks for."""
        return self.logits(tokens)[len(tokens) - 1]

    @torch.no_grad()
    def logits(self, tokens: list[int]) -> torch.Tensor:
        """(T, V) logits at every position of `tokens` (at most T of them) from the current weights."""
        T = self.config.block_size
        document = torch.tensor([len(tokens)] + tokens + [0] * (T + 1 - len(tokens)), dtype=torch.int32)
        logits = torch.empty((T, self.config.vocab_size), dtype=self.params.dtype, device=self.params.device)
        logits_kernel[(1,)](self.params, document.to(self.params.device), logits, num_warps=self.num_warps,
                            **self.model_constants())
        return logits

    def model_constants(self) -> dict:
        """The model's sizes and where each matrix starts in the flat buffer, as the kernels' constexprs."""
        c = self.config
        offsets = {name.split(".")[-1]: start for name, (start, _, _) in param_offsets(c).items()}
        return dict(V=c.vocab_size, V_PAD=launch.block(c.vocab_size, at_least=launch.DOT_MIN), T=c.block_size,
                    C=c.n_embd, H=c.n_head, D=c.n_embd // c.n_head, EPS=EPS, WTE=offsets["wte"],
                    WPE=offsets["wpe"], LM_HEAD=offsets["lm_head"], WQ=offsets["attn_wq"], WK=offsets["attn_wk"],
                    WV=offsets["attn_wv"], WO=offsets["attn_wo"], FC1=offsets["mlp_fc1"], FC2=offsets["mlp_fc2"])


    def compile(self):
        """Compile the kernels (a launch of zero steps) before any step is timed; with several
        programs, the reduction too, on a scratch copy of the weights."""
        self.launch(0, 0)
        if self.programs > 1:
            FusedTrainer(self.params.clone(), self.config, 1, self.batch_size, self.programs, self.docs_per_tile,
                         self.num_warps).launch(0, 0)


# ----------------------------------------------------------------------------------------
# Training and sampling: the one-kernel step in a loop, or the whole run in one launch
# ----------------------------------------------------------------------------------------

def train(run) -> FusedTrainer:
    """Train from SPEC.md's initial weights with the one-kernel step; `run` (shared/runner.py)
    records every step."""
    params = flat_weights(run.initial_weights, run.config, getattr(torch, run.dtype), run.device)
    programs = 1 if run.args.launch == "run" else run.args.programs or launch.programs_for(run.batch_size,
                                                                                            backend.choose())
    trainer = FusedTrainer(params, run.config, run.num_steps, run.batch_size, programs, run.args.docs_per_tile,
                           run.args.warps)
    trainer.load_documents([run.tokenizer.encode_doc(doc) for doc in run.docs])
    with run.timed("setup"):
        trainer.compile()
    run.note(fused=run.args.launch, **trainer.launch_settings())
    if run.args.launch == "run":  # every step in one launch: each step_ms is the run's time divided by its steps
        for _ in run.steps():  # one pass: the launch trains every step, and they end together
            run.end_steps(trainer.run(run.steps_to_train))
    else:
        for step in run.steps():
            trainer.launch(step, 1)
            run.end_step(trainer.losses[step])
    return trainer


def sample(trainer: FusedTrainer, config: GPTConfig, tokenizer: Tokenizer, rng, temperature: float) -> str:
    """One name, drawn as main.py's `sample` draws it: start from BOS, draw each next token from
    the trainer's logits (logits_kernel: the training forward), stop at BOS or block_size tokens."""
    tokens = [tokenizer.bos]
    for _ in range(config.block_size):
        probs = torch.softmax(trainer.next_logits(tokens).double().cpu() / temperature, dim=-1)
        token_id = rng.choices(range(config.vocab_size), weights=probs.tolist())[0]
        if token_id == tokenizer.bos:
            break
        tokens.append(token_id)
    return tokenizer.decode(tokens)


# ----------------------------------------------------------------------------------------
# Command line: every main.py's flags, log line and results file, and the launch settings
# ----------------------------------------------------------------------------------------

FLAGS = runner.Flags(dtypes=("float32", "float64"), device=backend.device, extra=launch.fused_step_flags,
                     check=launch.check_fused_sizes, memory=launch.fused_memory())

if __name__ == "__main__":
    runner.main(__file__, FLAGS, train, sample)
