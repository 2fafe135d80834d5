"""One training step, seen whole: a page that walks a name through microgpt's forward pass,
its backward pass and Adam's update, with every number from all four stages.

    python -m report.step_page               # writes training_step.html at the repository's root
    python -m report.step_page --out F       # ... to F instead
    python -m report.step_page --screenshot  # and training_step.png and training_step_backward.png (Chromium)

The numbers come from the stages' own code, in float64, on SPEC.md's weights after 0, 1 and
1000 steps of SPEC.md's run (trained by stage 2, whose losses equal stage 1's to 1e-6):

- each stage runs one step of its own `train` on one name (tools/stages.py's `train_keeping`),
  and its forward hands every quantity of the model to `keep` (shared/keep.py) under SPEC.md's
  name, with the function and line that computed it; after backward each has its gradient;
- a box is one such quantity (the embedding, q, the attention weights, ...), from every stage
  that keeps it; where a stage computes it inside one fused operation and never holds it, the
  page says why;
- Adam's update for a few weights: the gradient, the moments before and after, the bias
  correction and the step, as stage 2's `adam_step` computes them.

The page is one HTML file with its style, data and script inline (no server, no network): a
reader opens it from the clone with a double-click. Its HTML, style sheet and script are the
files step_page.html, step_page.css and step_page.js beside this one. tests/test_step_page.py regenerates the data and
compares it with the committed page, and drives the page in headless Chromium.
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from shared import cli
from shared.errors import UserError
from shared.saving import write_text_atomic
from shared.tokenizer import positions
from shared.weights import param_offsets, param_shapes, spec_run
from tools import stages

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGE = REPO_ROOT / "training_step.html"
SCREENSHOT = REPO_ROOT / "training_step.png"
SCREENSHOT_BACKWARD = REPO_ROOT / "training_step_backward.png"
HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "step_page.html"  # the page's HTML; its style sheet and script are step_page.css and .js beside it
STYLE_TAG = '<link rel="stylesheet" href="step_page.css">'
DATA_TAG = '<script src="step_page_data.js"></script>'
SCRIPT_TAG = '<script src="step_page.js"></script>'
NAMES = ["emma", "isabella", "yuheng"]  # yuheng: the name step 1 of SPEC.md's run trains on
STEPS = [0, 1, 1000]  # the weights after this many steps of SPEC.md's run
STAGES = ["1_pure_python", "2_numpy", "3_pytorch", "4_triton"]
DIGITS = 17  # enough to see two float64 results differ in their last bit

# The boxes, in the order forward computes them: key (SPEC.md's name of the value, which every
# stage's forward passes through `keep`), title, and what it is. A stage's box shows what that
# stage kept under the name, with the function and line that kept it; q, k and v are read from
# "qkv" (B, T, 3C) where a stage computes them as one matmul.
BOXES = [  # (key, title, what forward computes, what backward computes: the local derivative, g_X = dL/dX)
    ("x0", "embedding", "x = wte[token] + wpe[position]: the token's row plus the position's row",
     "rmsnorm's backward of g_x1 (chapter 2 derives it): r (g - y mean(g * y)), with r = 1 / rms(x0) and y = x1"),
    ("x1", "rmsnorm", "x / sqrt(mean(x^2) + eps): each position's 16 numbers rescaled to size 1",
     "two paths add: g_x2 straight through the residual (x2 = x1 + ...), plus rmsnorm's backward of g_h_attn"),
    ("h_attn", "rmsnorm before attention", "what attention reads: rmsnorm of the residual stream",
     "h feeds q, k and v: g_q Wq + g_k Wk + g_v Wv"),
    ("q", "query q", "q = Wq h: what each position looks for (4 heads of 4 numbers)",
     "per head: g_q = g_S k / sqrt(D), since S = q k^T / sqrt(D)"),
    ("k", "key k", "k = Wk h: what each position offers to be found by",
     "per head: g_k = g_S^T q / sqrt(D): key s collects from every row t that read it"),
    ("v", "value v", "v = Wv h: what each position hands over when it is read",
     "per head: g_v = P^T g_y: value s collects from every row t, weighted by how much t read it"),
    ("scores", "attention scores", "q . k / sqrt(4) per head, and the causal mask: -inf where a position "
     "would read a later one (grey)",
     "softmax's backward, per row: g_S = P * (g_P - sum over the row of g_P * P); a masked cell gets 0"),
    ("attn", "attention weights", "softmax of each row of the scores, per head: row t reads positions 0..t",
     "per head: g_P = g_y v^T, since y = P v: weight (t, s) moved y_t by v_s"),
    ("y", "weighted values", "each head's sum of weight x value, the 4 heads side by side",
     "y feeds only Wo: g_y = g_x2 Wo"),
    ("x2", "residual after attention", "x + Wo y: attention's output added to the residual stream",
     "two paths add: g_x3 straight through the residual (x3 = x2 + ...), plus rmsnorm's backward of g_h_mlp"),
    ("h_mlp", "rmsnorm before the MLP", "what the MLP reads: rmsnorm of the residual stream",
     "h feeds only fc1: g_h = g_fc1 W1"),
    ("fc1", "fc1, before the ReLU", "W1 h: 16 numbers widened to 64",
     "ReLU passes a gradient only where its input was positive: g_fc1 = g_relu * [fc1 > 0]"),
    ("relu", "ReLU", "max(0, W1 h): the negative ones set to 0",
     "relu feeds only W2: g_relu = g_x3 W2"),
    ("x3", "residual after the MLP", "x + W2 relu(W1 h): the MLP's output added to the residual stream",
     "x3 feeds only lm_head: g_x3 = g_logits lm_head"),
    ("logits", "logits", "lm_head x: one number per token of the vocabulary (columns a to z, then BOS)",
     "softmax and -log p together: g_logits = (p - onehot(next token)) / n; stages 2-4 start the backward here"),
    ("probs", "probabilities", "softmax(logits): the model's guess for the next token (columns a to z, then BOS)",
     "loss = -log p[next]: g_p = -g_loss / p at the next token, 0 at every other"),
    ("loss", "loss", "-log p[the next token], at each position; the step's loss is their mean",
     "the step's loss is the mean over the n positions: g = 1 / n at each; the backward starts here"),
]
# The weights' gradients, as backward leaves them: g_W = sum over positions t of g_out[t] x[t]^T
# for out = x W^T; an embedding's rows are gathered, so their gradients are scattered back and added.
# "Start here": a newcomer's walk from the loss back to one weight: (box, which cell, what to see there).
# The cell: "target" is the last position's next token, "first" the last position's first number.
TOUR = [
    ("loss", "last", "The backward pass starts at the loss. The step's loss L is the mean of the n positions' "
     "losses, so each position's loss gets the gradient 1/n: how much L moves if that loss moves by 1."),
    ("probs", "target", "loss_t = -log p[next token]. Its local derivative is -1/p: a small p (a surprised "
     "model) gets a large gradient. Every other probability gets 0."),
    ("logits", "target", "Softmax and -log together give the gradient every framework uses: (p - onehot)/n. At "
     "the next token p - 1 is negative (raise this logit); at every other token p is positive (lower it)."),
    ("x3", "first", "Back through lm_head: x3's gradient sums, over the 27 tokens, a logit's gradient x the "
     "weight that links them. The table lists the largest of the 27 products."),
    ("lm_head", "target", "And one weight: lm_head's gradient at (next token, number 0) adds, over the positions, "
     "the logit's gradient x the x3 number the weight multiplied. This is the number Adam reads."),
    ("x2", "first", "Further down, the residual stream: x3 = x2 + MLP(x2), so x2's gradient is x3's gradient "
     "passed straight through, plus what comes back through the MLP and its rmsnorm: where paths meet, "
     "gradients add."),
]
TOUR_KEYS = [key for key, *_ in TOUR]
WEIGHT_BOXES = [  # (weight, title, out box, in box)
    ("lm_head", "lm_head", "logits", "x3"),
    ("layer0.mlp_fc2", "W2 (mlp_fc2)", "x3", "relu"),
    ("layer0.mlp_fc1", "W1 (mlp_fc1)", "fc1", "h_mlp"),
    ("layer0.attn_wo", "Wo (attn_wo)", "x2", "y"),
    ("layer0.attn_wq", "Wq (attn_wq)", "q", "h_attn"),
    ("layer0.attn_wk", "Wk (attn_wk)", "k", "h_attn"),
    ("layer0.attn_wv", "Wv (attn_wv)", "v", "h_attn"),
    ("wpe", "wpe, the position embedding", "x0", None),
    ("wte", "wte, the token embedding", "x0", None),
]
WHY_NOT = {  # why a stage keeps no value for a box (tests/test_step_page.py: exactly the boxes it does not keep)
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
# How each stage is run: its own command line, float64 on the CPU (stage 4 through Triton's interpreter)
ARGV = {"1_pure_python": [], "2_numpy": ["--dtype", "float64"], "3_pytorch": ["--dtype", "float64", "--device", "cpu"],
        "4_triton": ["--dtype", "float64"]}
SPEC_ARGV = ["--steps", "1000"]  # SPEC.md's run: its schedule is 1000 steps long


# ---------------------------------------------------------------------------- the weights


def weights_after(steps: list[int]) -> dict[int, dict]:
    """{k: the weights after k steps of SPEC.md's run (SPEC.md's names), and Adam's moments m and v
    then}, for each k in `steps`: stage 2's own `train`, stopped after k steps, in float64 (its
    losses are stage 1's to 1e-6); it keeps its flat weight buffer and moments (shared/keep.py)."""
    out = {}
    for k in steps:
        if k == 0:
            _, run, _ = stages.train_keeping("2_numpy", [*SPEC_ARGV, *ARGV["2_numpy"]], max_steps=1)
            state, config = run.initial_weights, run.config
            flat = flatten(state, config)
            out[k] = {"state": state, "m": np.zeros_like(flat), "v": np.zeros_like(flat), "flat": flat}
            continue
        _, run, kept = stages.train_keeping("2_numpy", [*SPEC_ARGV, *ARGV["2_numpy"]], max_steps=k)
        flat, m, v = (kept[name][-1].value.copy() for name in ("weights", "adam_m", "adam_v"))
        out[k] = {"state": unflatten(flat, run.config), "m": m, "v": v, "flat": flat}
    return out


