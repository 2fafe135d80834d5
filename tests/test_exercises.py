"""The exercises (exercises/) hold the checker to its word.

- Every stub and every worked solution is read as committed (git show HEAD:...), never from the
  working tree, so a learner's written exercise changes no test; one test writes solutions into
  the stubs of a scratch copy of the repository and runs these tests there to prove it.
- Every stub fails as "not written yet"; every worked solution passes, and copied over its stub.
- Every named slip (three or more per exercise, each a mistake learners make, made from the
  solution by one edit) is caught and named, on the smallest case that shows it; a bypass that
  calls the chapter's own version fails with "write it yourself".
- Every way of passing without answering tried from outside is refused in one line: a forged
  verdict, the checker patched, the expected value peeked at, the worked solution or a second
  copy of a chapter imported, an aten op that is the exercise, NumPy in a launcher, a number
  whose == is always true, the checker's own counter.
- Whatever an answer does -- crash, loop, store out of bounds, exit, print megabytes, start a
  program, leave a thread, set an alarm -- the check answers in one message and exits 1, never
  with a traceback, and nothing it started survives.
- Hints come one at a time, none is a line of the answer, and their state survives garbage and
  twelve calls at once; --doctor runs where it is needed; the learner's mistakes are not called
  the checker's bugs.

Most answers go through one batch (`check.py --jobs`): the checker's own process, as for a
learner, forking one answer's process per answer, so the suite pays for PyTorch's import a few
times, not once per answer.
"""

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT

EXERCISES = REPO_ROOT / "exercises"
CHECK = EXERCISES / "check.py"
sys.path.insert(0, str(EXERCISES))
from checker.catalog import BY_NUMBER  # noqa: E402
from checker.catalog import EXERCISES as CATALOG  # noqa: E402

pytestmark = pytest.mark.xdist_group("exercises")  # one process checks the answers once (the batch is a minute)


