"""Stage 1 -- pure Python: a scalar autograd engine trains microgpt.

Every number in the model is a `Value`: a Python float that remembers which Values it
was computed from and the local derivative with respect to each. One training step
builds a graph of tens of thousands of such scalar nodes (more for longer names), then walks it
backwards once to get all 4,192 gradients by the chain rule. Nothing is vectorized,
nothing is compiled: this is the slow, obvious reference every later stage must equal.

Run:  python 1_pure_python/main.py            (several minutes; README.md has the measured time)
      python 1_pure_python/main.py --steps 20  (a quick look)
"""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for shared/
from shared import program, runner  # noqa: E402, F401  (program first: load-time errors in one line)
from shared.keep import keep  # noqa: E402  (names a value for the one-step page and the tests)
from shared.tokenizer import Tokenizer, positions  # noqa: E402
from shared.weights import GPTConfig  # noqa: E402

# Optimizer (SPEC.md): Adam with bias correction and a linear learning-rate decay to zero.
LEARNING_RATE = 0.01  # peak learning rate, decayed linearly to 0 over the run
BETA1 = 0.85  # decay of the first-moment (mean gradient) estimate
BETA2 = 0.99  # decay of the second-moment (squared gradient) estimate
EPS_ADAM = 1e-8  # keeps the update finite where the second moment is ~0
RMSNORM_EPS = 1e-5  # rmsnorm(x) = x / sqrt(mean(x^2) + eps)


# ----------------------------------------------------------------------------------------
# Autograd: a scalar Value and the chain rule
# ----------------------------------------------------------------------------------------

# backward's build_topo recurses once per level of a graph: under 300 for one name, ~15 more per name of a batch
sys.setrecursionlimit(10_000)


class Value:
    """A scalar in the computation graph: its value, its gradient, and where it came from.

    Each op computes its result and, in the same line, the local derivative of the result
    with respect to each input. `backward` multiplies those along every path (chain rule).
    """

    __slots__ = ("data", "grad", "_children", "_local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data = data  # the forward value
        self.grad = 0.0  # d(loss)/d(self), filled by backward()
        self._children = children  # the Values this one was computed from
        self._local_grads = local_grads  # d(self)/d(child) for each child

    # The primitive ops: forward value, then the local derivative(s).
    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))  # d(a+b)/da = 1

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))  # d(ab)/da = b

    def __pow__(self, exponent):  # exponent is a plain number
        return Value(self.data**exponent, (self,), (exponent * self.data ** (exponent - 1),))

    def log(self):
        return Value(math.log(self.data), (self,), (1.0 / self.data,))  # d log a = 1/a

    def exp(self):
        out = math.exp(self.data)
        return Value(out, (self,), (out,))  # d exp a = exp a

    def relu(self):
        return Value(max(0.0, self.data), (self,), (float(self.data > 0),))

    # Derived ops: written on the primitives, so they need no derivative of their own.
    def __neg__(self):
        return self * -1.0

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * other**-1.0

    def __rtruediv__(self, other):
        return other * self**-1.0

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    def backward(self) -> int:
        """Set .grad of every Value this one depends on; return how many nodes there are.

        Order the graph so every node comes after all nodes it was computed from
        (a topological order), then visit it in reverse: by the time a node is visited,
        its own gradient is complete and can be pushed to its children.
        """
        topo, visited = [], set()

        def build_topo(node):  # depth first: a node goes in after everything it was computed from
            if node not in visited:
                visited.add(node)
                for child in node._children:
                    build_topo(child)
                topo.append(node)
        build_topo(self)
        self.grad = 1.0
        for node in reversed(topo):
            for child, local_grad in zip(node._children, node._local_grads):
                child.grad += local_grad * node.grad  # chain rule, summed over paths
        return len(topo)


# ----------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------

def make_params(state: dict[str, list[list[float]]]) -> dict[str, list[list[Value]]]:
    """Wrap the shared initial weights (nested lists of floats) in Values."""
    return {name: [[Value(w) for w in row] for row in matrix] for name, matrix in state.items()}