def flatten(state: dict, config) -> np.ndarray:
    return np.concatenate([np.asarray(state[name], dtype=np.float64).ravel() for name, _ in param_shapes(config)])


def unflatten(flat: np.ndarray, config) -> dict[str, list[list[float]]]:
    offsets = param_offsets(config)
    return {name: flat[offsets[name][0]:offsets[name][0] + rows * cols].reshape(rows, cols).tolist()
            for name, (rows, cols) in param_shapes(config)}


# ---------------------------------------------------------------------------- what a stage kept


def pair(value) -> np.ndarray:
    """(2, ...): a kept value and its gradient, whatever the stage's kind of number (a Value, a
    list of Values, our Tensor, a PyTorch tensor); a gradient backward never reached is 0."""
    if isinstance(value, list):
        return np.stack([pair(x) for x in value], axis=1)
    if hasattr(value, "detach"):  # a PyTorch tensor
        data = value.detach().cpu().numpy()
        return np.array([data, np.zeros_like(data) if value.grad is None else value.grad.cpu().numpy()])
    data = np.asarray(value.data, dtype=np.float64)
    return np.array([data, np.zeros_like(data) if value.grad is None else np.asarray(value.grad)])


def stage_boxes(stage: str, state: dict, name: str) -> dict:
    """One step of the stage's own training on `name` from `state`, and every box it kept.

    Stage 1 keeps one position at a time (scores and attn once per head of each position);
    stages 2-4 keep each value once per layer, (B, T, ...) for a batch of B documents, here one."""
    _, run, kept = stages.train_keeping(stage, [*SPEC_ARGV, *ARGV[stage]], max_steps=1, weights=state,
                                        documents=[name])
    config = run.config
    C, H, T = config.n_embd, config.n_head, positions(run.tokenizer.encode_doc(name), config.block_size)
    boxes, where = {}, {}
    for key, *_ in BOXES:
        source = key if key in kept else "qkv" if key in "qkv" and "qkv" in kept else None
        if source is None:
            continue
        records = kept[source]
        where[key] = {"function": records[0].function, "line": records[0].line}
        if stage == "1_pure_python" and key in ("scores", "attn"):  # a row per (position, head), rows 0..t
            box = np.zeros((2, H, T, T))
            if key == "scores":  # the causal mask: -inf where a position would read a later one
                box[0][np.broadcast_to(np.triu(np.ones((T, T), dtype=bool), k=1), (H, T, T))] = -np.inf
            for i, record in enumerate(records):
                t, h = divmod(i, H)
                box[:, h, t, :t + 1] = pair(record.value)
        elif stage == "1_pure_python":
            box = np.stack([pair(record.value) for record in records], axis=1)  # (2, T, ...)
        else:
            (record,) = records  # one layer
            box = pair(record.value)[:, 0, :T]  # the one document's real positions
        if source == "qkv":
            box = box[..., "qkv".index(key) * C:("qkv".index(key) + 1) * C]
        boxes[key] = box
    return {"boxes": boxes, "where": where, "loss": run.losses[0],
            "graph_nodes": run.record.series.get("graph_nodes", [None])[0]}


