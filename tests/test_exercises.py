"""The exercises (exercises/) hold the checker to its word.

- Every stub fails as "not written yet"; every worked solution passes, in place and copied over
  its stub (in a mirror of the repository, so the copy finds the chapters from where a stub is).
- Every named slip (three or more per exercise, each a mistake learners make, made from the
  solution by one edit) is caught and named; a bypass that calls the chapter's own version fails
  with "write it yourself".
- Whatever an answer does -- crash, loop, store out of bounds, exit, print megabytes, return the
  wrong dtype -- the command line answers in one message and exits 1, never with a traceback.
- Hints come one at a time and none is the solution; a wrong prediction never shows the answer.

The checks run in the checker's own child process (exercises/checker/sandbox.py), as for a
learner: the many answers below go through a few children, so the suite pays for PyTorch's
import a few times, not once per answer.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

EXERCISES = REPO_ROOT / "exercises"
sys.path.insert(0, str(EXERCISES))
from checker.catalog import BY_NUMBER  # noqa: E402
from checker.catalog import EXERCISES as CATALOG  # noqa: E402
from checker.sandbox import run_jobs  # noqa: E402

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
    ("1.3", "m_hat = m / (1 - BETA1 ** (step + 1))", "m_hat = m", None),  # with v_hat's, below: no correction
    ("1.3", "v_hat**0.5 + EPS_ADAM", "(v_hat + EPS_ADAM) ** 0.5", "eps inside the square root"),
    ("1.3", "(1 - BETA1 ** (step + 1))", "(1 - BETA1 ** step)", "the correction is 1 - beta^(step + 1)"),
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
    ("2.2", "targets] -= 1.0 - smoothing", "targets] -= 1.0", None),  # with the even share removed, below
    ("2.2", "smoothing / V", "smoothing / (V - 1)", "the even share is smoothing / V"),
    ("2.2", "return d_logits / real.sum()", "return d_logits / len(real)", "the number of names"),
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
    ("4.4", 'other=float("-inf")', "other=0.0", "load it as -inf"),
    ("4.4", "tl.exp(x - tl.max(x, axis=0))", "tl.exp(x)", "without subtracting the row's max"),
    ("4.4", "e / tl.sum(e, axis=0), mask=mask)", "e / tl.sum(e, axis=0))", "mask the store"),
    ("4.4", "row * C + cols", "row * BLOCK_C + cols", "past the end"),
    ("4.5", "y * (g - tl.sum(g * y, axis=0))", "y * (1 - y) * g", "the diagonal of the Jacobian only"),
    ("4.5", "tl.sum(g * y, axis=0))", "tl.sum(g, axis=0))", "the sum is of g_i y_i"),
    ("4.5", "y * (g - tl.sum(g * y, axis=0))", "g - tl.sum(g * y, axis=0)", "not multiplied by y"),
    ("4.5", "tl.sum(g * y, axis=0))", "tl.sum(g * y, axis=0) / C)", "the mean of g y instead of its sum"),
    ("4.5", "dx, mask=mask)", "dx)", "mask the store"),
    ("4.6", "(m / bias1) / (tl.sqrt(v / bias2) + eps)", "m / (tl.sqrt(v) + eps)", "without bias correction"),
    ("4.6", "(tl.sqrt(v / bias2) + eps)", "tl.sqrt(v / bias2 + eps)", "eps inside the square root"),
    ("4.6", "    tl.store(m_ptr + offsets, m, mask=mask)  # the moments carry over to the next step\n"
            "    tl.store(v_ptr + offsets, v, mask=mask)\n", "", "not stored back"),
    ("4.6", "(1 - beta2) * g * g", "(1 - beta2) * g", "v averages g, not g^2"),
    ("4.6", ", mask=mask", "", "mask the load"),  # every mask removed
    ("4.7", "acc = tl.maximum(acc, 0.0)", "acc = acc", "without the ReLU"),
    ("4.7", "acc += tl.dot(x, tl.trans(w), input_precision=\"ieee\")",
     "acc = tl.maximum(acc + tl.dot(x, tl.trans(w), input_precision=\"ieee\"), 0.0)", "the ReLU inside the loop"),
    ("4.7", "tl.trans(w)", "w", "needs tl.trans"),
    ("4.7", "mask=(rows[:, None] < M) & (ks[None, :] < K), other", "mask=rows[:, None] < M, other",
     "loaded x_ptr"),
    ("4.7", "acc, mask=(rows[:, None] < M) & (cols[None, :] < N))", "acc)", "mask the store"),
    ("4.8", "= 79", "= 65", "past the 256 rows one program sums"),
    ("4.8", "= 79", "= 71", "a one-layer step's"),
    ("4.8", "= 79", "= 77", "lm_head's dW and the embedding's sum over the batch's rows too"),
    ("4.8", "= 79", "= 83", "summed once per step, not per layer"),
    ("4.8", "= 79", "= 105", "do not repeat per layer"),
    ("4.8", "= 79", "= 57", "off by one layer: that is a two-layer step"),
    ("4.8", "= 79", "= 101", "off by one layer: that is a four-layer step"),
]

# (exercise, code that replaces the solution's function body or file, ...) answers that call the chapter's own
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
    "2.3": ("dv = P.transpose", "import torch\n    torch.tensor(q)\n    dv = P.transpose"),
    "2.4": ("n = [positions", "from chapters import load\n    return load(\"2_numpy\").batch_arrays(batch, "
            "block_size)\n    n = [positions"),
    "3.1": ("T, D = q.shape[-2], q.shape[-1]",
            "return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)"),
    "3.2": ("r = torch.rsqrt(", "return torch.nn.functional.rms_norm(x, (x.shape[-1],), eps=EPS)\n"
            "        r = torch.rsqrt("),
    "3.3": "from torch.utils.flop_counter import FlopCounterMode\nwith FlopCounterMode(display=False):\n"
           "    pass\nMATMUL_FLOPS_AT_TWO_LAYERS = 197_280\n",
    "3.4": ("n = [positions", "from chapters import load\n    return load(\"3_pytorch\").batch_tensors(batch, "
            "block_size, \"cpu\")\n    n = [positions"),
    "4.1": ("    return y\n", "    return x + z\n"),
    "4.5": ("    return dx\n", "    return y * (g - (g * y).sum(-1, keepdim=True))\n"),
    "4.6": ("    lr_t = lr *", "    torch.optim.Adam([p])\n    lr_t = lr *"),
    "4.7": ("    return y\n", "    return torch.relu(x @ w.T)\n"),
    "4.8": "from kernels import kernels_per_step\nLAUNCHES_AT_THREE_LAYERS_17_NAMES = kernels_per_step(3, 17)\n",
}


def solution(number: str) -> str:
    return (EXERCISES / "solutions" / BY_NUMBER[number].file).read_text()


def slipped(number: str, right: str, slip: str) -> str:
    source = solution(number)
    assert right in source, f"{number}: the solution no longer holds {right!r}"
    wrong = source.replace(right, slip)
    if number == "1.3" and slip == "m_hat = m":  # Adam without bias correction: neither moment corrected
        wrong = wrong.replace("v_hat = v / (1 - BETA2 ** (step + 1))", "v_hat = v")
    if number == "2.2" and slip == "targets] -= 1.0":  # the smoothing forgotten: chapter 2's one-hot
        wrong = wrong.replace("    d_logits -= smoothing / V  # minus the target distribution: its even share ...\n",
                              "")
    if number == "1.3" and "BETA1 ** step" in slip:
        wrong = wrong.replace("(1 - BETA2 ** (step + 1))", "(1 - BETA2 ** step)")
    return wrong


def bypassed(number: str) -> str:
    bypass = BYPASSES[number]
    if isinstance(bypass, str):
        return bypass
    right, wrong = bypass
    source = solution(number)
    assert right in source, f"{number}: the solution no longer holds {right!r}"
    return source.replace(right, wrong, 1)


@pytest.fixture(scope="session")
def mirror(tmp_path_factory) -> Path:
    """A copy of exercises/ beside links to the rest of the repository, where each stub is its
    worked solution: a solution that only works from solutions/ fails here."""
    root = tmp_path_factory.mktemp("repository")
    for entry in REPO_ROOT.iterdir():
        if entry.name not in ("exercises", ".git", ".venv"):
            (root / entry.name).symlink_to(entry)
    shutil.copytree(EXERCISES, root / "exercises", ignore=shutil.ignore_patterns("__pycache__", "pictures"))
    for exercise in CATALOG:
        shutil.copy(EXERCISES / "solutions" / exercise.file, root / "exercises" / exercise.file)
    return root


@pytest.fixture(scope="session")
def verdicts(tmp_path_factory, mirror) -> dict:
    """{(kind, key): result} of every answer below, checked through the checker's child processes."""
    folder = tmp_path_factory.mktemp("answers")
    jobs, keys = [], []

    def add(key, path):
        keys.append(key)
        jobs.append({"kind": "check", "number": key[1], "path": str(path), "pictures": False})

    for exercise in CATALOG:
        add(("stub", exercise.number), EXERCISES / exercise.file)
        add(("solution", exercise.number), EXERCISES / "solutions" / exercise.file)
        add(("copied", exercise.number), mirror / "exercises" / exercise.file)
    for i, (number, right, slip, _) in enumerate(SLIPS):
        path = folder / f"slip{i}" / Path(BY_NUMBER[number].file).name
        path.parent.mkdir()
        path.write_text(slipped(number, right, slip))
        add(("slip", number, i), path)
    for number in BYPASSES:
        path = folder / f"bypass{number}" / Path(BY_NUMBER[number].file).name
        path.parent.mkdir()
        path.write_text(bypassed(number))
        add(("bypass", number), path)
    out_of_bounds = folder / "oob" / "masked_tail.py"
    out_of_bounds.parent.mkdir()
    out_of_bounds.write_text(slipped("4.2", "tl.store(y_ptr + offsets, a * x + b, mask=mask)",
                                     "tl.store(y_ptr + offsets, a * x + b)"))
    for run in range(20):
        add(("out of bounds", "4.2", run), out_of_bounds)
    results = run_jobs(jobs, time_limit=120)
    return dict(zip(keys, results))


