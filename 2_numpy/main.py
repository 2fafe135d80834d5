"""Stage 2 -- NumPy: a Tensor autograd engine trains microgpt on whole arrays.

What changes from stage 1: a graph node is now an array operation, not a scalar one.
The whole document goes through the model at once as a (T, C) array; all heads attend in
one batched matmul under a causal mask; and the ops are chosen coarse on purpose --
rmsnorm, causal attention and cross-entropy are single nodes whose backward is derived by
hand -- so a step builds about 20 graph nodes instead of stage 1's tens of thousands. Python's per-node
cost is paid 20 times; NumPy does the arithmetic in C. Adam updates one flat buffer that
every parameter is a view of. Same model, same data order, same initial weights, same
losses as stage 1 (float64 by default).

Run:  python 2_numpy/main.py                  (a few seconds)
      python 2_numpy/main.py --dtype float32
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for shared/
from shared import program, runner  # noqa: E402, F401  (program first: load-time errors in one line)
from shared.keep import keep  # noqa: E402  (names a value for the one-step page and the tests)
from shared.tokenizer import Tokenizer, positions  # noqa: E402
from shared.weights import GPTConfig, param_offsets, param_shapes  # noqa: E402

# isort: split
import numpy as np  # noqa: E402

# Optimizer (SPEC.md): Adam with bias correction and a linear learning-rate decay to zero.
LEARNING_RATE = 0.01  # peak learning rate, decayed linearly to 0 over the run
BETA1 = 0.85  # decay of the first-moment (mean gradient) estimate
BETA2 = 0.99  # decay of the second-moment (squared gradient) estimate
EPS_ADAM = 1e-8  # keeps the update finite where the second moment is ~0
RMSNORM_EPS = 1e-5  # rmsnorm(x) = x / sqrt(mean(x^2) + eps)

# Shapes in comments: B documents in the step, T positions (the longest document's; shorter
# ones are padded), C = n_embd, H heads, D = head_dim = C / H, V = vocab_size. Weights are
# stored (n_out, n_in), as in SPEC.md, so a linear layer is x W^T.


# ----------------------------------------------------------------------------------------
# Autograd: a Tensor, and the chain rule over arrays
# ----------------------------------------------------------------------------------------

class Tensor:
    """An array in the computation graph.

    An op computes `out.data` and attaches `out._backward(g)`: given g = dL/d(out), it adds
    dL/d(input) = g . d(out)/d(input) to each input's `.grad` (a vector-Jacobian product).
    """

    __slots__ = ("data", "grad", "_children", "_backward")

    def __init__(self, data, children=(), backward=None):
        self.data = data  # np.ndarray
        self.grad = None  # dL/d(self), same shape as data; None until backward reaches it
        self._children = children
        self._backward = backward

    def add_grad(self, g):
        # Never in place: a backward may hand the same array to two inputs.
        self.grad = g if self.grad is None else self.grad + g

    def __add__(self, other):  # broadcasting add
        out = Tensor(self.data + other.data, (self, other))

        def backward(g):  # d(a+b)/da = 1, summed over the axes that were broadcast
            self.add_grad(unbroadcast(g, self.data.shape))
            other.add_grad(unbroadcast(g, other.data.shape))
        out._backward = backward
        return out

    def __mul__(self, other):  # broadcasting elementwise multiply
        out = Tensor(self.data * other.data, (self, other))

        def backward(g):  # d(ab)/da = b
            self.add_grad(unbroadcast(g * other.data, self.data.shape))
            other.add_grad(unbroadcast(g * self.data, other.data.shape))
        out._backward = backward
        return out

    def __neg__(self):
        return self * Tensor(np.array(-1.0, dtype=self.data.dtype))

    def __sub__(self, other):
        return self + (-other)

    def sum(self):
        out = Tensor(self.data.sum(), (self,))

        def backward(g):  # every element contributes with weight 1
            self.add_grad(np.broadcast_to(g, self.data.shape))
        out._backward = backward
        return out

    def backward(self) -> int:
        """Fill .grad of every Tensor this scalar depends on; return the number of nodes.

        Same recursive topological sort as stage 1 (a graph of a couple of dozen nodes needs
        no raised recursion limit); each node's backward now moves a whole array of gradients
        at once.
        """
        topo, visited = [], set()

        def build_topo(node):  # depth first: a node goes in after everything it was computed from
            if node not in visited:
                visited.add(node)
                for child in node._children:
                    build_topo(child)
                topo.append(node)
        build_topo(self)
        self.grad = np.ones_like(self.data)
        for node in reversed(topo):
            if node._backward is not None:
                node._backward(node.grad)
        return len(topo)


def unbroadcast(g, shape):
    """Sum g over the axes broadcasting added or stretched, so it matches `shape`."""
    if g.shape == shape:
        return g
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=stretched, keepdims=True) if stretched else g


# ----------------------------------------------------------------------------------------
# Parameters: one flat buffer, every parameter a view of it
# ----------------------------------------------------------------------------------------

def make_params(state: dict, config: GPTConfig, dtype=np.float64) -> tuple[np.ndarray, dict]:
    """(flat buffer, {name: Tensor}) from the shared initial weights.

    The flat buffer follows SPEC.md's order, so Adam is a few calls over one array. SPEC.md
    stores attn_wq, attn_wk, attn_wv one after another, so the stacked (3C, C) matrix
    [wq; wk; wv] is itself a view: one matmul computes q, k and v together.
    """
    flat = np.concatenate([np.asarray(state[name], dtype=dtype).ravel() for name, _ in param_shapes(config)])
    offsets = param_offsets(config)
    names = ["wte", "wpe", "lm_head"] + [f"layer{i}.{name}" for i in range(config.n_layer)
                                         for name in ("attn_wqkv", "attn_wo", "mlp_fc1", "mlp_fc2")]
    return flat, {name: Tensor(view(flat, offsets[name])) for name in names}


def view(flat: np.ndarray, offset: tuple[int, int, int]) -> np.ndarray:
    """The (rows, cols) matrix starting at `start` in `flat`, sharing its memory."""
    start, rows, cols = offset
    return flat[start:start + rows * cols].reshape(rows, cols)


def flat_grad(params: dict) -> np.ndarray:
    """All gradients as one array, in the flat buffer's order (the params dict's order)."""
    return np.concatenate([p.grad.ravel() for p in params.values()])


# ----------------------------------------------------------------------------------------
# Model: microgpt's ops, each forward beside its backward, on the whole document at once
# ----------------------------------------------------------------------------------------

# keep(name, value) gives `value` back unchanged. It names the model's quantities -- x0, q,
# attn, logits, ... (SPEC.md's names, the same in every stage) -- so that the one-step page
# and the tests can read them from this stage's own run (shared/keep.py).

def linear(x, w):
    """y = x W^T.   x (B, T, n_in), W (n_out, n_in) -> y (B, T, n_out).

    Every position of every document is a row of one (B*T, n_in) matrix: one matmul each way.
    """
    n_in, n_out = w.data.shape[1], w.data.shape[0]
    rows = x.data.reshape(-1, n_in)  # (B*T, n_in)
    out = Tensor((rows @ w.data.T).reshape(*x.data.shape[:-1], n_out), (x, w))

    def backward(g):  # dL/dx = g W,  dL/dW = g^T x, summed over every row of the batch
        g_rows = g.reshape(-1, n_out)
        x.add_grad((g_rows @ w.data).reshape(x.data.shape))
        w.add_grad(g_rows.T @ rows)
    out._backward = backward
    return out


def relu(x):
    out = Tensor(np.maximum(x.data, 0), (x,))

    def backward(g):  # passes the gradient where the input was positive
        x.add_grad(g * (x.data > 0))
    out._backward = backward
    return out


def embed(wte, wpe, tokens):
    """x[b, t] = wte[tokens[b, t]] + wpe[t].   tokens (B, T) -> (B, T, C)"""
    T = tokens.shape[1]
    out = Tensor(wte.data[tokens] + wpe.data[:T], (wte, wpe))

    def backward(g):  # a row gathered twice gets both gradients: scatter-add
        d_wte = np.zeros_like(wte.data)
        np.add.at(d_wte, tokens, g)
        d_wpe = np.zeros_like(wpe.data)
        d_wpe[:T] = g.sum(axis=0)  # position t of every document
        wte.add_grad(d_wte)
        wpe.add_grad(d_wpe)
    out._backward = backward
    return out


def rmsnorm(x):
    """y = x * r,  r = 1 / sqrt(mean(x^2) + eps), per row.   (B, T, C) -> (B, T, C)

    Backward, per row with n = C:  dy/dx = r (I - y y^T / n), so
        dL/dx = r * (g - y * mean(g * y))
    """
    r = 1.0 / np.sqrt((x.data * x.data).mean(axis=-1, keepdims=True) + RMSNORM_EPS)  # (B, T, 1)
    y = x.data * r
    out = Tensor(y, (x,))

    def backward(g):
        x.add_grad(r * (g - y * (g * y).mean(axis=-1, keepdims=True)))
    out._backward = backward
    return out


def causal_attention(qkv, n_head):
    """Multi-head causal self-attention from stacked projections, every document at once.

    qkv (B, T, 3C) holds [q | k | v], each (B, T, C) = H heads of width D. Per document and head:
        S = q k^T / sqrt(D)  (T, T),  P = softmax(S with future positions at -inf),  y = P v
    Backward, per document and head, with g = dL/dy:
        dP = g v^T,  dv = P^T g,  dS = P * (dP - rowsum(dP * P)),  dq = dS k / sqrt(D),
        dk = dS^T q / sqrt(D)
    A shorter document's padding comes after its real positions, so the causal mask already
    keeps every real position from seeing it.
    """
    B, T, C3 = qkv.data.shape
    D = C3 // 3 // n_head
    scale = 1.0 / D**0.5  # a Python float: NumPy keeps the arrays' dtype (a NumPy float64 would not)
    q, k, v = qkv.data.reshape(B, T, 3, n_head, D).transpose(2, 0, 3, 1, 4)  # each (B, H, T, D)
    mask = np.triu(np.full((T, T), -np.inf, dtype=qkv.data.dtype), k=1)  # 0 on/below the diagonal, -inf above
    scores = q @ k.transpose(0, 1, 3, 2) * scale + mask  # (B, H, T, T)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs = scores / scores.sum(axis=-1, keepdims=True)  # (B, H, T, T)
    y = probs @ v  # (B, H, T, D)
    out = Tensor(y.transpose(0, 2, 1, 3).reshape(B, T, C3 // 3), (qkv,))  # (B, T, C)

    def backward(g):
        g = g.reshape(B, T, n_head, D).transpose(0, 2, 1, 3)  # (B, H, T, D)
        d_probs = g @ v.transpose(0, 1, 3, 2)  # (B, H, T, T)
        d_v = probs.transpose(0, 1, 3, 2) @ g  # (B, H, T, D)
        d_scores = probs * (d_probs - (d_probs * probs).sum(axis=-1, keepdims=True)) * scale
        d_q = d_scores @ k  # (B, H, T, D)
        d_k = d_scores.transpose(0, 1, 3, 2) @ q  # (B, H, T, D)
        qkv.add_grad(np.stack((d_q, d_k, d_v)).transpose(1, 3, 0, 2, 4).reshape(B, T, C3))
    out._backward = backward
    return out


def cross_entropy(logits, targets, real):
    """Mean of -log softmax(logits)[target] over the real positions.   (B, T, V) -> scalar

    `real` (B, T) is True where a document has a target; padding adds nothing to the loss.
    Backward: dL/dlogits = (softmax(logits) - onehot(targets)) / n on real positions, n their count
    """
    n = int(real.sum())  # a Python int, so dividing by it keeps float32 float32
    shifted = logits.data - logits.data.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=-1, keepdims=True)
    docs, rows = np.indices(targets.shape)
    loss = (np.log(sum_exp[..., 0]) - shifted[docs, rows, targets])[real].sum() / n
    out = Tensor(np.asarray(loss), (logits,))

    def backward(g):
        d_logits = exp / sum_exp
        d_logits[docs, rows, targets] -= 1.0
        d_logits[~real] = 0.0
        logits.add_grad(d_logits * (g / n))
    out._backward = backward
    return out


def gpt(tokens: np.ndarray, params: dict, config: GPTConfig) -> Tensor:
    """Logits (B, T, V) for every position of every document in `tokens` (B, T) at once."""
    x = keep("x0", embed(params["wte"], params["wpe"], tokens))  # (B, T, C)
    x = keep("x1", rmsnorm(x))
    for li in range(config.n_layer):
        h = keep("h_attn", rmsnorm(x))
        qkv = keep("qkv", linear(h, params[f"layer{li}.attn_wqkv"]))  # (B, T, 3C): [q | k | v]
        y = keep("y", causal_attention(qkv, config.n_head))  # (B, T, C)
        x = keep("x2", x + linear(y, params[f"layer{li}.attn_wo"]))  # (B, T, C)
        h = keep("h_mlp", rmsnorm(x))
        h = keep("relu", relu(keep("fc1", linear(h, params[f"layer{li}.mlp_fc1"]))))  # (B, T, 4C)
        x = keep("x3", x + linear(h, params[f"layer{li}.mlp_fc2"]))  # (B, T, C)
    return keep("logits", linear(x, params["lm_head"]))  # (B, T, V)


def batch_arrays(batch: list[list[int]], block_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, targets, real), each (B, T) with T the longest document's positions: every
    document's first min(block_size, len-1) positions, padded at the end with 0."""
    n = [positions(tokens, block_size) for tokens in batch]
    inputs, targets = np.zeros((len(batch), max(n)), dtype=np.int64), np.zeros((len(batch), max(n)), dtype=np.int64)
    for b, tokens in enumerate(batch):
        inputs[b, :n[b]], targets[b, :n[b]] = tokens[:n[b]], tokens[1:n[b] + 1]
    return inputs, targets, np.arange(max(n)) < np.array(n)[:, None]