# ---------------------------------------------------------------------------- the page's data


def packed(values: np.ndarray) -> str:
    """float64 numbers as base64 (every bit kept, half the size of decimal text)."""
    import base64

    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode()


def short(x: float) -> float:
    return float(f"{x:.3g}")


def run_data(name: str, step: int, trained: dict, captured: dict) -> dict:
    """Every box of every stage for one name at one step, stage 1 as the reference: its numbers
    in full, the other stages' as their differences from it (most are exactly zero)."""
    tokenizer, config, _, _ = spec_run()
    ref = captured["1_pure_python"]["boxes"]
    boxes = {}
    for key, *_ in BOXES:
        entry = {"shape": list(ref[key].shape[1:]), "ref": packed(ref[key]), "diff": {}, "max": {}}
        for stage in STAGES[1:]:
            theirs = captured[stage]["boxes"].get(key)
            if theirs is None:
                continue
            if any(a < b for a, b in zip(theirs.shape, ref[key].shape)):
                raise ValueError(f"{stage} kept {key} with shape {theirs.shape[1:]}, stage 1 {ref[key].shape[1:]}")
            delta = theirs[tuple(slice(0, n) for n in ref[key].shape)] - ref[key]  # (stage 4 pads the vocabulary)
            entry["diff"][stage] = [short(d) for d in delta.ravel()]
            entry["max"][stage] = [float(np.abs(delta[0]).max()), float(np.abs(delta[1]).max())]
        boxes[key] = entry
    tokens = tokenizer.encode_doc(name)
    shown = ["BOS" if t == tokenizer.bos else tokenizer.decode([t]) for t in tokens]
    return {"inputs": shown[:-1][:config.block_size], "targets": shown[1:config.block_size + 1],
            "loss": {stage: captured[stage]["loss"] for stage in STAGES},
            "graph_nodes": {stage: captured[stage]["graph_nodes"] for stage in STAGES[:2]},
            "boxes": boxes, "adam": adam_rows(name, step, trained, config, tokenizer),
            "weight_grad": packed(weight_gradient(trained[step]["state"], config, tokenizer.encode_doc(name)))}


