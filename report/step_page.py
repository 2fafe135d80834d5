"""One training step, seen whole: a page that walks a name through microgpt's forward pass,
its backward pass and Adam's update, with every number from all four stages.

    python -m report.step_page               # writes training_step.html at the repository's root
    python -m report.step_page --out F       # ... to F instead
    python -m report.step_page --screenshot  # and training_step.png, its first view (needs Chromium)

The numbers come from the stages' own code, in float64, on SPEC.md's weights after 0, 1 and
1000 steps of SPEC.md's run (trained by stage 2, whose losses equal stage 1's to 1e-6):

- each stage runs its own forward and backward on one name, and what each of its functions
  computed is captured as it runs (a wrapper around the function in the stage's module, or a
  forward hook on a PyTorch module), with its gradient after backward;
- a box is one quantity of the model (the embedding, q, the attention weights, ...) with the
  function and line in each stage's main.py that computes it; where a stage computes it inside
  one fused operation and never holds it, the page says so;
- Adam's update for a few weights: the gradient, the moments before and after, the bias
  correction and the step, as stage 2's `adam_step` computes them.

The page is one HTML file with its data and script inline (no server, no network): a reader
opens it from the clone with a double-click. tests/test_step_page.py regenerates the data and
compares it with the committed page, and drives the page in headless Chromium.
"""

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from shared.tokenizer import padded_document, positions
from shared.weights import param_offsets, param_shapes, spec_run
from tools import stages

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGE = REPO_ROOT / "training_step.html"
SCREENSHOT = REPO_ROOT / "training_step.png"
TEMPLATE = Path(__file__).with_name("step_page.html")
NAMES = ["emma", "isabella", "yuheng"]  # yuheng: the name step 1 of SPEC.md's run trains on
STEPS = [0, 1, 1000]  # the weights after this many steps of SPEC.md's run
STAGES = ["1_pure_python", "2_numpy", "3_pytorch", "4_triton"]
DIGITS = 17  # enough to see two float64 results differ in their last bit

