"""The chapters' pictures, drawn from the code they explain, so they stay true when it changes.

    python -m report.diagrams            # redraws every picture into its chapter's folder
    python -m report.diagrams --out DIR  # ... into DIR instead (the tests do this)

- forward_pass.png (chapter 1): microgpt's forward pass for one position, each box naming
  the function of 1_pure_python/main.py that does it, sizes from SPEC.md's configuration.
- adam.png (chapter 1): the learning-rate schedule, and stage 1's own `adam_step` against
  plain gradient descent on a one-parameter problem.
- graph.png (chapter 2): the graph stage 2 builds for one training step, read off its
  Tensors after a real forward pass: every node, labelled with the op that made it.
- grid.png (chapter 4): the programs of one kernel launch laid over the (B, T, C)
  activations, with the tile sizes stage 4's linear launcher picks.
"""

import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402

from shared.weights import GPTConfig, init_run, spec_run  # noqa: E402, F401  (spec_run: the tests' way too)
from tools import stages  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
BOX = dict(boxstyle="round,pad=0.02,rounding_size=0.08", linewidth=1.2)
COLORS = {"embed": "#dbe9f6", "norm": "#fde7c8", "attn": "#e3f1dd", "mlp": "#f3dfec", "out": "#ececec"}


def load_stage(stage: str):
    """A stage's main.py as a module (tools/stages.py)."""
    return stages.load(stage)


# ---------------------------------------------------------------------------- chapter 1


def forward_pass(out: Path) -> Path:
    """Boxes from a token to its loss, top to bottom, each with its shape and its function."""
    c = GPTConfig()
    C, V, T, H, D = c.n_embd, c.vocab_size, c.block_size, c.n_head, c.head_dim
    steps = [  # (text, function in 1_pure_python/main.py, colour, indent)
        (f"token id tok, position t  (t < block_size = {T})", "token_losses: tokens[t]", "out", 0),
        (f"x = wte[tok] + wpe[t]   ({C} numbers: the residual stream)", "gpt", "embed", 0),
        ("x = rmsnorm(x)   (the embedding, normalized once)", "rmsnorm", "norm", 0),
        ("h = rmsnorm(x)   (again: each block normalizes what it reads)", "rmsnorm", "norm", 1),
        (f"q, k, v = Wq h, Wk h, Wv h   ({C} each = {H} heads x {D})", "linear", "attn", 1),
        ("append k, v to the KV cache of positions 0..t", "gpt: keys, values", "attn", 1),
        (f"per head: scores q.k_s / sqrt({D}) for s = 0..t, softmax", "softmax", "attn", 1),
        ("per head: sum of weight_s v_s;  x = x + Wo (all heads)", "linear", "attn", 1),
        ("h = rmsnorm(x)", "rmsnorm", "norm", 1),
        (f"x = x + fc2 relu(fc1 h)     ({C} -> {4 * C} -> {C})", "linear, Value.relu", "mlp", 1),
        (f"logits = lm_head x            ({V} numbers, one per token)", "linear", "out", 0),
        ("p = softmax(logits)", "softmax", "out", 0),
        ("loss_t = -log p[tokens[t + 1]]   (the next token)", "token_losses", "out", 0),
        ("loss = mean of loss_t over the batch's positions", "batch_loss", "out", 0),
    ]
    fig, ax = plt.subplots(figsize=(11, 11))
    ax.set_xlim(0, 11)
    ax.set_ylim(-0.2, len(steps) + 0.4)
    ax.axis("off")
    y_of = {}
    for i, (text, function, color, indent) in enumerate(steps):
        y = len(steps) - 1 - i
        x0 = 0.4 + 0.5 * indent
        ax.add_patch(FancyBboxPatch((x0, y + 0.12), 7.4 - 0.5 * indent, 0.62, facecolor=COLORS[color], **BOX))
        ax.text(x0 + 0.15, y + 0.43, text, va="center", fontsize=10, family="monospace")
        ax.text(8.1, y + 0.43, function, va="center", fontsize=9.5, color="#333333", style="italic")
        y_of[i] = y
        if i:
            ax.add_patch(FancyArrowPatch((3.4, y + 1.12), (3.4, y + 0.74), arrowstyle="-|>", mutation_scale=10,
                                         color="#555555"))
    for first, last, label in ((3, 7, f"attention block (x {c.n_layer} layer)"), (8, 9, "MLP block")):
        top, bottom = y_of[first] + 0.8, y_of[last] + 0.06
        ax.plot([0.72, 0.72], [bottom, top], color="#777777", lw=1)
        ax.text(0.6, (top + bottom) / 2, label, rotation=90, va="center", ha="right", fontsize=9, color="#555555")
    ax.text(8.1, len(steps) - 0.15, "function in 1_pure_python/main.py", fontsize=9.5, weight="bold")
    ax.set_title(f"microgpt's forward pass for one position (n_embd {C}, {H} heads, vocabulary {V}); "
                 f"the blocks repeat n_layer times", fontsize=11)
    path = out / "forward_pass.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def adam_demo(num_steps: int = 1000) -> dict:
    """Stage 1's own adam_step, and plain gradient descent with the same learning-rate schedule,
    minimizing loss(w) = scale * (w - 3)^2 / 2 from w = 0, for scale 1 and 1/100."""
    stage1 = load_stage("1_pure_python")
    paths = {}
    for scale in (1.0, 0.01):
        w, m, v, descent = stage1.Value(0.0), [0.0], [0.0], 0.0
        path_adam, path_descent = [0.0], [0.0]
        for step in range(num_steps):
            w.grad = scale * (w.data - 3.0)  # d loss / dw
            stage1.adam_step([w], m, v, step, num_steps)
            descent -= stage1.LEARNING_RATE * (1 - step / num_steps) * scale * (descent - 3.0)
            path_adam.append(w.data)
            path_descent.append(descent)
        paths[scale] = (path_adam, path_descent)
    return {"lr": stage1.LEARNING_RATE, "paths": paths, "num_steps": num_steps}