@pytest.mark.parametrize("number", list(BY_NUMBER))
def test_the_stub_fails_and_the_solution_passes_also_over_its_stub(number, verdicts):
    stub = verdicts["stub", number]
    assert stub["status"] == "not written" and stub["line"].startswith(f"not written yet: {number} -- "), stub
    for where in ("solution", "copied"):
        result = verdicts[where, number]
        assert result["status"] == "ok" and result["line"].startswith(f"ok: {number} -- "), (where, result)


def test_an_ok_line_says_what_was_checked_word_for_word(verdicts):
    """4.2's ok line: the lengths it ran, and how they meet the answer's BLOCK."""
    assert verdicts["solution", "4.2"]["line"] == (
        "ok: 4.2 -- y = a x + b for 8 lengths from 1 to 2,323, bounds-checked; with your BLOCK = 64, 7 of them end "
        "partway through the last block (64 fills it exactly)")


@pytest.mark.parametrize("index", range(len(SLIPS)), ids=[f"{s[0]}-{i}" for i, s in enumerate(SLIPS)])
def test_a_slip_is_caught_and_named(index, verdicts):
    number, _, slip, named = SLIPS[index]
    if named is None:
        named = {"1.3": "without bias correction", "2.2": "the smoothing is missing"}[number]
    result = verdicts["slip", number, index]
    assert result["status"] == "not yet" and result["line"].startswith(f"not yet: {number} -- "), result
    assert named in result["line"], result["line"]
    assert "your code raised" not in result["line"] or "--" in result["line"].split("your code raised")[1], \
        f"a slip the checker should name reads as a bare error: {result['line']}"