def batch_loss(batch: list[list[int]], params: dict, config: GPTConfig) -> Tensor:
    """Mean next-token cross-entropy over every real position of the step's documents."""
    inputs, targets, real = batch_arrays(batch, config.block_size)
    return cross_entropy(gpt(inputs, params, config), targets, real)


# ----------------------------------------------------------------------------------------
# Optimizer: Adam on the flat buffer, vectorized
# ----------------------------------------------------------------------------------------

def adam_step(flat: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, step: int, num_steps: int):
    """Stage 1's update, on every parameter at once. `step` is 0-based.

    m and v are written into the caller's arrays ([:]), and `flat` in place, so every
    parameter (a view of `flat`) sees the step.
    """
    lr_t = LEARNING_RATE * (1 - step / num_steps)  # linear decay to zero
    bias1 = 1 - BETA1 ** (step + 1)  # corrects m, v for starting at zero
    bias2 = 1 - BETA2 ** (step + 1)
    m[:] = BETA1 * m + (1 - BETA1) * grad
    v[:] = BETA2 * v + (1 - BETA2) * grad**2
    m_hat = m / bias1
    v_hat = v / bias2
    flat -= lr_t * m_hat / (v_hat**0.5 + EPS_ADAM)


# ----------------------------------------------------------------------------------------
# Training: forward, backward, Adam, a batch of documents per step
# ----------------------------------------------------------------------------------------