def adam(out: Path) -> Path:
    c = adam_demo()
    stage1 = load_stage("1_pure_python")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    steps = range(1000)
    axes[0].plot(steps, [stage1.LEARNING_RATE * (1 - s / 1000) for s in steps], color="k")
    axes[0].set(xlabel="step", ylabel="learning rate lr_t", title="The schedule: lr_t = 0.01 (1 - t / 1000)")
    for scale, style in ((1.0, "-"), (0.01, "--")):
        path_adam, path_descent = c["paths"][scale]
        axes[1].plot(path_adam, style, color="#d62728", label=f"Adam (adam_step), loss x {scale:g}")
        axes[1].plot(path_descent, style, color="#7f7f7f", label=f"gradient descent, loss x {scale:g}")
    axes[1].axhline(3.0, color="k", lw=0.8, ls=":")
    path_adam = c["paths"][1.0][0]
    axes[1].annotate("Adam: one path for both losses\n(the two red lines coincide)", (300, path_adam[300]),
                     xytext=(420, 1.2), color="#d62728", fontsize=9, arrowprops=dict(arrowstyle="->", color="#d62728"))
    axes[1].set(xlabel="step", ylabel="w", ylim=(-0.2, 3.6),
                title="Minimizing scale x (w - 3)^2 / 2 from w = 0")
    axes[1].legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    path = out / "adam.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def trained_stage2(steps: int = 1000):
    """(stage 2 module, config, tokenizer, initial params, trained params): stage 2's own `train`
    run in this process on SPEC.md's run (1000 steps take about a second), as main.py runs it."""
    trained, run, _ = stages.train_keeping("2_numpy", ["--steps", str(steps)])
    stage2 = load_stage("2_numpy")
    _, initial = stage2.make_params(run.initial_weights, run.config)
    return stage2, run.config, run.tokenizer, initial, trained