@functools.cache
def committed(relative: str) -> str:
    """A file of the repository as committed (HEAD), never as the learner's working tree has it."""
    return subprocess.run(["git", "show", f"HEAD:{relative}"], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout


def stub(number: str) -> str:
    return committed(f"exercises/{BY_NUMBER[number].file}")


def solution(number: str) -> str:
    return committed(f"exercises/solutions/{BY_NUMBER[number].file}")


def edited(number: str, right: str, wrong: str, count: int = -1) -> str:
    source = solution(number)
    assert right in source, f"{number}: the solution no longer holds {right!r}"
    return source.replace(right, wrong, count)


def write(folder: Path, number: str, source: str) -> Path:
    """`source` as exercise `number`'s file, in a folder of its own."""
    path = folder / Path(BY_NUMBER[number].file).name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


def batch(jobs: list[dict], folder: Path, env: dict | None = None, check: Path = CHECK) -> list[dict]:
    """The checker's batch mode: `check.py --jobs`, one result per job."""
    (folder / "jobs.json").write_text(json.dumps(jobs))
    proc = subprocess.run([sys.executable, str(check), "--jobs", str(folder / "jobs.json"),
                           str(folder / "results.json"), "--time-limit", "120"], capture_output=True, text=True,
                          timeout=900, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((folder / "results.json").read_text())


def cli(*args, cwd=REPO_ROOT, timeout=300, env=None, check: Path = CHECK):
    """Run exercises/check.py as a learner does."""
    return subprocess.run([sys.executable, str(check), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={**os.environ, **(env or {})})


def one_message(proc) -> str:
    """The learner-facing output: one verdict, no traceback, exit 1."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc.stdout


# --------------------------------------------------------------------------- the answers of the batch

# (exercise, text of the solution, the slip, what the message must say)
SLIPS = [
    ("1.1", "(1 - t * t,)", "(1 - x.data * x.data,)", "squares the input"),
    ("1.1", "(1 - t * t,)", "(1 - t,)", "the output is squared in the derivative"),
    ("1.1", "return Value(t, (x,), (1 - t * t,))", "return Value(t)", "backward cannot reach it"),
    ("1.1", "return Value(t, (x,), (1 - t * t,))", "e = (x * 2).exp()\n    return (e - 1) / (e + 1)",
     "one primitive op"),
    ("1.1", "return Value(t, (x,), (1 - t * t,))", "return t", "returned a float, expected a Value"),
    ("1.2", '"a": -7.0', '"a": -6.0', "only the path through u"),
    ("1.2", '"b": 9.0', '"b": -6.0', "du/db is a"),
    ("1.2", '"c": 3.0', '"c": -1.0', "dL/dv is a"),
    ("1.2", '"a": -7.0', '"a": -8.0', "dL/da = -8 is too low"),
    ("1.3", "m_hat = m / (1 - BETA1 ** (step + 1))", "m_hat = m", "without bias correction"),
    ("1.3", "v_hat**0.5 + EPS_ADAM", "(v_hat + EPS_ADAM) ** 0.5", "eps inside the square root"),
    ("1.3", "** (step + 1))", "** step)", "the correction is 1 - beta^(step + 1)"),
    ("1.3", "lr_t = LEARNING_RATE * (1 - step / num_steps)", "lr_t = LEARNING_RATE", "no learning-rate decay"),
    ("1.3", "(1 - BETA2) * g * g", "(1 - BETA2) * g", "v averages g, not g^2"),
    ("1.4", "sum(xi * xi for xi in x) / len(x)", "(sum(x) / len(x)) ** 2", "the mean of x, squared"),
    ("1.4", "scale = (mean_square + RMSNORM_EPS) ** -0.5", "scale = 1 / (mean_square ** 0.5 + RMSNORM_EPS)",
     "eps goes inside the square root"),
    ("1.4", "sum(xi * xi for xi in x) / len(x)", "sum(xi * xi for xi in x)", "a sum where the mean is due"),
    ("1.4", "** -0.5", "** 0.5", "where ** -0.5 is due"),
    ("1.4", "return [xi * scale for xi in x]", "return [Value(xi.data * scale.data) for xi in x]",
     "not connected to x"),
    ("2.1", "gn = g * w", "gn = g", "the gain is missing from dL/dx"),
    ("2.1", "dx = r * (gn - n", "dx = (gn - n", "without the factor r"),
    ("2.1", "dx = r * (gn - n * (gn * n).sum(axis=-1, keepdims=True) / C)", "dx = r * gn",
     "the second term) is missing"),
    ("2.1", "dw = (g * n).reshape(-1, C).sum(axis=0)", "dw = g * n", "every row uses the same w"),
    ("2.1", "dw = (g * n)", "dw = (g * x)", "the gain multiplies the normalized rows"),
    ("2.1", "(gn * n).sum(axis=-1, keepdims=True) / C", "(gn * n).mean()", "not per row"),
    ("2.1", "(gn * n).sum(axis=-1, keepdims=True) / C", "(gn * n).sum(axis=-1, keepdims=True) / 16",
     "a hard-coded width of 16"),
    ("2.1", "(gn * n).sum(axis=-1, keepdims=True)", "(gn * n).sum(axis=-1, keepdims=False)",
     "without keepdims=True drops that axis"),
    ("2.2", "return d_logits / real.sum()", "return d_logits", "not divided by the number of real positions"),
    ("2.2", "return d_logits / real.sum()", "return d_logits / real.size", "which counts the padding"),
    ("2.2", "    d_logits[~real] = 0.0  # padding: no gradient\n", "", "the padding's gradient is not 0"),
    ("2.2", "    d_logits -= smoothing / V  # minus the target distribution: its even share ...\n", "",
     "the even share is missing"),
    ("2.2", "smoothing / V", "smoothing / (V - 1)", "the even share is smoothing / V"),
    ("2.2", "return d_logits / real.sum()", "return d_logits / len(real)", "the number of names"),
    ("2.2", "np.exp(logits - logits.max(axis=-1, keepdims=True))", "np.exp(logits)",
     "without subtracting each row's max first"),
    ("2.3", "dv = P.transpose(0, 1, 3, 2) @ g", "dv = P @ g", "P needs its transpose"),
    ("2.3", "dk = t * dS.transpose(0, 1, 3, 2) @ q", "dk = t * dS @ q", "dS needs its transpose"),
    ("2.3", "dq = t * dS @ k", "dq = dS @ k", "without tau: S = tau q k^T"),
    ("2.3", "dq = t * dS @ k", "dq = dS @ k / np.sqrt(k.shape[-1])", "1/sqrt(D) where tau is due"),
    ("2.3", "dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))", "dS = P * dP", "without subtracting rowsum"),
    ("2.3", "(dP * P).sum(axis=-1", "(dP * P).sum(axis=-2", "the rowsum over the wrong axis"),
    ("2.3", "(dS * (q @ k.transpose(0, 1, 3, 2)))", "dS", "the sum of dL/dS alone"),
    ("2.3", "(dS * (q @ k.transpose(0, 1, 3, 2)))", "(dP * (q @ k.transpose(0, 1, 3, 2)))",
     "dL/dP where dL/dS is due"),
    ("2.3", "(dS * (q @ k.transpose(0, 1, 3, 2)))", "(dS * (t * q @ k.transpose(0, 1, 3, 2)))",
     "tau q k^T where q k^T is due"),
    ("2.3", ".sum(axis=(0, 2, 3))", ".sum()", "summed over the heads too"),
    ("2.3", ".sum(axis=(0, 2, 3))", ".sum(axis=(2, 3)).mean(axis=0)", "the mean over the names"),
    ("2.4", "np.arange(T)[None, :] < np.array(n)", "np.arange(T)[None, :] <= np.array(n)", "one position too many"),
    ("2.4", "T = max(n)", "T = block_size", "padded to block_size"),
    ("2.4", "real = np.arange(T)[None, :] < np.array(n)[:, None]",
     "real = (np.arange(T)[None, :] < np.array(n)[:, None]).astype(int)", "expected a bool dtype"),
    ("2.4", "inputs = np.zeros((len(batch), T), dtype=np.int64)",
     "inputs = np.zeros((len(batch), T), dtype=np.float64)", "inputs: dtype float64, expected an integer"),
    ("2.4", "n = [positions(tokens, block_size) for tokens in batch]", "n = [len(tokens) - 1 for tokens in batch]",
     "still trains only block_size positions"),
    ("2.4", "targets[b, :n[b]] = tokens[1:n[b] + 1]", "targets[b, :n[b]] = tokens[:n[b]]",
     "targets are the inputs shifted by one"),
    ("3.1", " / math.sqrt(D)", "", "without the 1/sqrt(D) scale"),
    ("3.1", " / math.sqrt(D)", " / D", "divided by D, not sqrt(D)"),
    ("3.1", '.masked_fill(~causal, float("-inf"))', "", "no causal mask"),
    ("3.1", ".softmax(dim=-1)", ".softmax(dim=-2)", "the softmax over the wrong dimension"),
    ("3.1", ".tril()", ".tril(-1)", "hides the diagonal"),
    ("3.1", ".tril()", ".triu()", "the mask upside down"),
    ("3.2", "return r * (g - y", "return (g - y", "without the factor r"),
    ("3.2", "return r * (g - y * (g * y).mean(-1, keepdim=True))", "return r * g", "the second term) is missing"),
    ("3.2", "ctx.save_for_backward(y, r)", "ctx.save_for_backward(x, r)", "x where y is due"),
    ("3.2", "torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS)", "1 / (x.pow(2).mean(-1, keepdim=True).sqrt() + EPS)",
     "eps goes inside the square root"),
    ("3.2", "(g * y).mean(-1, keepdim=True)", "(g * y).mean(0, keepdim=True)", "the mean over the wrong dimension"),
    ("3.3", "= 197_280", "= 65_760", "the forward pass only"),
    ("3.3", "= 197_280", "= 98_640", "that counts multiply-adds"),
    ("3.3", "= 197_280", "= 105_120", "off by one layer"),
    ("3.3", "= 197_280", "= 184_320", "the lm_head"),
    ("3.3", "= 197_280", "= 157_824", "a name of 4 letters trains 4 + 1"),
    ("3.3", "= 197_280", "= 631_296", "pads a batch to its longest name"),
    ("3.3", "= 197_280", "= 206_880", "attention's own products"),
    ("3.3", "= 197_280", "= 197_281", "is too high"),
    ("3.4", "PADDING = -100", "PADDING = 0", "targets padded with 0"),
    ("3.4", "tokens[:k] + [0] * (T - k)", "tokens[:k] + [PADDING] * (T - k)", "(-100 is the targets' padding)"),
    ("3.4", "for tokens, k in zip(batch, n)], dtype=torch.long)\n    return",
     "for tokens, k in zip(batch, n)], dtype=torch.int32)\n    return", "expected torch.long"),
    ("3.4", "T = max(n)", "T = block_size", "padded to block_size"),
    ("3.4", "tokens[1:k + 1]", "tokens[:k]", "targets are the inputs shifted by one"),
    ("4.1", "z = tl.load(z_ptr + offsets)", "z = tl.load(x_ptr + offsets)", "both loads read x_ptr"),
    ("4.1", "offsets = tl.arange(0, BLOCK)", "offsets = tl.arange(0, BLOCK) + 1",
     "loaded x_ptr at offset 1, past the end (1 element): mask the load"),
    ("4.1", "tl.store(y_ptr + offsets, x + z)", "tl.store(x_ptr + offsets, x + z)", "nothing was stored there"),
    ("4.1", "x + z)", "x - z)", "x - z: the sign"),
    ("4.1", "add_kernel[(1,)]", "add_kernel[(4,)]", "4 programs, each over the whole block"),
    ("4.2", "tl.store(y_ptr + offsets, a * x + b, mask=mask)", "tl.store(y_ptr + offsets, a * x + b)",
     "stored y_ptr at offset 1, past the end (1 element) (and 62 more lanes outside it): mask the store"),
    ("4.2", "tl.program_id(0) * BLOCK + tl.arange", "tl.arange", "nothing was stored there"),
    ("4.2", "mask = offsets < N", "mask = offsets <= N", "the load's mask lets this lane through"),
    ("4.2", "a * x + b, mask", "a * (x + b), mask", "the multiply comes first"),
    ("4.3", "cols[None, :] * M + rows[:, None]", "rows[:, None] * N + cols[None, :]", "x's numbers in x's order"),
    ("4.3", "cols[None, :] * M + rows[:, None]", "cols[None, :] * N + rows[:, None]",
     "stored y_ptr at offset 2, past the end (2 elements)"),
    ("4.3", "mask = (rows[:, None] < M) & (cols[None, :] < N)", "mask = rows[:, None] < M",
     "loaded x_ptr at offset 1, past the end (1 element)"),
    ("4.3", ", mask=mask)  # x[i, j]", ")  # x[i, j]", "mask the load"),
    ("4.3", "rows = tl.program_id(0)", "rows = tl.program_id(1)", "on M=17, N=1 (seed"),  # the grid's axes swapped:
    ("4.4", 'other=float("-inf")', "other=0.0", "load it as -inf"),  # the smallest case, shrunk from a larger one
    ("4.4", "tl.exp(x - tl.max(x, axis=0))", "tl.exp(x)", "without subtracting the row's max"),
    ("4.4", "e / tl.sum(e, axis=0), mask=mask)", "e / tl.sum(e, axis=0))", "mask the store"),
    ("4.4", "row * C + cols", "row * BLOCK_C + cols", "past the end"),
    ("4.5", "y * (g - tl.sum(g * y, axis=0))", "y * (1 - y) * g", "the diagonal of the Jacobian only"),
    ("4.5", "tl.sum(g * y, axis=0))", "tl.sum(g, axis=0))", "the sum is of g_i y_i"),
    ("4.5", "y * (g - tl.sum(g * y, axis=0))", "g - tl.sum(g * y, axis=0)", "not multiplied by y"),
    ("4.5", "tl.sum(g * y, axis=0))", "tl.sum(g * y, axis=0) / C)", "the mean of g y instead of its sum"),
    ("4.5", "dx, mask=mask)", "dx)", "mask the store"),
    ("4.5", "mask=mask, other=0.0)", "mask=mask)", "a masked load without other="),
    ("4.6", "(m / bias1) / (tl.sqrt(v / bias2) + eps)", "m / (tl.sqrt(v) + eps)", "without bias correction"),
    ("4.6", "(tl.sqrt(v / bias2) + eps)", "tl.sqrt(v / bias2 + eps)", "sqrt(v / bias2 + eps): eps goes outside"),
    ("4.6", "    tl.store(m_ptr + offsets, m, mask=mask)  # the moments carry over to the next step\n"
            "    tl.store(v_ptr + offsets, v, mask=mask)\n", "", "not stored back"),
    ("4.6", "(1 - beta2) * g * g", "(1 - beta2) * g", "v averaging g: it averages g^2"),
    ("4.6", ", mask=mask", "", "mask the load"),  # every mask removed
    ("4.6", "** (step + 1)", "** step", "at step 0 that is 0"),
    ("4.7", "acc = tl.maximum(acc, 0.0)", "acc = acc", "without the ReLU"),
    ("4.7", "acc += tl.dot(x, tl.trans(w), input_precision=\"ieee\")",
     "acc = tl.maximum(acc + tl.dot(x, tl.trans(w), input_precision=\"ieee\"), 0.0)", "the ReLU inside the loop"),
    ("4.7", "tl.trans(w)", "w", "needs tl.trans"),
    ("4.7", "mask=(rows[:, None] < M) & (ks[None, :] < K), other", "mask=rows[:, None] < M, other",
     "loaded x_ptr"),
    ("4.7", "acc, mask=(rows[:, None] < M) & (cols[None, :] < N))", "acc)", "mask the store"),
    ("4.7", "acc = tl.maximum(acc, 0.0)  #", "x = x  #", None),  # with the ReLU on x's tile, below
    ("4.7", ', input_precision="ieee"', "", "TF32"),
    ("4.8", "= 79", "= 65", "past the 256 rows one program sums"),
    ("4.8", "= 79", "= 71", "a one-layer step's"),
    ("4.8", "= 79", "= 77", "lm_head's dW and the embedding's sum over the batch's rows too"),
    ("4.8", "= 79", "= 83", "summed once per step, not per layer"),
    ("4.8", "= 79", "= 105", "do not repeat per layer"),
    ("4.8", "= 79", "= 57", "off by one layer: that is a two-layer step"),
    ("4.8", "= 79", "= 101", "off by one layer: that is a four-layer step"),
    ("4.8", "= 79", "= 11 + 3 * 18 + 4 * 3 + 3", "= 80 is too high"),  # arithmetic on numbers is a number
    ("4.8", "= 79", "= 78", "= 78 is too low"),
    ("5.1", "        exchange(send, arriving, rank, world)\n", "        received = torch.empty_like(arriving)\n"
     "        exchange(send, received, rank, world)\n        arriving += received\n",
     "the all-gather adding what arrives"),
    ("5.1", "    for step in range(world - 1):  # all-gather", "    for step in range(0):  # all-gather",
     "the reduce-scatter alone"),
    ("5.1", "    sending = dist.isend(send, (rank + 1) % world)\n"
     "    receiving = dist.irecv(receive, (rank - 1) % world)\n    sending.wait()\n    receiving.wait()",
     "    dist.send(send, (rank + 1) % world)\n    dist.recv(receive, (rank - 1) % world)",
     "each waits for another"),  # every rank sends first: a deadlock
    ("5.1", "    chunks = buffer.tensor_split(world)", "    passing, total = buffer.clone(), buffer.clone()\n"
     "    for _ in range(world - 1):\n        received = torch.empty_like(passing)\n"
     "        exchange(passing, received, rank, world)\n        total += received\n        passing = received\n"
     "    buffer.copy_(total)\n    return\n    chunks = buffer.tensor_split(world)",
     "each rank passed its whole buffer around"),  # right sums, N - 1 whole buffers per rank
    ("5.2", "return (positions / step).tolist()",
     "return [1 / (dist.get_world_size() * len(micro_targets))] * len(micro_targets)", "1/(N k) for every micro-batch"),
    ("5.2", "    dist.all_reduce(step)  # ... summed over the ranks: the step's\n", "",
     "this rank's own positions as the whole"),
    ("5.2", "float((targets != PADDING).sum())", "float(len(targets))", "names counted, not positions"),
    ("5.2", "float((targets != PADDING).sum())", "float(targets.numel())", "the padding counted"),
    ("5.3", "    m.mul_(BETA1)", "    g /= dist.get_world_size()\n    m.mul_(BETA1)", "not their mean"),
    ("5.3", "dist.reduce_scatter_single(g, grads)", "g.copy_(grads[rank * S:(rank + 1) * S])",
     "this rank's own gradients"),
    ("5.3", "** (step + 1))", "** step)", "beta^step"),
    ("5.3", "/ (1 - BETA", "/ (1 + 0 * BETA", "Adam without its bias correction"),
    ("5.3", "    dist.all_gather_single(weights, shard)", "    weights[rank * S:(rank + 1) * S] = shard",
     "only this rank's shard updated"),
    ("5.3", "(v_hat.sqrt() + EPS_ADAM)", "(v_hat + EPS_ADAM).sqrt()", "eps goes outside the square root"),
    ("5.4", "= 2 * (4 - 1) * (4192 + 1) * 4", "= 25158", "one rank's share"),
    ("5.4", "= 2 * (4 - 1) * (4192 + 1) * 4", "= 50316", "one phase alone"),
    ("5.4", "= 2 * (4 - 1) * (4192 + 1) * 4", "= 2 * 3 * 4192 * 4", "the step's loss rides in it"),
    ("5.4", "= 2 * (4 - 1) * (4192 + 1) * 4", "= 201264", "either float64"),
    ("5.4", "= 2 * (4 - 1) * (4192 + 1) * 4", "= 134176", "2N steps"),
    ("5.4", "= 2 * (4 - 1) * (4192 + 1) * 4", "= 100633", "= 100633 is too high"),
]


def slipped(number: str, right: str, slip: str) -> str:
    wrong = edited(number, right, slip)
    if number == "1.3" and slip == "m_hat = m":  # Adam without bias correction: neither moment corrected
        wrong = wrong.replace("v_hat = v / (1 - BETA2 ** (step + 1))", "v_hat = v")
    if number == "4.7" and slip == "x = x  #":  # the ReLU on x's tile instead of the finished one
        wrong = wrong.replace("        w = tl.load", "        x = tl.maximum(x, 0.0)\n        w = tl.load")
    return wrong


# Answers that call the chapter's own version of the answer, or count what they were to predict
# (exercise: code replacing the solution's text (right, wrong), or a whole file).
BYPASSES = {
    "1.2": 'from chapters import load\nValue = load("1_pure_python").Value\na, b, c = Value(3.0), Value(-2.0), '
           'Value(5.0)\nL = ((a * b) + c) * a\nL.backward()\nGRADIENTS = {"a": a.grad, "b": b.grad, "c": c.grad}\n',
    "1.3": ("return p - lr_t * m_hat / (v_hat**0.5 + EPS_ADAM), m, v",
            "w, mm, vv = stage1.Value(p), [m], [v]\n    w.grad = g\n    stage1.adam_step([w], mm, vv, step, "
            "num_steps)\n    return w.data, mm[0], vv[0]"),
    "1.4": ("return [xi * scale for xi in x]", "return stage1.rmsnorm(x)"),
    "2.1": ("C = x.shape[-1]\n", "from chapters import load\n    s = load(\"2_numpy\")\n    t = s.Tensor(x)\n"
            "    s.rmsnorm(t)._backward(g * w)\n    C = x.shape[-1]\n"),
    "2.2": ("e = np.exp(", "from chapters import load\n    s = load(\"2_numpy\")\n    t = s.Tensor(logits)\n"
            "    s.cross_entropy(t, targets, real)._backward(1.0)\n    return t.grad\n    e = np.exp("),
    "2.3": ("dv = P.transpose", "from torch.nn import functional\n    functional.softmax\n    dv = P.transpose"),
    "2.4": ("n = [positions", "from chapters import load\n    return load(\"2_numpy\").batch_arrays(batch, "
            "block_size)\n    n = [positions"),
    "3.1": ("T, D = q.shape[-2], q.shape[-1]",
            "return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)"),
    "3.2": ("r = torch.rsqrt(", "return torch.nn.functional.rms_norm(x, (x.shape[-1],), eps=EPS)\n"
            "        r = torch.rsqrt("),
    "3.3": "from torch.utils.flop_counter import FlopCounterMode\n\n\ndef count():\n    with FlopCounterMode("
           "display=False) as flops:\n        pass\n    return flops.get_total_flops()\n\n\n"
           "MATMUL_FLOPS_AT_TWO_LAYERS = count()\n",
    "3.4": ("n = [positions", "from chapters import load\n    return load(\"3_pytorch\").batch_tensors(batch, "
            "block_size, \"cpu\")\n    n = [positions"),
    "4.1": ("    return y\n", "    return x + z\n"),
    "4.5": ("    return dx\n", "    return y * (g - (g * y).sum(-1, keepdim=True))\n"),
    "4.6": ("    lr_t = lr *", "    torch.optim.Adam([p])\n    lr_t = lr *"),
    "4.7": ("    return y\n", "    return torch.relu(x @ w.T)\n"),
    "4.8": "from kernels import kernels_per_step\nLAUNCHES_AT_THREE_LAYERS_17_NAMES = kernels_per_step(3, 17)\n",
    "5.1": ("    rank, world = dist.get_rank()",
            "    dist.all_reduce(buffer)\n    return\n    rank, world = dist.get_rank()"),
    "5.3": ("    rank, S = dist.get_rank(), len(m)",
            "    torch.optim.Adam([weights])\n    rank, S = dist.get_rank(), len(m)"),
    "5.4": "from checker.chapter5 import hand_step_all_reduces, ring_bytes\n\n"
           "RING_BYTES_PER_STEP_AT_FOUR_RANKS = ring_bytes(hand_step_all_reduces())\n",
}


def bypassed(number: str) -> str:
    bypass = BYPASSES[number]
    return bypass if isinstance(bypass, str) else edited(number, *bypass, count=1)


TANH_BODY = "    t = math.tanh(x.data)\n    return Value(t, (x,), (1 - t * t,))"


def tanh_with(body: str | None = None, top: str = "") -> str:
    """1.1's solution with tanh's body replaced, and `top` run when the file loads."""
    source = solution("1.1").replace("Value = load", top + "Value = load") if top else solution("1.1")
    return source.replace(TANH_BODY, body.rstrip("\n")) if body else source


# Ways of passing without answering, each tried from outside the checker
# (name: (exercise, the file, what its refusal line says)).
ATTEMPTS = {
    "a forged verdict": ("1.1", tanh_with(top=(
        "import os, socket, stat\nfrom checker import wire\n"
        "print('ok: 1.1 -- tanh\\'s value and gradient at 7 points from -20 to 20 against math.tanh, as one node')\n"
        "for fd in range(3, 64):\n    try:\n        if stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
        "            wire.send(socket.socket(fileno=fd), {'ok': {'status': 'ok', 'line': 'ok: 1.1'}})\n"
        "    except OSError:\n        pass\nos._exit(0)\n")), "your code ended the process (exit status 0)"),
    "a forged reply": ("1.1", tanh_with(
        "    import os, socket, stat\n    from checker import wire\n    for fd in range(3, 64):\n        try:\n"
        "            if stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
        "                wire.send(socket.socket(fileno=fd), {'ok': {'result': 0.5, 'launches': 'all of them'}})\n"
        "        except OSError:\n            pass\n    os._exit(0)\n"),
        "your code's process sent the check a reply that does not read as one"),
    "the checker patched": ("1.1", tanh_with(top=(
        "import checker.chapter1\nchecker.chapter1.check_tanh = lambda learner: 'ok'\n")),
        "your code opened exercises/checker/chapter1.py: the checker's own code is not the answer's to call"),
    "the expected value peeked at": ("3.1", edited("3.1", "def explicit_attention(", (
        "class Peek(torch.Tensor):  # whoever reads my numbers gets the expected ones, if a frame holds them\n"
        "    def detach(self):\n        frame = sys._getframe(1)\n        while frame is not None:\n"
        "            if isinstance(frame.f_locals.get('expected'), torch.Tensor):\n"
        "                return frame.f_locals['expected'].detach()\n            frame = frame.f_back\n"
        "        return torch.Tensor.detach(self)\n\n\n"
        "def explicit_attention("), count=1).replace("    T, D = q.shape[-2], q.shape[-1]\n", (
        "    return (q * 0).as_subclass(Peek)\n    T, D = q.shape[-2], q.shape[-1]\n"), 1), "y[0, 0, 0, 0]: expected"),
    "the worked solution imported": ("2.1", edited("2.1", "    C = x.shape[-1]\n", (
        "    from solutions.ch2.rmsnorm_backward import rmsnorm_backward as solved\n"
        "    return solved(g, x, w)\n"), count=1),
        "your code opened exercises/solutions/ch2/rmsnorm_backward.py: the worked solutions are for after"),
    "a second copy of the chapter": ("1.3", edited("1.3", "    lr_t = LEARNING_RATE", (
        "    import importlib.util\n    import chapters\n"
        "    spec = importlib.util.spec_from_file_location('copy', chapters.REPO_ROOT / '1_pure_python' / 'main.py')\n"
        "    chapter = importlib.util.module_from_spec(spec)\n    spec.loader.exec_module(chapter)\n"
        "    lr_t = LEARNING_RATE"), count=1),
        "your code opened 1_pure_python/main.py: a second copy of 1_pure_python's code"),
    "an aten op": ("3.1", edited("3.1", "T, D = q.shape[-2], q.shape[-1]", (
        "return torch.ops.aten._scaled_dot_product_attention_math(q, k, v, is_causal=True)[0]"), count=1),
        "your code used PyTorch's scaled dot-product attention (_scaled_dot_product_attention_math): write it "
        "yourself"),
    "NumPy in a launcher": ("4.1", edited("4.1", "    tl.store(y_ptr + offsets, x + z)\n", "", count=1).replace(
        "    add_kernel[(1,)](x, z, y, BLOCK=x.numel())\n",
        "    add_kernel[(1,)](x, z, y, BLOCK=x.numel())  # a kernel that stores nothing, under the stub's name\n"
        "    y = torch.from_numpy(x.numpy() + z.numpy())\n"),
        "your launcher read a tensor's numbers on the host (Tensor.numpy()): the arithmetic is the kernel's"),
    "np.asarray in a launcher": ("4.2", edited("4.2", "    y = torch.empty_like(x)\n", (
        "    import numpy as np\n    y = torch.empty_like(x)\n    y.copy_(torch.tensor(a * np.asarray(x) + b))\n"),
        count=1), "your launcher read a tensor's numbers on the host (np.asarray or np.array of a tensor)"),
    "an always-equal number": ("4.8", (
        "class Same(float):\n    def __eq__(self, other):\n        return True\n\n\n"
        "LAUNCHES_AT_THREE_LAYERS_17_NAMES = Same(0)\n"), "`Same(0)` is not a number written in the file"),
    "always-equal floats from a function": ("1.3", edited("1.3", "    lr_t = LEARNING_RATE", (
        "    class Same(float):\n        def __eq__(self, other):\n            return True\n\n"
        "        def __ne__(self, other):\n            return False\n\n"
        "    return Same(0.0), Same(0.0), Same(0.0)\n    lr_t = LEARNING_RATE"), count=1), "m after step 1: expected"),
    "the checker's own counter": ("4.8", (
        "from checker.chapter4 import launches_per_step\n\n"
        "LAUNCHES_AT_THREE_LAYERS_17_NAMES = launches_per_step(3, 17)\n"),
        "`launches_per_step(3, 17)` is not a number written in the file (it is a call)"),
    "the checker's counter, imported": ("4.7", edited("4.7", "BLOCK = 16\n", (
        "BLOCK = 16\nfrom checker.chapter4 import launches_per_step  # noqa\n"), count=1),
        "your code opened exercises/checker/chapter4.py"),
}

# What an answer may do to the process it runs in (issue 38), and what the check then says:
# (exercise, the file, the status, what the line says).
FAULTS = {
    "a non-daemon thread left sleeping": ("1.1", tanh_with(top=(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(3131,), daemon=False).start()\n")),
        "ok", "ok: 1.1"),
    "a program started": ("1.1", tanh_with("    import subprocess\n    subprocess.Popen(['sleep', '3131'])\n"
                                           + TANH_BODY), "not yet",
                          "your code started a program (sleep): an answer computes in its own process"),
    "KeyboardInterrupt raised": ("1.1", tanh_with("    raise KeyboardInterrupt\n"), "not yet",
                                 "your code raised KeyboardInterrupt in tanh (tanh.py, line"),
    "children as a list": ("1.1", tanh_with("    t = math.tanh(x.data)\n    return Value(t, [x], [1 - t * t])"),
                           "ok", "ok: 1.1"),
    "Fractions for 1.2": ("1.2", "from fractions import Fraction\n\nGRADIENTS = {'a': Fraction(-14, 2), "
                                 "'b': Fraction(9), 'c': 3 * Fraction(1)}\n", "ok", "ok: 1.2"),
    "numpy float64s for 1.3": ("1.3", edited("1.3", "    return p - lr_t", (
        "    import numpy as np\n    return np.float64(p - lr_t * m_hat / (v_hat**0.5 + EPS_ADAM)), np.float64(m), "
        "v\n    return p - lr_t"), count=1), "ok", "ok: 1.3"),
}
FAULTS.update({  # and what an answer does to its own process
    "aborts": ("1.1", tanh_with("    import os\n    os.abort()\n"), "not yet", "made the process abort"),
    "segfaults": ("1.1", tanh_with("    import ctypes\n    ctypes.string_at(0)\n"), "not yet", "segmentation fault"),
    "exits while loading": ("1.1", tanh_with(top="sys.exit(0)\n"), "not yet", "called sys.exit(0) while loading"),
    "raises SystemExit": ("1.1", tanh_with("    raise SystemExit\n"), "not yet", "called sys.exit(None) in tanh"),
    "calls os._exit": ("1.1", tanh_with("    import os\n    os._exit(0)\n"), "not yet",
                       "ended the process (exit status 0)"),
    "recurses forever": ("1.1", tanh_with("    return tanh(x)\n"), "not yet", "RecursionError in tanh"),
    "loops": ("1.1", tanh_with("    while True:\n        pass\n"), "not yet", "did not finish within 2 s"),
    "one rank raises": ("5.1", edited("5.1", "    chunks = buffer", "    if rank == 1:\n        raise ValueError("
                                      "'no ring today')\n    chunks = buffer", count=1), "not yet",
                        "raised ValueError in ring_all_reduce on rank 1"),  # not the others' lost connections
    "one rank ends its process": ("5.1", edited("5.1", "    chunks = buffer", "    if rank == 1:\n        import os\n"
                                                "        os._exit(3)\n    chunks = buffer", count=1), "not yet",
                                  "your code ended rank 1's process (exit status 3) in ring_all_reduce"),
    "the sum returned, not written": ("5.1", edited("5.1", "    rank, world = dist", "    return buffer * 3\n"
                                                    "    rank, world = dist", count=1), "not yet",
                                      "every rank's buffer is unchanged"),
    "a tensor of weights": ("5.2", edited("5.2", "(positions / step).tolist()", "positions / step"), "ok", "ok: 5.2"),
    "float32 weights": ("5.2", edited("5.2", "dtype=torch.float64", "dtype=torch.float32"), "ok", "ok: 5.2"),
    "a list of 0-d tensors": ("5.2", edited("5.2", "(positions / step).tolist()", "list(positions / step)"), "ok",
                              "ok: 5.2"),
})
FORKED = "os.fork() left running"  # the answer forks; the copy must not outlive the check
OUT_OF_BOUNDS_RUNS = 10  # a store past the end, checked this many times: the same message every time


STUB_TEST = "test_every_committed_stub_is_not_written_yet"


@pytest.fixture(scope="session")
def answers(request, tmp_path_factory) -> dict:
    """{(kind, key): result} of every answer above, and of the committed stubs, checked in one
    batch of the checker's; where only stub tests are selected (-k committed_stub), only those
    stubs."""
    folder = tmp_path_factory.mktemp("answers")
    jobs, keys = [], []

    def add(key, number: str, source: str, pictures: bool = False):
        keys.append(key)
        path = write(folder / "-".join(map(str, key)).replace(" ", "_"), number, source)
        jobs.append({"kind": "check", "number": number, "path": str(path), "pictures": pictures})

    selected = [item for item in request.session.items if "answers" in getattr(item, "fixturenames", ())]
    for number in {item.callspec.params["number"] for item in selected if item.originalname == STUB_TEST}:
        add(("stub", number), number, stub(number))
    if all(item.originalname == STUB_TEST for item in selected):
        return dict(zip(keys, batch(jobs, folder)))
    for exercise in CATALOG:
        add(("solution", exercise.number), exercise.number, solution(exercise.number))
    for i, (number, right, slip, _) in enumerate(SLIPS):
        add(("slip", i), number, slipped(number, right, slip))
    for number in BYPASSES:
        add(("bypass", number), number, bypassed(number))
    for name, (number, source, _) in ATTEMPTS.items():
        add(("attempt", name), number, source)
    for name, (number, source, _, _) in FAULTS.items():
        add(("fault", name), number, source)
        if name == "loops":
            jobs[-1]["time_limit"] = 2
    pid_file = folder / "forked.pid"
    add(("fault", FORKED), "1.1", tanh_with(top=(
        f"import os, time\nif os.fork() == 0:\n    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        f"    time.sleep(3131)\n    os._exit(0)\n")))
    add(("picture",), "2.3", slipped("2.3", "dv = P.transpose(0, 1, 3, 2) @ g", "dv = P @ g"), pictures=True)
    out_of_bounds = slipped("4.2", "tl.store(y_ptr + offsets, a * x + b, mask=mask)",
                            "tl.store(y_ptr + offsets, a * x + b)")
    for run in range(OUT_OF_BOUNDS_RUNS):
        add(("out of bounds", run), "4.2", out_of_bounds)
    results = dict(zip(keys, batch(jobs, folder, env={"MICROGPT_EXERCISES_OUT": str(folder / "out")})))
    results["forked pid"] = int(pid_file.read_text()) if pid_file.exists() else None
    results["out"] = folder / "out"
    return results


@pytest.mark.parametrize("number", list(BY_NUMBER))
def test_every_worked_solution_as_committed_passes(number, answers):
    result = answers["solution", number]
    assert result["status"] == "ok" and result["line"].startswith(f"ok: {number} -- "), result


def test_an_ok_line_says_what_was_checked_word_for_word(answers):
    """4.2's ok line: the lengths it ran, and how they meet the answer's BLOCK."""
    assert answers["solution", "4.2"]["line"] == (
        "ok: 4.2 -- y = a x + b for 8 lengths from 1 to 2,323, bounds-checked; with your BLOCK = 64, 7 of them end "
        "partway through the last block (64 fills it exactly)")


@pytest.mark.parametrize("index", range(len(SLIPS)), ids=[f"{s[0]}-{i}" for i, s in enumerate(SLIPS)])
def test_a_slip_is_caught_and_named(index, answers):
    number, _, slip, named = SLIPS[index]
    named = named or {"4.7": "the ReLU on the inputs (x's tile), relu(x) W^T"}[number]
    result = answers["slip", index]
    assert result["status"] == "not yet" and result["line"].startswith(f"not yet: {number} -- "), result
    assert named in result["line"], result["line"]
    assert "your code raised" not in result["line"] or "--" in result["line"].split("your code raised")[1], \
        f"a slip the checker should name reads as a bare error: {result['line']}"


def test_every_exercise_has_three_named_slips():
    counts = {e.number: sum(s[0] == e.number for s in SLIPS) for e in CATALOG}
    assert min(counts.values()) >= 3, counts


def test_a_failure_with_many_wrong_numbers_shrinks_to_the_smallest_case(answers):
    """4.3 with the grid's axes swapped leaves some rows unstored: every case fails with 'N of M
    numbers differ', N and M different in each, and shrinking still reaches 17 x 1, the smallest
    matrix taller than one tile and as narrow as can be (the counts are not part of the failure's kind)."""
    index = next(i for i, s in enumerate(SLIPS) if s[2] == "rows = tl.program_id(1)")
    line = answers["slip", index]["line"]
    assert line.startswith("not yet: 4.3 -- on M=17, N=1 (seed") and ", shrunk from " in line, line
    assert "nothing was stored there" in line, line


@pytest.mark.parametrize("number", list(BYPASSES))
def test_an_answer_that_calls_the_chapters_own_version_fails(number, answers):
    result = answers["bypass", number]
    assert result["status"] == "not yet", result
    assert "write it yourself" in result["line"] or "predict first" in result["line"], result["line"]


@pytest.mark.parametrize("name", list(ATTEMPTS))
def test_a_way_of_passing_without_answering_is_refused_in_one_line(name, answers):
    number, _, said = ATTEMPTS[name]
    result = answers["attempt", name]
    assert result["status"] == "not yet" and result["line"].startswith(f"not yet: {number} -- "), result
    assert said in result["line"] and "\n" not in result["line"], result["line"]


@pytest.mark.parametrize("name", list(FAULTS))
def test_what_an_answer_does_to_its_process_ends_in_one_line(name, answers):
    number, _, status, said = FAULTS[name]
    result = answers["fault", name]
    assert result["status"] == status and said in result["line"], result
    assert result["seconds"] < 60, result  # a thread or a program left behind is not waited for


def test_a_process_the_answer_forked_does_not_outlive_the_check(answers):
    assert answers["fault", FORKED]["status"] == "ok", answers["fault", FORKED]
    pid = answers["forked pid"]
    assert pid, "the answer's fork did not run"
    for _ in range(100):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)  # the process this test's answer started, by its id
    pytest.fail(f"process {pid}, forked by the answer, outlived the check")


def test_an_out_of_bounds_store_is_the_same_clear_message_on_every_run(answers):
    lines = {answers["out of bounds", run]["line"] for run in range(OUT_OF_BOUNDS_RUNS)}
    assert len(lines) == 1, lines
    (line,) = lines
    said = line.split(" -- ", 1)[1]  # what exercises/README.md quotes
    assert said.startswith("on N=1 (seed 0): program (0,) stored y_ptr at offset 1, past the end (1 element)")
    assert said.split(": ", 1)[1] in (EXERCISES / "README.md").read_text().replace("\n  ", " ")


def test_a_wrong_array_is_drawn_and_its_numbers_said_precisely(answers):
    result = answers["picture",]
    line = result["line"]
    assert line.startswith("not yet: 2.3 -- on B=1, H=1, T=2, D=") and "dv[" in line and "P needs its transpose" \
        in line, line
    assert "difference" in line and "tolerance |yours - expected| <= 1e-10 + 1e-08·|expected|" in line
    picture = answers["out"] / "pictures" / "2.3.png"
    assert result["picture"] == str(picture) and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- the stubs, as committed


@pytest.mark.parametrize("number", list(BY_NUMBER))
def test_every_committed_stub_is_not_written_yet(number, answers):
    result = answers["stub", number]
    assert result["status"] == "not written" and result["line"].startswith(f"not written yet: {number} -- "), result


def squeezed(text: str) -> str:
    return "".join(text.split())


def skeleton(text: str) -> str:
    """Code with its names left out: `acc += tl.dot(x, w)` and `acc += tl.dot(x_tile, w_tile)` read alike."""
    return re.sub(r"[A-Za-z_][A-Za-z_0-9.]*", "_", squeezed(text))


def test_hints_come_one_at_a_time_and_none_is_a_line_of_a_committed_answer(tmp_path):
    env = {"MICROGPT_EXERCISES_OUT": str(tmp_path)}
    seen = [cli("2.3", "--hint", env=env).stdout for _ in range(4)]
    assert [s.split(":")[0] for s in seen] == ["hint 1 of 3 for 2.3", "hint 2 of 3 for 2.3", "hint 3 of 3 for 2.3",
                                               "hint 3 of 3 for 2.3"]
    readmes = squeezed("".join((REPO_ROOT / f).read_text() for f in ("exercises/README.md", "1_pure_python/README.md",
                                                                      "2_numpy/README.md", "3_pytorch/README.md",
                                                                      "4_triton/README.md")))
    # Chapter 4's README teaches kernels in the chapter's own code, so it may hold a line that kernels/ holds (the
    # code every reader may open, and which 4.5-4.7 ask to write again); beyond that, no line of an answer.
    kernels = squeezed("".join(p.read_text() for p in [*sorted((REPO_ROOT / "4_triton" / "kernels").glob("*.py")),
                                                       REPO_ROOT / "4_triton" / "fused_step.py"]))
    for exercise in CATALOG:
        given = {squeezed(line.split("#")[0]) for line in stub(exercise.number).splitlines()}
        answer = [line.split("#")[0] for line in solution(exercise.number).splitlines()
                  if not line.strip().startswith(("#", '"""', "import ", "from "))]
        answer = [line for line in answer if len(squeezed(line)) > 12 and squeezed(line) not in given]
        assert answer, exercise.number
        for where, text in [("stub", stub(exercise.number)), ("README", readmes)] + [
                (f"hint {i + 1}", h) for i, h in enumerate(exercise.hints)]:
            leaked = [line for line in answer if squeezed(line) in squeezed(text)
                      and not (where == "README" and squeezed(line) in kernels)]
            if where.startswith("hint"):  # nor the line with other names (x_tile for x)
                leaked += [line for line in answer if len(skeleton(line)) >= 12 and skeleton(line) in skeleton(text)]
            assert not leaked, (exercise.number, where, leaked)


def test_the_hint_counter_survives_garbage_and_twelve_calls_at_once(tmp_path):
    hints = tmp_path / ".hints.json"
    env = {"MICROGPT_EXERCISES_OUT": str(tmp_path)}
    for garbage in ('{"1.1": -1}', '{"1.1": "two"}', '{"1.1": null}', '{"1.1": 1e400}', "[1, 2]", "{", '"x"'):
        hints.write_text(garbage)
        proc = cli("1.1", "--hint", env=env)
        assert proc.returncode == 0 and proc.stdout.startswith("hint 1 of 3 for 1.1: "), (garbage, proc.stdout,
                                                                                          proc.stderr)
        assert json.loads(hints.read_text())["1.1"] == 1, garbage
    hints.unlink()
    numbers = list(BY_NUMBER)[:12]
    procs = [subprocess.Popen([sys.executable, str(CHECK), number, "--hint"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env={**os.environ, **env}) for number in numbers]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    assert json.loads(hints.read_text()) == {number: 1 for number in numbers}


def test_a_reader_that_stops_reading_gets_no_traceback():
    """check.py 1.1 --hint 1 | head -0: the pipe is closed before the hint is written."""
    proc = subprocess.Popen([sys.executable, str(CHECK), "1.1", "--hint", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err


# --------------------------------------------------------------------------- the command line


def test_ten_megabytes_of_prints_get_one_clear_message_and_their_start(tmp_path):
    printing = one_message(cli("1.1", "--file", str(write(tmp_path, "1.1", tanh_with(
        "    for _ in range(10_000):\n        print('x' * 1000)\n" + TANH_BODY.replace("1 - t * t", "2.0"))))))
    assert printing.startswith("not yet: 1.1 -- ") and "--- your code printed 10,010,000 characters, the first " \
        "4,000 shown ---" in printing, printing


def test_a_problem_on_the_learners_side_is_one_line_not_a_checker_bug(tmp_path):
    text = tmp_path / "tanh.txt"
    text.write_text(solution("1.1"))
    proc = cli("1.1", "--file", str(text))
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {text} is not a Python file"), proc.stderr
    proc = cli("2.4", "--solution", env={"MICROGPT_DATA": str(tmp_path / "missing.txt")})
    assert proc.returncode == 1 and "missing.txt does not exist" in proc.stdout, proc.stdout + proc.stderr
    for said in (cli("1.1", "--file", str(text)), proc):
        assert "bug in the checker" not in said.stdout + said.stderr and "Traceback" not in said.stdout + said.stderr


def test_a_wrong_prediction_never_shows_the_answer_and_reveal_does(answers):
    for index, (number, *_) in enumerate(SLIPS):
        if number == "4.8":
            assert "79" not in answers["slip", index]["line"], answers["slip", index]["line"]
    revealed = cli("4.8", "--reveal")
    assert revealed.returncode == 0 and revealed.stdout.startswith("the answer to 4.8: 79."), revealed.stdout
    assert "(11 + 3 x 18 = 65); for 17 names, 79." in revealed.stdout and "4 x 3 + 2 = 14." in revealed.stdout


def test_the_doctor_says_this_machine_is_ready():
    proc = cli("--doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok    Triton's interpreter runs a kernel" in proc.stdout and "out-of-bounds stores are caught" in \
        proc.stdout and proc.stdout.rstrip().endswith("ready: every exercise can be checked here"), proc.stdout


def test_every_exercise_points_to_sections_that_exist():
    """A stub (as committed) or a hint that says "4_triton/README.md, 'Section'" or "chapter 4's
    README, 'Section'" names a heading of that README, in any chapter."""
    folders = {path.name[0]: path for path in REPO_ROOT.glob("[0-9]_*") if (path / "README.md").is_file()}
    for exercise in CATALOG:
        text = " ".join((stub(exercise.number) + " " + " ".join(exercise.hints)).split())
        pointers = list(re.finditer(r"(?:(\d)_[a-z_]+/README\.md|chapter (\d)'s README), '", text))
        assert pointers, f"{exercise.number}: no hint names a README section"
        for found in pointers:
            folder = folders[found.group(1) or found.group(2)]
            headings = re.findall(r"^## (.+)$", (folder / "README.md").read_text(), re.M)
            rest = text[found.end():]
            while True:  # 'A' and 'B': each of them
                heading = next((h for h in headings if rest.startswith(h + "'")), None)
                assert heading, f"{exercise.number} points to '{rest[:50]}...', not a heading of {folder.name}'s README"
                rest = rest[len(heading) + 1:]
                if not rest.startswith(" and '"):
                    break
                rest = rest[len(" and '"):]


def test_the_readmes_list_every_exercise_as_the_checker_knows_it():
    table = (EXERCISES / "README.md").read_text().replace("`", "")
    for exercise in CATALOG:
        assert f"| {exercise.number} | {exercise.title} | {exercise.kind} |" in table, exercise.number
        chapter = next(REPO_ROOT.glob(f"{exercise.chapter}_*/README.md")).read_text()
        assert f"- **{exercise.number}** — " in chapter and f"(`exercises/{exercise.file}`)" in chapter, exercise.number
        assert (EXERCISES / exercise.file).is_file() and (EXERCISES / "solutions" / exercise.file).is_file()


# --------------------------------------------------------------------------- a scratch copy of the repository


@pytest.fixture(scope="session")
def scratch(tmp_path_factory) -> Path:
    """The repository's files as this working tree has them, but for the exercises' stubs, as
    committed: a git repository of its own with one commit, where a test may write answers into
    the stubs, remove a chapter, and run the checker or these tests."""
    root = tmp_path_factory.mktemp("scratch") / "repository"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    stubs = {f"exercises/{e.file}" for e in CATALOG}
    for relative in filter(None, listed):
        source, target = REPO_ROOT / relative, root / relative
        if relative in stubs:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(committed(relative))
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git = ["git", "-c", "user.name=scratch", "-c", "user.email=scratch@localhost", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "scratch"]):
        subprocess.run([*git, *args], cwd=root, check=True, capture_output=True)
    return root


def test_a_written_exercise_leaves_the_tests_green(scratch):
    """Every worked solution written into its stub in the scratch copy (as a learner who has done
    them all): check.py says one is done, and the tests that read the exercises' files (the
    stubs' tests, the hints, the READMEs' lists and the stubs' pointers) still pass there: they
    read the stubs from git, never the learner's answers."""
    for exercise in CATALOG:
        (scratch / "exercises" / exercise.file).write_text(solution(exercise.number))
    try:
        assert cli("1.1", check=scratch / "exercises" / "check.py").stdout.startswith("ok: 1.1 -- ")
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
                               "tests/test_exercises.py", "-k",
                               "committed_stub or hints_come or readmes_list or points_to_sections"],
                              cwd=scratch, capture_output=True, text=True, timeout=600)
        passed = re.search(r"\b(\d+) passed", proc.stdout)
        assert proc.returncode == 0 and passed and int(passed.group(1)) >= len(CATALOG) + 3, \
            proc.stdout[-3000:] + proc.stderr[-3000:]
    finally:
        for exercise in CATALOG:
            (scratch / "exercises" / exercise.file).write_text(stub(exercise.number))


def test_the_listing_survives_broken_missing_and_meddling_files(scratch):
    """check.py with no number: one line per exercise, whatever state the files are in; every
    exercise in a process of its own, so an answer that sets an alarm or changes NumPy for its
    process gets no later exercise blamed. Solutions copied over their stubs pass there."""
    folder = scratch / "exercises"
    solved = ["1.2", "1.3", "1.4", "2.1", "2.2", "2.3"]
    for number in solved:
        (folder / BY_NUMBER[number].file).write_text(solution(number))
    (folder / "ch1" / "adam.py").write_text(solution("1.3").replace(  # an alarm that outlives its own check
        "stage1 = load", "import signal\nsignal.alarm(3)\nstage1 = load"))
    (folder / "ch1" / "rmsnorm.py").write_text(solution("1.4").replace(
        "stage1 = load", "import numpy\nnumpy.exp = None\nstage1 = load"))
    (folder / "ch1" / "tanh.py").write_text("def tanh(x:\n")  # a syntax error
    (folder / "ch2" / "padding.py").write_text("import os\nos.abort()\n")  # kills its process
    (folder / "ch3" / "ignore_index.py").unlink()
    try:
        proc = subprocess.run([sys.executable, str(folder / "check.py")], capture_output=True, text=True, timeout=600)
    finally:
        for exercise in CATALOG:
            (folder / exercise.file).write_text(stub(exercise.number))
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line[:1].isdigit()}
    assert set(lines) == set(BY_NUMBER), proc.stdout
    assert "not yet" in lines["1.1"] and "not yet" in lines["2.4"] and "missing" in lines["3.4"], proc.stdout
    assert all("done" in lines[n] for n in solved), proc.stdout
    assert all("to do" in lines[n] for n in BY_NUMBER if n not in (*solved, "1.1", "2.4", "3.4")), proc.stdout


def test_a_missing_chapter_is_said_as_such(scratch):
    chapter = scratch / "1_pure_python" / "main.py"
    chapter.rename(chapter.with_suffix(".moved"))
    try:
        checked = cli("1.1", "--solution", check=scratch / "exercises" / "check.py")
    finally:
        chapter.with_suffix(".moved").rename(chapter)
    assert checked.returncode == 1 and checked.stdout.startswith(
        "error: 1.1 -- 1_pure_python/main.py is missing from this checkout"), checked.stdout + checked.stderr
    assert "git checkout 1_pure_python/main.py puts it back" in checked.stdout and "bug" not in checked.stdout


def test_the_doctor_runs_where_numpy_torch_and_requirements_txt_are_missing(scratch, tmp_path):
    """A NumPy that is not there and a PyTorch whose library will not load (each shadowed by a
    package that raises), and no requirements.txt: the doctor says so, line by line, and does
    not recommend itself; a check says NumPy is missing in one line."""
    for name, error in (("numpy", "ModuleNotFoundError(\"No module named 'numpy'\")"),
                        ("torch", "OSError('libtorch_cpu.so: cannot open shared object file')")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise {error}\n")
    requirements = scratch / "requirements.txt"
    requirements.rename(requirements.with_suffix(".moved"))
    try:
        proc = cli("--doctor", env={"PYTHONPATH": str(tmp_path)}, check=scratch / "exercises" / "check.py")
    finally:
        requirements.with_suffix(".moved").rename(requirements)
    out = proc.stdout
    assert proc.returncode == 1 and "Traceback" not in out + proc.stderr, out + proc.stderr
    assert re.search(r"^FAIL  numpy \S+ is installed but cannot be imported \(ModuleNotFoundError", out, re.M), out
    assert re.search(r"^FAIL  torch \S+ is installed but cannot be imported \(OSError: libtorch_cpu", out, re.M), out
    assert "note  requirements.txt is missing from this checkout" in out, out
    assert "ok    torch" not in out and "--doctor says" not in out and out.rstrip().endswith(
        "not ready: fix the FAIL lines above"), out
    proc = cli("1.1", env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1 and proc.stderr.startswith("error: the checker needs NumPy") and "Traceback" not \
        in proc.stderr, proc.stderr


def test_a_stub_runs_on_its_own_and_shows_what_it_returned(scratch):
    """python exercises/ch2/padding.py: the stub's own example, and what the function gave."""
    stub_run = subprocess.run([sys.executable, str(scratch / "exercises" / "ch2" / "padding.py")],
                              capture_output=True, text=True, timeout=60)
    assert stub_run.returncode == 0 and "not written yet" in stub_run.stdout, stub_run.stdout + stub_run.stderr
    tail = scratch / "exercises" / "ch4" / "masked_tail.py"
    tail.write_text(solution("4.2"))
    try:
        solved = subprocess.run([sys.executable, str(tail)], capture_output=True, text=True, timeout=120)
    finally:
        tail.write_text(stub("4.2"))
    assert solved.returncode == 0 and "scale_shift(" in solved.stdout and "returned" in solved.stdout, \
        solved.stdout + solved.stderr