def train(run) -> dict:
    """Train from SPEC.md's initial weights. `run` (shared/runner.py) hands out each step's
    documents and records the step: its loss, its time, and the size of its graph."""
    flat, params = make_params(run.initial_weights, run.config, np.dtype(run.dtype))
    m, v = np.zeros_like(flat), np.zeros_like(flat)  # Adam's two moments for every parameter
    keep("weights", flat), keep("adam_m", m), keep("adam_v", v)  # (updated in place: read after a run)
    for step, batch in run.batches():
        with run.phase("forward"):
            loss = batch_loss(batch, params, run.config)
        with run.phase("backward"):
            graph_nodes = loss.backward()
        with run.phase("optimizer"):
            adam_step(flat, flat_grad(params), m, v, step, run.num_steps)
            for p in params.values():
                p.grad = None
        run.end_step(loss.data, graph_nodes=graph_nodes)
    return params


# ----------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------

def sample(params: dict, config: GPTConfig, tokenizer: Tokenizer, rng, temperature: float) -> str:
    """One name: start from BOS, draw each next token, stop at BOS or block_size tokens.

    Stage 1's loop without its KV cache: gpt takes a whole prefix, as in training, so each
    new token runs the positions before it again. At T <= 16 a forward pass costs mostly
    NumPy's fixed cost per call, so 16 positions take little longer than one (measured): a
    cache would save little, and would need a second forward, for one position.
    """
    tokens = [tokenizer.bos]  # the prefix so far
    for pos_id in range(config.block_size):
        logits = gpt(np.asarray([tokens]), params, config).data[0, pos_id] / temperature  # (V,) at the newest position
        probs = np.exp(logits - logits.max())  # softmax, normalized below
        token_id = rng.choices(range(config.vocab_size), weights=(probs / probs.sum()).tolist())[0]
        if token_id == tokenizer.bos:
            break
        tokens.append(token_id)
    return tokenizer.decode(tokens)


# ----------------------------------------------------------------------------------------
# Command line: shared/runner.py reads the flags and the data, and times and records the run
# ----------------------------------------------------------------------------------------

FLAGS = runner.Flags(dtypes=("float64", "float32"))  # --dtype: float64 (stage 1's numbers) or float32, on the CPU

if __name__ == "__main__":
    runner.main(__file__, FLAGS, train, sample)