def attention_weights(stage2, params: dict, config, tokens: list[int]) -> tuple[np.ndarray, ...]:
    """(weights (H, T, T), value vectors (H, T, D), attention's output (T, C)) of layer 0 on one
    document's positions: row t is how much position t reads each position s <= t. The weights
    are computed here, from the q, k and v that stage 2's own forward keeps ("qkv", shared/keep.py),
    since its causal_attention never hands them out; its output "y" is what they must give
    (tests/test_diagrams.py holds weights @ values to it)."""
    from shared.keep import keeping

    with keeping() as kept:
        stage2.batch_loss([tokens], params, config)
    qkv, y = kept["qkv"][0].value.data[0], kept["y"][0].value.data[0]  # (T, 3C), (T, C): one document
    T, H, D = len(qkv), config.n_head, config.head_dim
    q, k, v = qkv.reshape(T, 3, H, D).transpose(1, 2, 0, 3)  # each (H, T, D)
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(D) + np.triu(np.full((T, T), -np.inf), k=1)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True), v, y


ATTENTION_NAME = "isabella"


def attention(out: Path, name: str = ATTENTION_NAME) -> Path:
    """Top: the causal mask, and layer 0's four heads on one name with the initial weights.
    Bottom: the same heads after stage 2's 1000 training steps. Row = the position reading,
    column = the position read; each row sums to 1."""
    stage2, config, tokenizer, initial, trained = trained_stage2()
    tokens = tokenizer.encode_doc(name)
    shown = ["BOS", *name][:config.block_size]
    T = len(shown)
    fig, axes = plt.subplots(2, config.n_head + 1, figsize=(3.3 * (config.n_head + 1), 7.2),
                             gridspec_kw=dict(wspace=0.35, hspace=0.35))
    mask = np.tril(np.ones((T, T)))
    axes[0, 0].imshow(mask, cmap="Greys", vmin=0, vmax=1.6)
    for t in range(T):
        for s in range(T):
            axes[0, 0].text(s, t, "0" if s <= t else "-inf", ha="center", va="center", fontsize=6,
                            color="white" if s <= t else "#999999")
    axes[0, 0].set_title("causal mask, added to the scores:\n0 on/below the diagonal, -inf above", fontsize=9)
    axes[1, 0].axis("off")
    axes[1, 0].text(0, 0.5, f"Row t: position t reading\npositions 0..t of '{name}'.\nEach row's weights sum "
                    "to 1\n(a softmax); above the diagonal\nthey are exactly 0.\n\nTop: the initial weights.\n"
                    "Bottom: after stage 2's\n1000 steps (SPEC.md's run).",
                    fontsize=9, va="center", transform=axes[1, 0].transAxes)
    for row, (params, when) in enumerate(((initial, "initial weights"), (trained, "after 1000 steps"))):
        weights, *_ = attention_weights(stage2, params, config, tokens)
        for h in range(config.n_head):
            ax = axes[row, h + 1]
            ax.imshow(weights[h], cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"head {h}, {when}", fontsize=9)
    for ax in axes.flat:
        if ax is axes[1, 0]:
            continue
        ax.set_xticks(range(T), shown, fontsize=7)
        ax.set_yticks(range(T), shown, fontsize=7)
        ax.set_xlabel("position read (key)", fontsize=8)
    for ax in (axes[0, 0], axes[0, 1], axes[1, 1]):
        ax.set_ylabel("position reading (query)", fontsize=8)
    colorbar = fig.colorbar(axes[1, 1].images[0], ax=axes[:, 1:].ravel().tolist(), shrink=0.6, pad=0.02)
    colorbar.set_label("attention weight")
    fig.suptitle(f"Layer 0's attention weights on '{name}': softmax(q k^T / sqrt({config.head_dim}) + mask), "
                 f"per head", fontsize=11)
    path = out / "attention.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- chapter 2


