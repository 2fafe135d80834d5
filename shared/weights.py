"""Model configuration and the initial weights of SPEC.md.

One `random.Random(seed)` drives, in this order: the shuffle of the documents, the
parameter draws below, and (continued by each stage) the sampling at the end. Every stage
starts from `init_run`, so all four train the very same numbers.

Parameters, in this order, each a matrix [n_out][n_in] drawn row-major from gauss(0, 0.08):

    wte (V, C)   wpe (block_size, C)   lm_head (V, C)
    per layer: attn_wq, attn_wk, attn_wv, attn_wo (C, C), mlp_fc1 (4C, C), mlp_fc2 (C, 4C)
"""

import random
from dataclasses import asdict, dataclass

INIT_STD = 0.08


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 27
    n_layer: int = 1  # transformer blocks
    n_embd: int = 16  # C: width of the residual stream
    n_head: int = 4  # H: attention heads
    block_size: int = 16  # longest context, in tokens

    @property
    def head_dim(self) -> int:  # D
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)


def param_shapes(config: GPTConfig) -> list[tuple[str, tuple[int, int]]]:
    """(name, (n_out, n_in)) of every parameter matrix, in draw order."""
    C, V = config.n_embd, config.vocab_size
    shapes = [("wte", (V, C)), ("wpe", (config.block_size, C)), ("lm_head", (V, C))]
    for i in range(config.n_layer):
        shapes += [
            (f"layer{i}.attn_wq", (C, C)),
            (f"layer{i}.attn_wk", (C, C)),
            (f"layer{i}.attn_wv", (C, C)),
            (f"layer{i}.attn_wo", (C, C)),
            (f"layer{i}.mlp_fc1", (4 * C, C)),
            (f"layer{i}.mlp_fc2", (C, 4 * C)),
        ]
    return shapes


def param_offsets(config: GPTConfig) -> dict[str, tuple[int, int, int]]:
    """{name: (offset, rows, cols)} of every matrix in one flat buffer laid out in draw order.

    Stages 2 and 4 keep all parameters in such a buffer, so Adam is one sweep over it.
    attn_wq, attn_wk and attn_wv are adjacent, so `layer{i}.attn_wqkv` -- the stacked
    (3C, C) matrix [wq; wk; wv] -- is listed too: one matmul computes q, k and v.
    """
    offsets, offset = {}, 0
    for name, (rows, cols) in param_shapes(config):
        offsets[name] = (offset, rows, cols)
        offset += rows * cols
    for i in range(config.n_layer):
        offsets[f"layer{i}.attn_wqkv"] = (offsets[f"layer{i}.attn_wq"][0], 3 * config.n_embd, config.n_embd)
    return offsets


def init_run(
    docs: list[str], config: GPTConfig, seed: int = 42
) -> tuple[list[str], dict[str, list[list[float]]], random.Random]:
    """Shuffle a copy of `docs`, draw the initial weights, and hand back the generator.

    Returns (shuffled docs, {name: matrix as nested lists of floats}, rng); the caller
    continues with `rng` for sampling so the whole run follows one random stream.
    """
    rng = random.Random(seed)
    docs = list(docs)
    rng.shuffle(docs)
    state = {
        name: [[rng.gauss(0, INIT_STD) for _ in range(cols)] for _ in range(rows)]
        for name, (rows, cols) in param_shapes(config)
    }
    return docs, state, rng


def spec_run(seed: int = 42, data=None):
    """SPEC.md's run from the names file (`data`, else where shared/dataset.py finds it):
    (tokenizer, config, shuffled documents, initial weights) -- what the tests, the exercises,
    the pictures and the benchmarks start from, written once."""
    from shared import dataset
    from shared.tokenizer import Tokenizer

    docs = dataset.load_docs(dataset.resolve_data_path(data))
    tokenizer = Tokenizer.from_docs(docs)
    config = GPTConfig(vocab_size=tokenizer.vocab_size)
    docs, state, _ = init_run(docs, config, seed)
    return tokenizer, config, docs, state