def flatten(params: dict[str, list[list[Value]]]) -> list[Value]:
    return [p for matrix in params.values() for row in matrix for p in row]


# ----------------------------------------------------------------------------------------
# Model: microgpt, one token at a time, every multiply a graph node
# ----------------------------------------------------------------------------------------

# keep(name, value) gives `value` back unchanged. It names the model's quantities -- x0, q,
# attn, logits, ... (SPEC.md's names, the same in every stage) -- so that the one-step page
# and the tests can read them from this stage's own run (shared/keep.py).

def linear(x: list[Value], w: list[list[Value]]) -> list[Value]:
    """y = W x for W stored [n_out][n_in]: one dot product per output."""
    return [sum(wi * xi for wi, xi in zip(w_row, x)) for w_row in w]


def softmax(logits: list[Value]) -> list[Value]:
    # Subtracting the max (a constant, so no gradient) keeps exp from overflowing.
    max_logit = max(v.data for v in logits)
    exps = [(v - max_logit).exp() for v in logits]
    total = sum(exps)
    return [e / total for e in exps]


def rmsnorm(x: list[Value]) -> list[Value]:
    mean_square = sum(xi * xi for xi in x) / len(x)
    scale = (mean_square + RMSNORM_EPS) ** -0.5
    return [xi * scale for xi in x]


def gpt(token_id: int, pos_id: int, keys: list, values: list,
        params: dict, config: GPTConfig) -> list[Value]:
    """Logits for the token after `token_id` at position `pos_id`.

    `keys` and `values` hold, per layer, the key and value vectors of the earlier
    positions (a KV cache); this position's are appended, so attention is causal by
    construction: position t can only see positions 0..t.
    """
    n_head, head_dim = config.n_head, config.head_dim
    x = keep("x0", [t + p for t, p in zip(params["wte"][token_id], params["wpe"][pos_id])])
    x = keep("x1", rmsnorm(x))
    for li in range(config.n_layer):
        # Attention block: x = x + Wo @ attention(rmsnorm(x))
        x_residual = x
        x = keep("h_attn", rmsnorm(x))
        q = keep("q", linear(x, params[f"layer{li}.attn_wq"]))
        k = keep("k", linear(x, params[f"layer{li}.attn_wk"]))
        v = keep("v", linear(x, params[f"layer{li}.attn_wv"]))
        keys[li].append(k)
        values[li].append(v)
        x_attn = []
        for h in range(n_head):
            hs = h * head_dim
            q_h = q[hs:hs + head_dim]
            k_h = [k_t[hs:hs + head_dim] for k_t in keys[li]]
            v_h = [v_t[hs:hs + head_dim] for v_t in values[li]]
            # score_t = q . k_t / sqrt(D): scaled so the softmax is not saturated at init
            attn_logits = keep("scores", [sum(q_h[j] * k_t[j] for j in range(head_dim)) / head_dim**0.5
                                          for k_t in k_h])
            attn_weights = keep("attn", softmax(attn_logits))
            x_attn.extend(sum(attn_weights[t] * v_h[t][j] for t in range(len(v_h)))
                          for j in range(head_dim))
        x = linear(keep("y", x_attn), params[f"layer{li}.attn_wo"])
        x = keep("x2", [a + b for a, b in zip(x, x_residual)])
        # MLP block: x = x + fc2 @ relu(fc1 @ rmsnorm(x))
        x_residual = x
        x = keep("h_mlp", rmsnorm(x))
        x = keep("fc1", linear(x, params[f"layer{li}.mlp_fc1"]))
        x = keep("relu", [xi.relu() for xi in x])
        x = linear(x, params[f"layer{li}.mlp_fc2"])
        x = keep("x3", [a + b for a, b in zip(x, x_residual)])
    return keep("logits", linear(x, params["lm_head"]))


