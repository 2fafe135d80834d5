"""The whole training step -- forward, backward, Adam -- as one Triton kernel.

The per-op kernels in `kernels/` teach what each op does on a GPU; this file is the other
end of the road. microgpt's weights, gradients and Adam moments are 4,192 x 4 floats (about
67 KB in float32): they fit in one GPU block's registers and cache. So one program can run
an entire training step with every activation in registers -- no intermediate ever goes to
memory, no second kernel is launched -- and a loop inside the same kernel runs all 1000
steps of a run in a single launch. A step is about 0.24 MFLOP, microseconds of work; what
the per-op version spends on 28 launches (or one graph replay) is gone.

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
"""

import torch
import triton
import triton.language as tl

from kernels.rmsnorm import EPS

BLOCK_ADAM = 1024


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
def _load(ptr, offset, ROWS: tl.constexpr, COLS: tl.constexpr, ROWS_PAD: tl.constexpr):
    """A (ROWS_PAD, COLS) tile of a row-major (ROWS, COLS) matrix; padded rows are zero."""
    rows = tl.arange(0, ROWS_PAD)
    cols = tl.arange(0, COLS)
    return tl.load(ptr + offset + rows[:, None] * COLS + cols[None, :], mask=rows[:, None] < ROWS, other=0.0)