def test_every_exercise_has_three_named_slips():
    counts = {e.number: sum(s[0] == e.number for s in SLIPS) for e in CATALOG}
    assert min(counts.values()) >= 3, counts


@pytest.mark.parametrize("number", list(BYPASSES))
def test_an_answer_that_calls_the_chapters_own_version_fails(number, verdicts):
    result = verdicts["bypass", number]
    assert result["status"] == "not yet", result
    assert "write it yourself" in result["line"] or "predict first" in result["line"], result["line"]


def test_an_out_of_bounds_store_is_the_same_clear_message_on_every_run(verdicts):
    lines = {verdicts["out of bounds", "4.2", run]["line"] for run in range(20)}
    assert len(lines) == 1, lines
    (line,) = lines
    said = line.split(" -- ", 1)[1]  # what exercises/README.md quotes
    assert said.startswith("on N=1 (seed 0): program (0,) stored y_ptr at offset 1, past the end (1 element)")
    assert said.split(": ", 1)[1] in (EXERCISES / "README.md").read_text().replace("\n  ", " ")


def cli(*args, cwd=REPO_ROOT, timeout=180, env=None):
    """Run exercises/check.py as a learner does."""
    env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(EXERCISES / "check.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def one_message(proc) -> str:
    """The learner-facing output: one verdict, no traceback, exit 1."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc.stdout


TANH = (EXERCISES / "solutions" / "ch1" / "tanh.py").read_text()
BREAKERS = {  # (what the answer does, the code in place of tanh's body or file, the message)
    "aborts": ("    import os\n    os.abort()\n", "made the process abort"),
    "segfaults": ("    import ctypes\n    ctypes.string_at(0)\n", "segmentation fault"),
    "loops": ("    while True:\n        pass\n", "did not finish within 4 s"),
    "exits while loading": (None, "called sys.exit(0) while loading"),
    "raises SystemExit": ("    raise SystemExit\n", "called sys.exit(None) in tanh"),
    "calls os._exit": ("    import os\n    os._exit(0)\n", "ended the process (exit status 0)"),
    "recurses forever": ("    return tanh(x)\n", "RecursionError in tanh"),
    "prints ten megabytes": ("    for _ in range(10_000):\n        print('x' * 1000)\n    t = math.tanh(x.data)\n"
                             "    return Value(t, (x,), (2.0,))\n", "your code printed 10,010,000 characters"),
}


@pytest.mark.parametrize("what", list(BREAKERS))
def test_an_answer_that_breaks_things_gets_one_clear_message(what, tmp_path):
    body, said = BREAKERS[what]
    if body is None:
        source = TANH.replace("Value = load", "sys.exit(0)\nValue = load")
    else:
        source = TANH.replace('    t = math.tanh(x.data)\n    return Value(t, (x,), (1 - t * t,))', body.rstrip("\n"))
    path = tmp_path / "tanh.py"
    path.write_text(source)
    out = one_message(cli("1.1", "--file", str(path), "--time-limit", "4"))
    assert out.startswith("not yet: 1.1 -- ") and said in out, out


def test_an_out_of_bounds_kernel_and_a_wrong_dtype_answer_each_get_one_clear_message(tmp_path):
    store = tmp_path / "masked_tail.py"
    store.write_text(slipped("4.2", "tl.store(y_ptr + offsets, a * x + b, mask=mask)",
                             "tl.store(y_ptr + offsets, a * x + b)"))
    outs = {one_message(cli("4.2", "--file", str(store))) for _ in range(2)}
    assert len(outs) == 1 and "past the end" in outs.pop()
    mask = tmp_path / "padding.py"
    mask.write_text(slipped("2.4", "real = np.arange(T)[None, :] < np.array(n)[:, None]",
                            "real = (np.arange(T)[None, :] < np.array(n)[:, None]).astype(int)"))
    out = one_message(cli("2.4", "--file", str(mask)))
    assert out.startswith("not yet: 2.4 -- ") and "real: dtype int64, expected a bool dtype" in out, out


def test_a_wrong_array_is_drawn_and_its_numbers_said_precisely(tmp_path):
    wrong = tmp_path / "attention_backward.py"
    wrong.write_text(slipped("2.3", "dv = P.transpose(0, 1, 3, 2) @ g", "dv = P @ g"))
    proc = cli("2.3", "--file", str(wrong), env={"MICROGPT_EXERCISES_OUT": str(tmp_path / "out")})
    out = one_message(proc)
    assert out.startswith("not yet: 2.3 -- on B=1, H=1, T=2, D=") and "dv[" in out and "P needs its transpose" in out
    assert "difference" in out and "tolerance |yours - expected| <= 1e-10 + 1e-08·|expected|" in out
    picture = tmp_path / "out" / "pictures" / "2.3.png"
    assert f"picture: {picture}" in out and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_listing_survives_broken_and_missing_files(mirror, tmp_path):
    """check.py with no number: one line per exercise, whatever state the files are in."""
    (mirror / "exercises" / "ch1" / "tanh.py").write_text("def tanh(x:\n")  # a syntax error
    (mirror / "exercises" / "ch2" / "padding.py").write_text("import os\nos.abort()\n")  # kills its process
    (mirror / "exercises" / "ch3" / "ignore_index.py").unlink()
    try:
        proc = subprocess.run([sys.executable, str(mirror / "exercises" / "check.py")], capture_output=True,
                              text=True, timeout=300)
    finally:
        for exercise in ("ch1/tanh.py", "ch2/padding.py", "ch3/ignore_index.py"):
            shutil.copy(EXERCISES / "solutions" / exercise, mirror / "exercises" / exercise)
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line[:1].isdigit()}
    assert set(lines) == set(BY_NUMBER), proc.stdout
    assert "not yet" in lines["1.1"] and "not yet" in lines["2.4"] and "missing" in lines["3.4"], proc.stdout
    assert all("done" in lines[n] for n in BY_NUMBER if n not in ("1.1", "2.4", "3.4")), proc.stdout


def test_hints_come_one_at_a_time_and_none_is_the_solution(tmp_path):
    env = {"MICROGPT_EXERCISES_OUT": str(tmp_path)}
    seen = [cli("2.3", "--hint", env=env).stdout for _ in range(4)]
    assert [s.split(":")[0] for s in seen] == ["hint 1 of 3 for 2.3", "hint 2 of 3 for 2.3", "hint 3 of 3 for 2.3",
                                               "hint 3 of 3 for 2.3"]
    def squeezed(text: str) -> str:
        return "".join(text.split())

    readmes = squeezed("".join((REPO_ROOT / f).read_text() for f in ("exercises/README.md", "1_pure_python/README.md",
                                                                      "2_numpy/README.md", "3_pytorch/README.md",
                                                                      "4_triton/README.md")))
    # Chapter 4's README teaches kernels in the chapter's own code, so it may hold a line that kernels/ holds (the
    # code every reader may open, and which 4.5-4.7 ask to write again); beyond that, no line of an answer.
    kernels = squeezed("".join(p.read_text() for p in [*sorted((REPO_ROOT / "4_triton" / "kernels").glob("*.py")),
                                                       REPO_ROOT / "4_triton" / "fused_step.py"]))
    for exercise in CATALOG:
        stub = (EXERCISES / exercise.file).read_text()
        given = {squeezed(line.split("#")[0]) for line in stub.splitlines()}
        answer = [squeezed(line.split("#")[0]) for line in solution(exercise.number).splitlines()
                  if not line.strip().startswith(("#", '"""', "import ", "from "))]
        answer = [line for line in answer if len(line) > 12 and line not in given]  # the lines the learner writes
        assert answer, exercise.number
        for where, text in [("stub", squeezed(stub)), ("README", readmes)] + [("hint", squeezed(h))
                                                                               for h in exercise.hints]:
            leaked = [line for line in answer if line in text and not (where == "README" and line in kernels)]
            assert not leaked, (exercise.number, where, leaked)


def test_a_wrong_prediction_never_shows_the_answer_and_reveal_does(tmp_path):
    guess = tmp_path / "launches.py"
    guess.write_text(solution("4.8").replace("= 79", "= 78"))
    out = one_message(cli("4.8", "--file", str(guess)))
    assert "too low" in out and "79" not in out, out
    revealed = cli("4.8", "--reveal")
    assert revealed.returncode == 0 and revealed.stdout.startswith("the answer to 4.8: 79."), revealed.stdout
    assert "(11 + 3 x 18 = 65); for 17 names, 79." in revealed.stdout and "4 x 3 + 2 = 14." in revealed.stdout


def test_the_doctor_says_this_machine_is_ready():
    proc = cli("--doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok    Triton's interpreter runs a kernel" in proc.stdout and "out-of-bounds stores are caught" in \
        proc.stdout and proc.stdout.rstrip().endswith("ready: every exercise can be checked here"), proc.stdout


def test_the_readmes_list_every_exercise_as_the_checker_knows_it():
    table = (EXERCISES / "README.md").read_text().replace("`", "")
    for exercise in CATALOG:
        assert f"| {exercise.number} | {exercise.title} | {exercise.kind} |" in table, exercise.number
        chapter = next(REPO_ROOT.glob(f"{exercise.chapter}_*/README.md")).read_text()
        assert f"- **{exercise.number}** — " in chapter and f"(`exercises/{exercise.file}`)" in chapter, exercise.number
        assert (EXERCISES / exercise.file).is_file() and (EXERCISES / "solutions" / exercise.file).is_file()


def test_a_stub_runs_on_its_own_and_shows_what_it_returned(mirror):
    """python exercises/ch2/padding.py: the stub's own example, and what the function gave."""
    stub = subprocess.run([sys.executable, str(EXERCISES / "ch2" / "padding.py")], capture_output=True, text=True,
                          timeout=60)
    assert stub.returncode == 0 and "not written yet" in stub.stdout, stub.stdout + stub.stderr
    solved = subprocess.run([sys.executable, str(mirror / "exercises" / "ch4" / "masked_tail.py")],
                            capture_output=True, text=True, timeout=120)
    assert solved.returncode == 0 and "scale_shift(" in solved.stdout and "returned" in solved.stdout, \
        solved.stdout + solved.stderr