def stage2_graph(name: str = "emma") -> tuple[list, dict]:
    """(nodes in topological order, {node: label}) of the graph stage 2 builds for one name."""
    stage2 = load_stage("2_numpy")
    tokenizer, config, _, state = spec_run()
    _, params = stage2.make_params(state, config)
    loss = stage2.batch_loss([tokenizer.encode_doc(name)], params, config)
    names = {id(t): n for n, t in params.items()}
    order, seen = [], set()

    def visit(node):  # (small graph: recursion is fine here)
        if id(node) in seen:
            return
        seen.add(id(node))
        for child in node._children:
            visit(child)
        order.append(node)
    visit(loss)
    labels = {}
    for node in order:
        if id(node) in names:
            labels[id(node)] = names[id(node)].replace("layer0.", "")
        elif node._backward is None:
            labels[id(node)] = "constant"
        else:
            op = node._backward.__qualname__.split(".")[0]
            labels[id(node)] = {"Tensor": node._backward.__qualname__.split(".")[1].strip("_")}.get(op, op)
    return order, labels


def graph(out: Path) -> Path:
    """The ops top to bottom in the order forward made them; each parameter beside the op that
    reads it; an input that skips ops (the residual stream) as an arc on the left."""
    order, labels = stage2_graph()
    ops = [node for node in order if node._backward is not None]
    row = {id(node): i for i, node in enumerate(ops)}
    position = {id(node): (0.0, -i) for i, node in enumerate(ops)}
    beside: dict[int, int] = {}
    for node in order:
        if node._backward is None:
            consumer = next(op for op in ops if any(child is node for child in op._children))
            k = beside.get(id(consumer), 0)
            beside[id(consumer)] = k + 1
            position[id(node)] = (2.6, -row[id(consumer)] - 0.5 * k)  # a second one just below
    fig, ax = plt.subplots(figsize=(10, 10))
    for op in ops:
        x, y = position[id(op)]
        for child in op._children:
            cx, cy = position[id(child)]
            if child._backward is None:  # a parameter: from the right
                style = dict(arrowstyle="-|>", color="#4c72b0", lw=1, shrinkA=22, shrinkB=38)
            elif row[id(op)] - row[id(child)] == 1:  # the op just before
                style = dict(arrowstyle="-|>", color="#777777", lw=1, shrinkA=12, shrinkB=12)
            else:  # skips ops: the residual stream, on the left
                cx, x_to = cx - 0.75, x - 0.75
                ax.annotate("", (x_to, y), (cx, cy), arrowprops=dict(
                    arrowstyle="-|>", color="#d62728", lw=1, connectionstyle="arc3,rad=0.35"))
                continue
            ax.annotate("", (x, y), (cx, cy), arrowprops=style)
    for node in order:
        x, y = position[id(node)]
        leaf = node._backward is None
        ax.text(x, y, f"{labels[id(node)]} {tuple(node.data.shape)}", ha="center", va="center", fontsize=8.5,
                bbox=dict(boxstyle="round", facecolor="#dbe9f6" if leaf else "#fde7c8", edgecolor="#555555"))
    ax.text(-1.9, -len(ops) / 2, "residual stream", rotation=90, color="#d62728", va="center", fontsize=9)
    ax.axis("off")
    ax.set_xlim(-2.2, 3.8)
    ax.set_ylim(-len(ops) + 0.4, 0.6)
    ax.set_title(f"The graph stage 2 builds for one step on 'emma': {len(order)} nodes ({len(ops)} ops, in the "
                 f"order forward makes them,\n{len(order) - len(ops)} parameters beside the op that reads them), each "
                 f"with its array's shape; stage 1 makes one node per scalar + and * instead\n(graph_nodes in each "
                 f"stage's results.json counts both)", fontsize=10)
    path = out / "graph.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- chapter 4