# The boxes, in the order forward computes them: key, title, what it is, and per stage the
# function that computes it with a line of its main.py that does (None: the stage never holds it).
BOXES = [
    ("x0", "embedding", "x = wte[token] + wpe[position]: the token's row plus the position's row", {
        "1_pure_python": ("gpt", 'x = [t + p for t, p in zip(params["wte"][token_id]'),
        "2_numpy": ("embed", "out = Tensor(wte.data[tokens] + wpe.data[:T]"),
        "3_pytorch": ("GPT.forward", "x = rmsnorm(self.wte(idx) + self.wpe.weight[:T])"),
        "4_triton": ("embedding", "return Embedding.apply(tokens, n, wte.weight()")}),
    ("x1", "rmsnorm", "x / sqrt(mean(x^2) + eps): each position's 16 numbers rescaled to size 1", {
        "1_pure_python": ("rmsnorm", "scale = (mean_square + RMSNORM_EPS) ** -0.5"),
        "2_numpy": ("rmsnorm", "y = x.data * r"),
        "3_pytorch": ("rmsnorm", "return F.rms_norm(x, (x.shape[-1],), eps=RMSNORM_EPS)"),
        "4_triton": ("rmsnorm", "return RMSNorm.apply(x)")}),
    ("h_attn", "rmsnorm before attention", "what attention reads: rmsnorm of the residual stream", {
        "1_pure_python": ("rmsnorm", "scale = (mean_square + RMSNORM_EPS) ** -0.5"),
        "2_numpy": ("rmsnorm", "y = x.data * r"),
        "3_pytorch": ("rmsnorm", "return F.rms_norm(x, (x.shape[-1],), eps=RMSNORM_EPS)"),
        "4_triton": ("rmsnorm_with_residual", "return RMSNormWithResidual.apply(x)")}),
    ("q", "query q", "q = Wq h: what each position looks for (4 heads of 4 numbers)", {
        "1_pure_python": ("linear", 'q = linear(x, params[f"layer{li}.attn_wq"])'),
        "2_numpy": ("linear", 'qkv = linear(rmsnorm(x), params[f"layer{li}.attn_wqkv"])'),
        "3_pytorch": ("CausalSelfAttention.forward", "qkv = self.attn_wqkv(x).view("),
        "4_triton": ("CausalSelfAttention.forward", "qkv = linear(x, self.attn_wqkv)")}),
    ("k", "key k", "k = Wk h: what each position offers to be found by", {
        "1_pure_python": ("linear", 'k = linear(x, params[f"layer{li}.attn_wk"])'),
        "2_numpy": ("linear", 'qkv = linear(rmsnorm(x), params[f"layer{li}.attn_wqkv"])'),
        "3_pytorch": ("CausalSelfAttention.forward", "qkv = self.attn_wqkv(x).view("),
        "4_triton": ("CausalSelfAttention.forward", "qkv = linear(x, self.attn_wqkv)")}),
    ("v", "value v", "v = Wv h: what each position hands over when it is read", {
        "1_pure_python": ("linear", 'v = linear(x, params[f"layer{li}.attn_wv"])'),
        "2_numpy": ("linear", 'qkv = linear(rmsnorm(x), params[f"layer{li}.attn_wqkv"])'),
        "3_pytorch": ("CausalSelfAttention.forward", "qkv = self.attn_wqkv(x).view("),
        "4_triton": ("CausalSelfAttention.forward", "qkv = linear(x, self.attn_wqkv)")}),
    ("scores", "attention scores", "q . k / sqrt(4) per head, and the causal mask: -inf where a position "
     "would read a later one (grey)", {
        "1_pure_python": ("gpt", "attn_logits = [sum(q_h[j] * k_t[j] for j in range(head_dim)) / head_dim**0.5"),
        "2_numpy": None, "3_pytorch": None, "4_triton": None}),
    ("attn", "attention weights", "softmax of each row of the scores, per head: row t reads positions 0..t", {
        "1_pure_python": ("softmax", "attn_weights = softmax(attn_logits)"),
        "2_numpy": None, "3_pytorch": None, "4_triton": None}),
    ("y", "weighted values", "each head's sum of weight x value, the 4 heads side by side", {
        "1_pure_python": ("gpt", "x_attn.extend(sum(attn_weights[t] * v_h[t][j]"),
        "2_numpy": ("causal_attention", "y = probs @ v"),
        "3_pytorch": ("CausalSelfAttention.forward", "y = F.scaled_dot_product_attention(q, k, v, is_causal=True)"),
        "4_triton": ("causal_attention", "return CausalAttention.apply(qkv, n_head)")}),
    ("x2", "residual after attention", "x + Wo y: attention's output added to the residual stream", {
        "1_pure_python": ("gpt", "x = [a + b for a, b in zip(x, x_residual)]"),
        "2_numpy": ("gpt", 'x = x + linear(causal_attention(qkv, config.n_head), params[f"layer{li}.attn_wo"])'),
        "3_pytorch": ("Block.forward", "x = x + self.attn(rmsnorm(x))"),
        "4_triton": ("CausalSelfAttention.forward", "return linear(y, self.attn_wo, residual=residual)")}),
    ("h_mlp", "rmsnorm before the MLP", "what the MLP reads: rmsnorm of the residual stream", {
        "1_pure_python": ("rmsnorm", "scale = (mean_square + RMSNORM_EPS) ** -0.5"),
        "2_numpy": ("rmsnorm", "y = x.data * r"),
        "3_pytorch": ("rmsnorm", "return F.rms_norm(x, (x.shape[-1],), eps=RMSNORM_EPS)"),
        "4_triton": ("rmsnorm_with_residual", "return RMSNormWithResidual.apply(x)")}),
    ("fc1", "fc1, before the ReLU", "W1 h: 16 numbers widened to 64", {
        "1_pure_python": ("linear", 'x = linear(x, params[f"layer{li}.mlp_fc1"])'),
        "2_numpy": ("linear", 'h = relu(linear(rmsnorm(x), params[f"layer{li}.mlp_fc1"]))'),
        "3_pytorch": ("MLP.forward", "return self.mlp_fc2(F.relu(self.mlp_fc1(x)))"),
        "4_triton": None}),
    ("relu", "ReLU", "max(0, W1 h): the negative ones set to 0", {
        "1_pure_python": ("Value.relu", "x = [xi.relu() for xi in x]"),
        "2_numpy": ("relu", "out = Tensor(np.maximum(x.data, 0), (x,))"),
        "3_pytorch": ("MLP.forward", "return self.mlp_fc2(F.relu(self.mlp_fc1(x)))"),
        "4_triton": ("MLP.forward", "h = linear(x, self.mlp_fc1, relu=True)")}),
    ("x3", "residual after the MLP", "x + W2 relu(W1 h): the MLP's output added to the residual stream", {
        "1_pure_python": ("gpt", "x = [a + b for a, b in zip(x, x_residual)]"),
        "2_numpy": ("gpt", 'x = x + linear(h, params[f"layer{li}.mlp_fc2"])'),
        "3_pytorch": ("Block.forward", "return x + self.mlp(rmsnorm(x))"),
        "4_triton": ("MLP.forward", "return linear(h, self.mlp_fc2, residual=residual)")}),
    ("logits", "logits", "lm_head x: one number per token of the vocabulary (columns a to z, then BOS)", {
        "1_pure_python": ("gpt", 'return linear(x, params["lm_head"])'),
        "2_numpy": ("gpt", 'return linear(x, params["lm_head"])'),
        "3_pytorch": ("GPT.forward", "logits = self.lm_head(x)"),
        "4_triton": ("GPT.forward", "logits = linear(x, self.lm_head)")}),
    ("probs", "probabilities", "softmax(logits): the model's guess for the next token (columns a to z, then BOS)", {
        "1_pure_python": ("token_losses", "probs = softmax(logits)"),
        "2_numpy": None, "3_pytorch": None, "4_triton": None}),
    ("loss", "loss", "-log p[the next token], at each position; the step's loss is their mean", {
        "1_pure_python": ("token_losses", "losses.append(-probs[tokens[pos_id + 1]].log())"),
        "2_numpy": None, "3_pytorch": None, "4_triton": None}),
]
WHY_NOT = {  # why a stage holds no value for a box
    ("scores", "2_numpy"): "inside causal_attention: one op, its scores never leave it",
    ("scores", "3_pytorch"): "inside F.scaled_dot_product_attention: one fused op",
    ("scores", "4_triton"): "inside the attention kernel's registers",
    ("attn", "2_numpy"): "inside causal_attention: one op, its weights never leave it",
    ("attn", "3_pytorch"): "inside F.scaled_dot_product_attention: one fused op",
    ("attn", "4_triton"): "inside the attention kernel's registers",
    ("fc1", "4_triton"): "the ReLU is the matmul's epilogue: fc1's output is never stored",
    ("probs", "2_numpy"): "inside cross_entropy: one op with its hand-derived backward",
    ("probs", "3_pytorch"): "inside F.cross_entropy: one fused op",
    ("probs", "4_triton"): "inside the cross-entropy kernel",
    ("loss", "2_numpy"): "cross_entropy returns the mean only",
    ("loss", "3_pytorch"): "F.cross_entropy returns the mean only",
    ("loss", "4_triton"): "the kernel returns the mean only",
}