def weight_gradient(state: dict, config, tokens: list[int]) -> np.ndarray:
    """Every weight's gradient for one name, as stage 2's backward leaves it, in SPEC.md's flat
    order (tests/test_parity.py holds the four stages' weight gradients equal)."""
    stage2 = stages.load("2_numpy")
    _, params = stage2.make_params(state, config)
    stage2.batch_loss([tokens], params, config).backward()
    return stage2.flat_grad(params)


def adam_rows(name: str, step: int, trained: dict, config, tokenizer) -> list[dict]:
    """Adam's update of four weights (the largest gradient of four matrices) if this step
    trained on this name: stage 2's adam_step on copies of the run's buffers."""
    stage2 = stages.load("2_numpy")
    flat = trained[step]["flat"]
    grad = weight_gradient(trained[step]["state"], config, tokenizer.encode_doc(name))
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
    stages.load("4_triton")  # first: its kernels choose where Triton runs before PyTorch's compiler can load it
    trained = weights_after(STEPS)
    captured = {(name, step): {stage: stage_boxes(stage, trained[step]["state"], name) for stage in STAGES}
                for name in NAMES for step in STEPS}
    first = captured[NAMES[0], STEPS[0]]
    boxes = [{"key": key, "title": title, "what": what, "back": back,
              "where": {stage: first[stage]["where"].get(key) for stage in STAGES},
              "why_not": {stage: WHY_NOT[key, stage] for stage in STAGES if key not in first[stage]["where"]}}
             for key, title, what, back in BOXES]
    tokenizer, config, _, _ = spec_run()
    vocab = ["BOS" if i == tokenizer.bos else tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
    weights = [{"key": key, "title": title, "out": out, "in": into} for key, title, out, into in WEIGHT_BOXES]
    return {"names": NAMES, "steps": STEPS, "stages": STAGES, "boxes": boxes, "vocab": vocab,
            "weight_boxes": weights, "n_head": config.n_head, "tour": [list(stop) for stop in TOUR],
            "offsets": {name: list(offset) for name, offset in param_offsets(config).items()},
            "rmsnorm_eps": stages.load("2_numpy").RMSNORM_EPS,
            "weights": {str(step): packed(trained[step]["flat"]) for step in STEPS},
            "runs": {f"{name}|{step}": run_data(name, step, trained, captured[name, step])
                     for name in NAMES for step in STEPS}}


def page_html(data: dict) -> str:
    """The template with its style sheet, the data and the script inlined: one file that opens
    with a double-click (the template names them as files, for a web engineer's tools)."""
    html = TEMPLATE.read_text()
    inline = {STYLE_TAG: f"<style>\n{HERE.joinpath('step_page.css').read_text()}</style>",
              DATA_TAG: f"<script>\n{GENERATED}{json.dumps(data, separators=(',', ':'))};\n</script>",
              SCRIPT_TAG: f"<script>\n{HERE.joinpath('step_page.js').read_text()}</script>"}
    for tag, text in inline.items():
        if html.count(tag) != 1:
            raise ValueError(f"{TEMPLATE.name} must hold {tag} once")
        html = html.replace(tag, text)
    return html


def committed_data(path: Path = PAGE) -> dict:
    """The data inside a generated page."""
    text = path.read_text()
    start = text.index(GENERATED) + len(GENERATED)
    return json.JSONDecoder().raw_decode(text[start:])[0]


def screenshot(page: Path, out: Path, backward: Path | None = None) -> list[Path]:
    """The page's first view in headless Chromium, at a laptop's width (report/browser.py), and,
    to `backward`, the backward view at the third stop of its "Start here" walk (the logits'
    gradient, with the product that makes it)."""
    from report.browser import chromium

    with chromium() as browser:
        browser.get(page.resolve().as_uri())
        browser.save_screenshot(str(out))
        if backward is None:
            return [out]
        browser.find_element("id", "tour-start").click()
        for _ in range(2):
            browser.find_element("id", "tour-next").click()
        # the walk's words (they stay on top), the logits' box and its detail
        browser.execute_script("document.querySelector('#boxes .box.selected').scrollIntoView({block: 'start'});"
                               "window.scrollBy(0, -240)")
        browser.save_screenshot(str(backward))
    return [out, backward]


GENERATED = "const " + "DATA = "  # in every page this program wrote (built so that this file does not hold it)


def check_out(out: Path) -> None:
    """Before 30 s of computing: --out must be a page this program may write. A folder, a missing
    or read-only directory (shared/cli.py's check, as every training program's --out); any
    existing file but a page generated before (the names, the template, a README): refused."""
    cli.check_writable(str(out))
    if out.exists() and out.is_file():
        try:
            ours = GENERATED in out.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            raise UserError(f"--out {out} cannot be read ({err.strerror}); choose another path") from None
        if not ours:
            raise UserError(f"--out {out} exists and is not a page this program generated; writing there would "
                            f"replace it: choose a new path, such as training_step.html")
    for source in (TEMPLATE, HERE / "step_page.css", HERE / "step_page.js", Path(__file__)):
        if out.exists() and os.path.samefile(out, source):
            raise UserError(f"--out {out} is the page's own {source.name}; choose another path")


def generate(args) -> None:
    out = Path(args.out)
    check_out(out)
    if args.screenshot:
        from report.browser import BrowserMissing, chromium, programs

        try:
            programs()  # no browser, no driver or no selenium: say so now, not after computing
        except BrowserMissing as err:
            raise UserError(f"--screenshot needs a browser: {err}") from None
        from selenium.common.exceptions import WebDriverException

        try:
            with chromium():  # a driver that cannot start: said now too
                pass
        except WebDriverException as err:
            raise UserError(f"--screenshot: Chromium did not start ({first_line(err)}); check that chromium and "
                            f"chromedriver are the same version, or leave out --screenshot") from None
    started = time.perf_counter()
    html = page_html(page_data())
    write_text_atomic(out, html)
    print(f"{out} ({out.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - started:.1f} s")
    if args.screenshot:
        from selenium.common.exceptions import WebDriverException

        try:
            print(*screenshot(out, SCREENSHOT, SCREENSHOT_BACKWARD))
        except WebDriverException as err:  # a driver that crashed or does not match the browser
            raise UserError(f"the page is written to {out}, but Chromium failed while taking its picture "
                            f"({first_line(err)}); check that chromium and chromedriver are the same version") from None


def first_line(err) -> str:
    """The first line of a WebDriverException's message (Selenium's run on for lines)."""
    return (err.msg or type(err).__name__).strip().splitlines()[0]


def main(argv=None) -> int:
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PAGE), help="the page to write (a new file, or a page written before)")
    parser.add_argument("--screenshot", action="store_true",
                        help=f"also write {SCREENSHOT.name} and {SCREENSHOT_BACKWARD.name} (needs Chromium)")
    args = parser.parse_args(argv)
    return cli.run(lambda: generate(args))


if __name__ == "__main__":
    sys.exit(main())