def grid(out: Path) -> Path:
    """Two launches' programs laid over the activations they write: linear_fwd_kernel for fc1
    (rows of every document together, tiles from kernels/launch.py's matmul_tiles) and the
    attention kernel (one program per document and head, its grid in kernels/attention.py)."""
    stages.folder("4_triton")
    from kernels import backend

    backend.choose()  # (kernels/launch.py imports Triton)
    from kernels.launch import matmul_tiles

    c = GPTConfig()
    T, C, H, D, N = c.block_size, c.n_embd, c.n_head, c.head_dim, 4 * c.n_embd
    cmap = plt.get_cmap("tab20")
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.5), gridspec_kw={"width_ratios": [N, 2.2 * C]})

    B = 9  # enough rows for several row tiles, the last one part padding
    M = B * T
    block_m, block_n, _ = matmul_tiles(M, N, C)
    ax = axes[0]
    for pm in range(-(-M // block_m)):
        for pn in range(-(-N // block_n)):
            top, height = pm * block_m, block_m
            ax.add_patch(Rectangle((pn * block_n, top), block_n, height, facecolor=cmap(2 * pm % 20), alpha=0.5,
                                   edgecolor="k", lw=1.5))
            ax.text(pn * block_n + block_n / 2, top + min(height, M - top) / 2, f"program ({pm}, {pn})",
                    ha="center", va="center", fontsize=10)
    ax.add_patch(Rectangle((0, M), N, -(-M // block_m) * block_m - M, facecolor="none", hatch="//",
                           edgecolor="#999999"))
    ax.text(N / 2, M + 4, "masked: rows past B x T", ha="center", va="top", fontsize=9, color="#555555")
    for b in range(1, B):
        ax.axhline(b * T, color="#333333", lw=0.6, ls="--")
    ax.set_xlim(0, N)
    ax.set_ylim(-(-M // block_m) * block_m, 0)
    ax.set(xlabel=f"columns: fc1's {N} outputs (4C)", ylabel=f"rows: B x T = {B} x {T} = {M} (dashes: documents)",
           title=f"linear_fwd_kernel, fc1, B = {B}: grid ({-(-M // block_m)}, {-(-N // block_n)}), "
                 f"{block_m} x {block_n} tiles")

    B = 3
    ax = axes[1]
    for b in range(B):
        for h in range(H):
            ax.add_patch(Rectangle((h * D, b * T), D, T, facecolor=cmap((4 * b + h) % 20), alpha=0.6,
                                   edgecolor="k", lw=1.2))
            ax.text(h * D + D / 2, b * T + T / 2, f"({b}, {h})", ha="center", va="center", fontsize=9)
        ax.axhline(b * T, color="#333333", lw=0.6, ls="--")
    ax.set_xlim(0, C)
    ax.set_ylim(B * T, 0)
    ax.set_xticks([h * D for h in range(H + 1)])
    ax.set(xlabel=f"columns: y's {C} channels, {H} heads of {D}", ylabel=f"rows: B x T = {B} x {T}",
           title=f"attention_fwd_kernel, B = {B}: grid (B, H) = ({B}, {H}),\none program per document and head")
    fig.suptitle("Programs of one launch over the (B, T, C) activations they write (sizes from SPEC.md and the "
                 "launchers in 4_triton/kernels/)", fontsize=11)
    path = out / "grid.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


DIAGRAMS = {"1_pure_python": [forward_pass, adam, attention], "2_numpy": [graph], "4_triton": [grid]}


def main(argv=None) -> int:
    from shared.cli import Parser

    parser = Parser(prog="python -m report.diagrams", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="one folder for every picture (default: each chapter's)")
    args = parser.parse_args(argv)
    for stage, drawings in DIAGRAMS.items():
        folder = Path(args.out) if args.out else REPO_ROOT / stage
        for draw in drawings:
            print(draw(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