def token_losses(tokens: list[int], params: dict, config: GPTConfig) -> list[Value]:
    """Next-token cross-entropy at each of a document's first min(block_size, len-1) positions."""
    keys = [[] for _ in range(config.n_layer)]
    values = [[] for _ in range(config.n_layer)]
    losses = []
    for pos_id in range(positions(tokens, config.block_size)):
        logits = gpt(tokens[pos_id], pos_id, keys, values, params, config)
        probs = keep("probs", softmax(logits))
        losses.append(keep("loss", -probs[tokens[pos_id + 1]].log()))
    return losses


def batch_loss(batch: list[list[int]], params: dict, config: GPTConfig) -> Value:
    """Mean next-token cross-entropy over every position of the step's documents, one after
    another: a batch is a loop here, and one graph over all of it."""
    losses = [loss for tokens in batch for loss in token_losses(tokens, params, config)]
    return (1 / len(losses)) * sum(losses)


# ----------------------------------------------------------------------------------------
# Optimizer: Adam, one scalar at a time
# ----------------------------------------------------------------------------------------

def adam_step(params: list[Value], m: list[float], v: list[float], step: int, num_steps: int):
    """Update every parameter in place from its .grad, then zero the grad. `step` is 0-based."""
    lr_t = LEARNING_RATE * (1 - step / num_steps)  # linear decay to zero
    bias1 = 1 - BETA1 ** (step + 1)  # corrects m, v for starting at zero
    bias2 = 1 - BETA2 ** (step + 1)
    for i, p in enumerate(params):
        m[i] = BETA1 * m[i] + (1 - BETA1) * p.grad
        v[i] = BETA2 * v[i] + (1 - BETA2) * p.grad**2
        m_hat = m[i] / bias1
        v_hat = v[i] / bias2
        p.data -= lr_t * m_hat / (v_hat**0.5 + EPS_ADAM)
        p.grad = 0.0


# ----------------------------------------------------------------------------------------
# Training: forward, backward, Adam, a batch of documents per step
# ----------------------------------------------------------------------------------------

def train(run) -> dict:
    """Train from SPEC.md's initial weights. `run` (shared/runner.py) hands out each step's
    documents and records the step: its loss, its time, and the size of its graph."""
    params = make_params(run.initial_weights)
    flat = flatten(params)
    m, v = [0.0] * len(flat), [0.0] * len(flat)  # Adam's two moments for every parameter
    for step, batch in run.batches():
        with run.phase("forward"):
            loss = batch_loss(batch, params, run.config)
        with run.phase("backward"):
            graph_nodes = loss.backward()
        with run.phase("optimizer"):
            adam_step(flat, m, v, step, run.num_steps)
        run.end_step(loss.data, graph_nodes=graph_nodes)
    return params


# ----------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------

def sample(params: dict, config: GPTConfig, tokenizer: Tokenizer, rng, temperature: float) -> str:
    """One name: start from BOS, draw each next token, stop at BOS or block_size tokens."""
    keys = [[] for _ in range(config.n_layer)]
    values = [[] for _ in range(config.n_layer)]
    token_id, out = tokenizer.bos, []
    for pos_id in range(config.block_size):
        logits = gpt(token_id, pos_id, keys, values, params, config)
        probs = softmax([logit / temperature for logit in logits])
        token_id = rng.choices(range(config.vocab_size), weights=[p.data for p in probs])[0]
        if token_id == tokenizer.bos:
            break
        out.append(token_id)
    return tokenizer.decode(out)


# ----------------------------------------------------------------------------------------
# Command line: shared/runner.py reads the flags and the data, and times and records the run
# ----------------------------------------------------------------------------------------

# SPEC.md's common flags only: float64 Python floats, on the CPU. A step keeps a Value for every scalar operation:
# the object, its float and its two tuples take about 250 bytes (measured with tracemalloc).
FLAGS = runner.Flags(memory=runner.Memory(bytes_per_scalar_op=250))

if __name__ == "__main__":
    runner.main(__file__, FLAGS, train, sample)