@triton.jit
def _store(ptr, offset, tile, ROWS: tl.constexpr, COLS: tl.constexpr, ROWS_PAD: tl.constexpr):
    rows = tl.arange(0, ROWS_PAD)
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
    batches_ptr,  # (steps, T + 2) int32: per step [n, tokens[0..T]] (tokens padded with 0)
    hyper_ptr,  # (steps, 3) per step [lr_t, 1 - beta1^(t+1), 1 - beta2^(t+1)]
    losses_ptr,  # (steps,) output: each step's loss
    first_step, num_steps,  # run steps first_step .. first_step + num_steps - 1
    beta1, beta2, eps_adam,
    N: tl.constexpr, V: tl.constexpr, V_PAD: tl.constexpr, T: tl.constexpr, C: tl.constexpr,
    H: tl.constexpr, D: tl.constexpr, EPS: tl.constexpr,
):
    # Offsets of each matrix in the flat buffer (SPEC.md's order; wq, wk, wv adjacent).
    WTE: tl.constexpr = 0
    WPE: tl.constexpr = V * C
    LM_HEAD: tl.constexpr = WPE + T * C
    WQ: tl.constexpr = LM_HEAD + V * C
    WK: tl.constexpr = WQ + C * C
    WV: tl.constexpr = WK + C * C
    WO: tl.constexpr = WV + C * C
    FC1: tl.constexpr = WO + C * C
    FC2: tl.constexpr = FC1 + 4 * C * C
    rows = tl.arange(0, T)
    cols = tl.arange(0, C)
    vcols = tl.arange(0, V_PAD)
    causal = rows[None, :] <= rows[:, None]  # (T, T): key j is visible from query i
    scale = 1.0 / tl.sqrt(tl.full([1], D, tl.float32))

    for step in range(first_step, first_step + num_steps):
        batch = batches_ptr + step * (T + 2)
        n = tl.load(batch)
        live = rows < n  # real rows; the rest are padding and get no loss and no gradient
        tok = tl.load(batch + 1 + rows)
        target = tl.load(batch + 2 + rows)

        # ---------------------------------------------------------------- forward
        x = tl.load(p_ptr + WTE + tok[:, None] * C + cols[None, :]) + _load(p_ptr, WPE, T, C, T)
        x0, r0 = _rmsnorm(x, C, EPS)
        h1, r1 = _rmsnorm(x0, C, EPS)
        wq = _load(p_ptr, WQ, C, C, C)
        wk = _load(p_ptr, WK, C, C, C)
        wv = _load(p_ptr, WV, C, C, C)
        q = _dot(h1, tl.trans(wq))  # (T, C)
        k = _dot(h1, tl.trans(wk))
        v = _dot(h1, tl.trans(wv))
        y = tl.zeros((T, C), tl.float32)
        for h in tl.static_range(H):
            head = ((cols // D) == h).to(tl.float32)[None, :]  # 1 on head h's channels
            s = tl.where(causal, _dot(q * head, tl.trans(k)) * scale, float("-inf"))  # (T, T)
            prob = tl.exp(s - tl.max(s, axis=1)[:, None])
            prob = prob / tl.sum(prob, axis=1)[:, None]
            y += _dot(prob, v * head)  # head h's output lands in head h's channels
        wo = _load(p_ptr, WO, C, C, C)
        x1 = x0 + _dot(y, tl.trans(wo))
        h2, r2 = _rmsnorm(x1, C, EPS)
        fc1 = _load(p_ptr, FC1, 4 * C, C, 4 * C)
        fc2 = _load(p_ptr, FC2, C, 4 * C, C)
        a = tl.maximum(_dot(h2, tl.trans(fc1)), 0.0)  # (T, 4C)
        x2 = x1 + _dot(a, tl.trans(fc2))
        lm_head = _load(p_ptr, LM_HEAD, V, C, V_PAD)
        logits = tl.where(vcols[None, :] < V, _dot(x2, tl.trans(lm_head)), float("-inf"))  # (T, V_PAD)

        # Cross-entropy over the n real rows: loss_t = logsumexp(z_t) - z_t[target_t].
        z_max = tl.max(logits, axis=1)
        e = tl.exp(logits - z_max[:, None])
        sum_e = tl.sum(e, axis=1)
        is_target = vcols[None, :] == target[:, None]
        z_target = tl.sum(tl.where(is_target, logits, 0.0), axis=1)
        nf = n.to(tl.float32)
        loss = tl.sum(tl.where(live, tl.log(sum_e) + z_max - z_target, 0.0), axis=0) / nf
        tl.store(losses_ptr + step, loss)

        # ---------------------------------------------------------------- backward
        # dL/dlogits = (softmax - onehot(target)) / n on real rows, 0 elsewhere
        d_logits = tl.where(live[:, None], (e / sum_e[:, None] - is_target.to(tl.float32)) / nf, 0.0)
        # logits = x2 lm_head^T:  d lm_head = d_logits^T x2,  d x2 = d_logits lm_head
        _store(g_ptr, LM_HEAD, _dot(tl.trans(d_logits), x2), V, C, V_PAD)
        d_x2 = _dot(d_logits, lm_head)  # (T, C)
        # x2 = x1 + a W2^T:  d W2 = d_x2^T a,  d a = d_x2 W2,  and d_x2 flows on to x1
        _store(g_ptr, FC2, _dot(tl.trans(d_x2), a), C, 4 * C, C)
        d_a = tl.where(a > 0, _dot(d_x2, fc2), 0.0)  # a = relu(.): gradient only where a > 0
        # a = relu(h2 W1^T):  d W1 = d_a^T h2,  d h2 = d_a W1
        _store(g_ptr, FC1, _dot(tl.trans(d_a), h2), 4 * C, C, 4 * C)
        d_x1 = d_x2 + _rmsnorm_backward(h2, r2, _dot(d_a, fc1), C)
        # x1 = x0 + y Wo^T:  d Wo = d_x1^T y,  d y = d_x1 Wo
        _store(g_ptr, WO, _dot(tl.trans(d_x1), y), C, C, C)
        d_y = _dot(d_x1, wo)
        # Attention, per head (P recomputed from q, k): with g = d_y on head h's channels,
        #   dv_h = P^T g,  dP = g v_h^T,  dS = P (dP - rowsum(dP P)) / sqrt(D),
        #   dq_h = dS k_h,  dk_h = dS^T q_h
        d_q = tl.zeros((T, C), tl.float32)
        d_k = tl.zeros((T, C), tl.float32)
        d_v = tl.zeros((T, C), tl.float32)
        for h in tl.static_range(H):
            head = ((cols // D) == h).to(tl.float32)[None, :]
            s = tl.where(causal, _dot(q * head, tl.trans(k)) * scale, float("-inf"))
            prob = tl.exp(s - tl.max(s, axis=1)[:, None])
            prob = prob / tl.sum(prob, axis=1)[:, None]
            d_prob = _dot(d_y * head, tl.trans(v))  # (T, T)
            d_s = prob * (d_prob - tl.sum(d_prob * prob, axis=1)[:, None]) * scale
            d_v += _dot(tl.trans(prob), d_y * head)
            d_q += _dot(d_s, k * head)
            d_k += _dot(tl.trans(d_s), q * head)
        # q = h1 Wq^T (and k, v alike):  d Wq = d_q^T h1,  d h1 = d_q Wq + d_k Wk + d_v Wv
        _store(g_ptr, WQ, _dot(tl.trans(d_q), h1), C, C, C)
        _store(g_ptr, WK, _dot(tl.trans(d_k), h1), C, C, C)
        _store(g_ptr, WV, _dot(tl.trans(d_v), h1), C, C, C)
        d_h1 = _dot(d_q, wq) + _dot(d_k, wk) + _dot(d_v, wv)
        d_x0 = d_x1 + _rmsnorm_backward(h1, r1, d_h1, C)
        d_x = _rmsnorm_backward(x0, r0, d_x0, C)
        # x = wte[tok] + wpe:  d wte = onehot(tok)^T d_x (a scatter-add as one matmul,
        # deterministic), d wpe = d_x (rows past n are already zero)
        onehot = ((tok[:, None] == vcols[None, :]) & live[:, None]).to(tl.float32)  # (T, V_PAD)
        _store(g_ptr, WTE, _dot(tl.trans(onehot), d_x), V, C, V_PAD)
        _store(g_ptr, WPE, d_x, T, C, T)

        # ---------------------------------------------------------------- Adam
        tl.debug_barrier()  # every thread's gradient stores are visible before the sweep
        lr_t = tl.load(hyper_ptr + step * 3)
        bias1 = tl.load(hyper_ptr + step * 3 + 1)
        bias2 = tl.load(hyper_ptr + step * 3 + 2)
        for start in tl.static_range(0, N, 1024):
            offsets = start + tl.arange(0, 1024)
            mask = offsets < N
            g = tl.load(g_ptr + offsets, mask=mask)
            m = beta1 * tl.load(m_ptr + offsets, mask=mask) + (1 - beta1) * g
            v2 = beta2 * tl.load(v_ptr + offsets, mask=mask) + (1 - beta2) * (g * g)
            p = tl.load(p_ptr + offsets, mask=mask) - lr_t * (m / bias1) / (tl.sqrt(v2 / bias2) + eps_adam)
            tl.store(m_ptr + offsets, m, mask=mask)
            tl.store(v_ptr + offsets, v2, mask=mask)
            tl.store(p_ptr + offsets, p, mask=mask)
        tl.debug_barrier()  # the next step reads the updated weights


class FusedTrainer:
    """Training with `train_kernel`: all documents tokenized into one device buffer up front,
    then either one launch per step (`step`) or one launch for a whole run (`run`)."""

    def __init__(self, params: torch.Tensor, config, num_steps: int, beta1: float, beta2: float, eps: float,
                 learning_rate: float):
        if config.n_layer != 1:
            raise ValueError("the fused kernel implements SPEC.md's one-layer model; use the per-op kernels")
        C, T = config.n_embd, config.block_size
        if C < 16 or C & (C - 1) or T < 16 or T & (T - 1):
            raise ValueError("the fused kernel needs n_embd and block_size to be powers of two >= 16")
        self.config, self.num_steps = config, num_steps
        self.params = params
        self.grads, self.m, self.v = (torch.zeros_like(params) for _ in range(3))
        self.betas_eps = (beta1, beta2, eps)
        steps = torch.arange(num_steps, dtype=torch.float64)
        self.hyper = torch.stack([learning_rate * (1 - steps / num_steps), 1 - beta1 ** (steps + 1),
                                  1 - beta2 ** (steps + 1)], dim=1).to(params.dtype).to(params.device)
        self.losses = torch.zeros(num_steps, dtype=params.dtype, device=params.device)
        self.batches = None

    def load_documents(self, documents: list[list[int]]):
        """Pre-tokenized documents, one per step: each row [n, tokens..., 0 padding]."""
        T = self.config.block_size
        batches = torch.zeros((len(documents), T + 2), dtype=torch.int32)
        for i, tokens in enumerate(documents):
            n = min(T, len(tokens) - 1)
            batches[i, 0] = n
            batches[i, 1:n + 2] = torch.tensor(tokens[:n + 1], dtype=torch.int32)
        self.batches = batches.to(self.params.device)

    def launch(self, first_step: int, num_steps: int):
        c = self.config
        train_kernel[(1,)](
            self.params, self.grads, self.m, self.v, self.batches, self.hyper, self.losses,
            first_step, num_steps, *self.betas_eps,
            N=self.params.numel(), V=c.vocab_size, V_PAD=max(16, triton.next_power_of_2(c.vocab_size)),
            T=c.block_size, C=c.n_embd, H=c.n_head, D=c.n_embd // c.n_head, EPS=EPS, num_warps=4,
        )