# ---------------------------------------------------------------------------- the weights


def weights_after(steps: list[int]) -> dict[int, dict]:
    """{k: (state after k steps of SPEC.md's run, Adam's m and v then)} for each k in `steps`,
    trained with stage 2's own functions in float64 (its losses are stage 1's to 1e-6)."""
    stage2 = stages.load("2_numpy")
    tokenizer, config, docs, state = spec_run()
    flat, params = stage2.make_params(state, config)
    m, v = np.zeros_like(flat), np.zeros_like(flat)
    out = {}
    for step in range(max(steps) + 1):
        if step in steps:
            out[step] = {"state": unflatten(flat, config), "m": m.copy(), "v": v.copy(), "flat": flat.copy()}
        if step == max(steps):
            break
        loss = stage2.batch_loss([tokenizer.encode_doc(docs[step % len(docs)])], params, config)
        loss.backward()
        stage2.adam_step(flat, stage2.flat_grad(params), m, v, step, 1000)
        for p in params.values():
            p.grad = None
    return out


def unflatten(flat: np.ndarray, config) -> dict[str, list[list[float]]]:
    offsets = param_offsets(config)
    return {name: flat[offsets[name][0]:offsets[name][0] + rows * cols].reshape(rows, cols).tolist()
            for name, (rows, cols) in param_shapes(config)}


