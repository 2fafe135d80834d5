"""What a loss means: microgpt's losses beside the losses of simpler guessers, on the same names.

    python benchmarks/loss_meaning.py --out benchmarks/results/loss-meaning-<date>.json

A loss is the mean of -log p(next token) over positions, in nats. Its exponential, the
perplexity, reads as a count of letters: a loss L is as unsure as a fair choice among e^L
equally likely tokens. This scores, on every position of all 32,033 names (each name cut to
block_size positions, as in training):

- the uniform guess, 1/27 for every token: ln 27;
- microgpt with SPEC.md's initial weights, and after stage 2's 1000 steps (float64; the
  model saw 1000 of the names once each, so almost all of these names are new to it);
- letter frequencies alone (a unigram table) and the previous letter alone (a bigram table),
  both counted on all the names they are scored on: the best those two kinds of guess can do.

It also records step 1's name and loss, and how far the initial model's guesses are from
uniform, which is why the first loss (3.3660) sits above ln 27 (chapter 1 explains it).
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from report.diagrams import trained_stage2  # noqa: E402
from shared import cli, saving  # noqa: E402
from shared.environment import environment  # noqa: E402

CHUNK = 2048  # names per forward pass (a (B, H, T, T) array of all 32,033 would take 0.3 GB)


def model_losses(stage2, params: dict, config, docs: list[list[int]]) -> np.ndarray:
    """-log p(target) of every real position of every document, in the order of the documents."""
    out = []
    for first in range(0, len(docs), CHUNK):
        inputs, targets, real = stage2.batch_arrays(docs[first:first + CHUNK], config.block_size)
        logits = stage2.gpt(inputs, params, config).data
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        docs_i, rows = np.indices(targets.shape)
        out.append(-log_p[docs_i, rows, targets][real])
    return np.concatenate(out)


def table_losses(docs: list[list[int]], block_size: int, vocab: int) -> dict[str, float]:
    """Mean -log p of counted tables, scored on the positions they were counted on."""
    pairs = np.array([(tokens[t], tokens[t + 1]) for tokens in docs
                      for t in range(min(block_size, len(tokens) - 1))])
    unigram = np.bincount(pairs[:, 1], minlength=vocab) / len(pairs)
    bigram = np.zeros((vocab, vocab))
    np.add.at(bigram, (pairs[:, 0], pairs[:, 1]), 1)
    bigram /= bigram.sum(axis=1, keepdims=True)
    return {"unigram": float(-np.log(unigram[pairs[:, 1]]).mean()),
            "bigram": float(-np.log(bigram[pairs[:, 0], pairs[:, 1]]).mean()), "positions": len(pairs)}


def measure() -> dict:
    stage2, config, tokenizer, initial, trained = trained_stage2()
    from shared.weights import spec_run

    _, _, shuffled, _ = spec_run()
    docs = [tokenizer.encode_doc(name) for name in shuffled]
    first = model_losses(stage2, initial, config, docs[:1])
    at_init = model_losses(stage2, initial, config, docs)
    after = model_losses(stage2, trained, config, docs)
    per_name_init = [float(x) for x in
                     (model_losses(stage2, initial, config, [d]).mean() for d in docs[:2000])]
    # the initial model's probabilities at step 1's first position: how far from 1/27
    inputs, _, _ = stage2.batch_arrays(docs[:1], config.block_size)
    logits = stage2.gpt(inputs, initial, config).data[0, 0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    return {
        "ln_vocab": math.log(config.vocab_size), "vocab_size": config.vocab_size,
        "first_name": shuffled[0], "first_name_positions": len(first), "first_loss": float(first.mean()),
        "first_position_p_min": float(p.min()), "first_position_p_max": float(p.max()),
        "initial_mean_loss": float(at_init.mean()), "trained_mean_loss": float(after.mean()),
        "positions": int(len(at_init)), "names": len(docs), "trained_steps": 1000,
        "first_2000_names_initial_loss_above_ln_vocab": float(np.mean(np.array(per_name_init) > math.log(27))),
        **{f"{k}_loss" if k != "positions" else "table_positions": v
           for k, v in table_losses(docs, config.block_size, config.vocab_size).items()},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    cli.guard_record_out(parser, args.out)  # before anything is computed
    report = {**measure(), "env": environment("cpu")}
    saving.write_json_atomic(args.out, report)
    for key, value in report.items():
        if key != "env":
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