# ---------------------------------------------------------------------------- capturing


@contextlib.contextmanager
def wrapped(module, names: list[str], calls: list):
    """Replace module-level functions by wrappers that record (name, args, result) of each call."""
    originals = {name: getattr(module, name) for name in names}

    def wrapper(name, function):
        def record(*args, **kwargs):
            result = function(*args, **kwargs)
            calls.append((name, args, result))
            return result
        return record
    for name, function in originals.items():
        setattr(module, name, wrapper(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(module, name, function)


def of(calls: list, name: str) -> list:
    return [(args, result) for n, args, result in calls if n == name]


def stage1_boxes(state, config, tokens) -> dict:
    """Stage 1 runs one position at a time: each box is assembled row by row from its calls."""
    s1 = stages.load("1_pure_python")
    params = s1.make_params(state)
    calls = []
    with wrapped(s1, ["linear", "rmsnorm", "softmax", "token_losses"], calls):
        loss = s1.batch_loss([tokens], params, config)
        nodes = loss.backward()
    T, H = positions(tokens, config.block_size), config.n_head
    lin, norms, soft = of(calls, "linear"), of(calls, "rmsnorm"), of(calls, "softmax")
    per_position = {  # box: (list of calls, which call of each position, input or output)
        "x0": (norms, 3, 0, "in"), "x1": (norms, 3, 0, "out"), "h_attn": (norms, 3, 1, "out"),
        "q": (lin, 7, 0, "out"), "k": (lin, 7, 1, "out"), "v": (lin, 7, 2, "out"), "y": (lin, 7, 3, "in"),
        "x2": (norms, 3, 2, "in"), "h_mlp": (norms, 3, 2, "out"), "fc1": (lin, 7, 4, "out"),
        "relu": (lin, 7, 5, "in"), "x3": (lin, 7, 6, "in"), "logits": (lin, 7, 6, "out"),
        "probs": (soft, H + 1, H, "out"),
    }
    boxes = {}
    for box, (made, every, which, side) in per_position.items():
        rows = [made[t * every + which][0][0] if side == "in" else made[t * every + which][1] for t in range(T)]
        boxes[box] = values_and_grads(rows)
    attn, scores = np.zeros((2, H, T, T)), np.zeros((2, H, T, T))
    scores[0][np.broadcast_to(np.triu(np.ones((T, T), dtype=bool), k=1), (H, T, T))] = -np.inf  # the causal mask
    for t in range(T):
        for h in range(H):
            (logits,), weights = soft[t * (H + 1) + h]
            attn[:, h, t, :t + 1] = [[w.data for w in weights], [w.grad for w in weights]]
            scores[:, h, t, :t + 1] = [[s.data for s in logits], [s.grad for s in logits]]
    boxes["attn"], boxes["scores"] = attn, scores
    (_, position_losses), = of(calls, "token_losses")
    boxes["loss"] = np.array([[p.data for p in position_losses], [p.grad for p in position_losses]])
    return {"boxes": boxes, "loss": loss.data, "graph_nodes": nodes}


def values_and_grads(rows: list[list]) -> np.ndarray:
    """(2, T, n): the values and the gradients of stage 1's Values, row by row."""
    return np.array([[[x.data for x in row] for row in rows], [[x.grad for x in row] for row in rows]])


def stage2_boxes(state, config, tokens) -> dict:
    s2 = stages.load("2_numpy")
    _, params = s2.make_params(state, config)
    calls = []
    with wrapped(s2, ["embed", "rmsnorm", "linear", "causal_attention", "relu", "cross_entropy"], calls):
        loss = s2.batch_loss([tokens], params, config)
        nodes = loss.backward()
    norms, lin = of(calls, "rmsnorm"), of(calls, "linear")
    C = config.n_embd
    pick = {"x0": of(calls, "embed")[0][1], "x1": norms[0][1], "h_attn": norms[1][1],
            "y": of(calls, "causal_attention")[0][1], "x2": norms[2][0][0], "h_mlp": norms[2][1], "fc1": lin[2][1],
            "relu": of(calls, "relu")[0][1], "x3": lin[4][0][0], "logits": lin[4][1]}
    boxes = {box: np.array([t.data[0], t.grad[0]]) for box, t in pick.items()}
    qkv = lin[0][1]
    for i, box in enumerate("qkv"):
        boxes[box] = np.array([qkv.data[0, :, i * C:(i + 1) * C], qkv.grad[0, :, i * C:(i + 1) * C]])
    return {"boxes": boxes, "loss": float(loss.data), "graph_nodes": nodes}


def stage3_boxes(state, config, tokens) -> dict:
    import torch

    s3 = stages.load("3_pytorch")
    with torch.no_grad():
        model = s3.load_weights(s3.GPT(config).to(torch.float64), state)
    calls = []

    def hook(name):
        def record(module, inputs, output):
            for t in (inputs[0], output):
                t.retain_grad()
            calls.append((name, inputs, output))
        return record
    handles = [model.layers[0].attn.attn_wqkv.register_forward_hook(hook("wqkv")),
               model.layers[0].attn.attn_wo.register_forward_hook(hook("wo")),
               model.layers[0].mlp.mlp_fc1.register_forward_hook(hook("fc1")),
               model.layers[0].mlp.mlp_fc2.register_forward_hook(hook("fc2")),
               model.lm_head.register_forward_hook(hook("lm_head"))]
    original = s3.rmsnorm

    def rmsnorm(x):
        out = original(x)
        for t in (x, out):
            t.retain_grad()
        calls.append(("rmsnorm", (x,), out))
        return out
    s3.rmsnorm = rmsnorm
    try:
        _, loss = model(*s3.batch_tensors([tokens], config.block_size, "cpu"))
        loss.backward()
    finally:
        s3.rmsnorm = original
        for handle in handles:
            handle.remove()
    norms = of(calls, "rmsnorm")
    one = lambda name: of(calls, name)[0]
    pick = {"x0": norms[0][0][0], "x1": norms[0][1], "h_attn": norms[1][1], "y": one("wo")[0][0],
            "x2": norms[2][0][0], "h_mlp": norms[2][1], "fc1": one("fc1")[1], "relu": one("fc2")[0][0],
            "x3": one("lm_head")[0][0], "logits": one("lm_head")[1]}
    boxes = {box: torch_pair(t) for box, t in pick.items()}
    qkv, C = one("wqkv")[1], config.n_embd
    for i, box in enumerate("qkv"):
        boxes[box] = torch_pair(qkv, slice(i * C, (i + 1) * C))
    return {"boxes": boxes, "loss": loss.item()}


def torch_pair(t, columns: slice | None = None, rows: int | None = None) -> np.ndarray:
    """(2, T, n): a captured tensor's first document and its gradient."""
    columns = columns or slice(None)
    value, grad = t.detach()[0, :rows, columns], t.grad[0, :rows, columns]
    return np.array([value.cpu().numpy(), grad.cpu().numpy()])


def stage4_boxes(state, config, tokens) -> dict:
    import torch

    s4 = stages.load("4_triton")
    model = s4.GPT(config, state, torch.float64, "cpu")
    calls = []

    def retaining(name, function):
        def record(*args, **kwargs):
            result = function(*args, **kwargs)
            for t in (result if isinstance(result, tuple) else (result,)):
                if t.requires_grad:
                    t.retain_grad()
            calls.append((name, args, result))
            return result
        return record
    names = ["embedding", "rmsnorm", "rmsnorm_with_residual", "linear", "causal_attention"]
    originals = {name: getattr(s4, name) for name in names}
    for name in names:
        setattr(s4, name, retaining(name, originals[name]))
    T = config.block_size
    rows = torch.tensor([padded_document(tokens, T)], dtype=torch.int32)
    try:
        _, loss = model(rows[:, 1:T + 1].contiguous(), rows[:, 0].contiguous(), rows[:, 2:T + 2].contiguous())
        loss.backward()
    finally:
        for name, function in originals.items():
            setattr(s4, name, function)
    n = positions(tokens, config.block_size)
    lin, with_residual = of(calls, "linear"), of(calls, "rmsnorm_with_residual")
    pick = {"x0": of(calls, "embedding")[0][1], "x1": of(calls, "rmsnorm")[0][1], "h_attn": with_residual[0][1][0],
            "y": of(calls, "causal_attention")[0][1], "x2": lin[1][1], "h_mlp": with_residual[1][1][0],
            "relu": lin[2][1], "x3": lin[3][1], "logits": lin[4][1]}
    boxes = {box: torch_pair(t, rows=n) for box, t in pick.items()}
    boxes["logits"] = torch_pair(lin[4][1], slice(0, config.vocab_size), n)
    qkv, C = lin[0][1], config.n_embd
    for i, box in enumerate("qkv"):
        boxes[box] = torch_pair(qkv, slice(i * C, (i + 1) * C), n)
    return {"boxes": boxes, "loss": loss.item()}


CAPTURE = {"1_pure_python": stage1_boxes, "2_numpy": stage2_boxes, "3_pytorch": stage3_boxes, "4_triton": stage4_boxes}


# ---------------------------------------------------------------------------- the page's data


def where_in_code(stage: str, snippet: str) -> int:
    """The line of `stage`/main.py that holds `snippet` (generation stops if the code moved on)."""
    for number, line in enumerate((REPO_ROOT / stage / "main.py").read_text().splitlines(), start=1):
        if snippet in line:
            return number
    raise SystemExit(f"report/step_page.py: {stage}/main.py no longer has the line {snippet!r}; update BOXES")


def packed(values: np.ndarray) -> str:
    """float64 numbers as base64 (every bit kept, half the size of decimal text)."""
    import base64

    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode()


def short(x: float) -> float:
    return float(f"{x:.3g}")


def run_data(name: str, step: int, trained: dict) -> dict:
    """Every box of every stage for one name at one step, stage 1 as the reference: its numbers
    in full, the other stages' as their differences from it (most are exactly zero)."""
    tokenizer, config, _, _ = spec_run()
    tokens = tokenizer.encode_doc(name)
    captured = {stage: CAPTURE[stage](trained[step]["state"], config, tokens) for stage in STAGES}
    ref = captured["1_pure_python"]["boxes"]
    boxes = {}
    for key, *_ in BOXES:
        entry = {"shape": list(ref[key].shape[1:]), "ref": packed(ref[key]), "diff": {}, "max": {}}
        for stage in STAGES[1:]:
            theirs = captured[stage]["boxes"].get(key)
            if theirs is None:
                continue
            delta = theirs - ref[key]
            entry["diff"][stage] = [short(d) for d in delta.ravel()]
            entry["max"][stage] = [float(np.abs(delta[0]).max()), float(np.abs(delta[1]).max())]
        boxes[key] = entry
    shown = ["BOS" if t == tokenizer.bos else tokenizer.decode([t]) for t in tokens]
    return {"inputs": shown[:-1][:config.block_size], "targets": shown[1:config.block_size + 1],
            "loss": {stage: captured[stage]["loss"] for stage in STAGES},
            "graph_nodes": {stage: captured[stage]["graph_nodes"] for stage in STAGES[:2]},
            "boxes": boxes, "adam": adam_rows(name, step, trained, config, tokenizer)}


def adam_rows(name: str, step: int, trained: dict, config, tokenizer) -> list[dict]:
    """Adam's update of four weights (the largest gradient of four matrices) if this step
    trained on this name: stage 2's adam_step on copies of the run's buffers."""
    from shared.weights import param_offsets

    stage2 = stages.load("2_numpy")
    flat, params = stage2.make_params(trained[step]["state"], config)
    stage2.batch_loss([tokenizer.encode_doc(name)], params, config).backward()
    grad = stage2.flat_grad(params)
    m, v, after = trained[step]["m"].copy(), trained[step]["v"].copy(), flat.copy()
    stage2.adam_step(after, grad, m, v, step, 1000)
    rows = []
    offsets = param_offsets(config)
    for matrix in ("wte", "lm_head", "layer0.attn_wq", "layer0.mlp_fc1"):
        start, n_rows, n_cols = offsets[matrix]
        i = start + int(np.argmax(np.abs(grad[start:start + n_rows * n_cols])))
        r, c = divmod(i - start, n_cols)
        t = step + 1
        m_hat, v_hat = m[i] / (1 - stage2.BETA1 ** t), v[i] / (1 - stage2.BETA2 ** t)
        rows.append({"weight": f"{matrix}[{r}][{c}]", "w": flat[i], "g": grad[i],
                     "m_before": trained[step]["m"][i], "v_before": trained[step]["v"][i], "m": m[i], "v": v[i],
                     "m_hat": m_hat, "v_hat": v_hat, "lr": stage2.LEARNING_RATE * (1 - step / 1000),
                     "update": flat[i] - after[i], "w_after": after[i], "beta1": stage2.BETA1,
                     "beta2": stage2.BETA2, "eps": stage2.EPS_ADAM, "t": t})
    return rows


def page_data() -> dict:
    trained = weights_after(STEPS)
    boxes = [{"key": key, "title": title, "what": what,
              "where": {stage: (None if code is None else {"function": code[0], "line": where_in_code(stage, code[1])})
                        for stage, code in per_stage.items()},
              "why_not": {stage: WHY_NOT[key, stage] for stage in STAGES if per_stage[stage] is None}}
             for key, title, what, per_stage in BOXES]
    tokenizer = spec_run()[0]
    vocab = ["BOS" if i == tokenizer.bos else tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
    return {"names": NAMES, "steps": STEPS, "stages": STAGES, "boxes": boxes, "vocab": vocab,
            "runs": {f"{name}|{step}": run_data(name, step, trained) for name in NAMES for step in STEPS}}


def write_page(out: Path, data: dict) -> Path:
    html = TEMPLATE.read_text().replace("/*DATA*/null", json.dumps(data, separators=(",", ":")))
    out.write_text(html)
    return out


def committed_data(path: Path = PAGE) -> dict:
    """The data inside a generated page."""
    text = path.read_text()
    start = text.index("const DATA = ") + len("const DATA = ")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def screenshot(page: Path, out: Path) -> Path:
    """The page's first view in headless Chromium, at a laptop's width (report/browser.py)."""
    from report.browser import chromium

    with chromium() as browser:
        browser.get(page.resolve().as_uri())
        browser.save_screenshot(str(out))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PAGE))
    parser.add_argument("--screenshot", action="store_true", help=f"also write {SCREENSHOT.name} (needs Chromium)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    path = write_page(Path(args.out), page_data())
    print(f"{path} ({path.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - started:.1f} s")
    if args.screenshot:
        from report.browser import BrowserMissing

        try:
            print(screenshot(path, SCREENSHOT))
        except BrowserMissing as err:
            print(f"error: no screenshot: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
