"""The chapters' own code, for the exercises: each stage's main.py loaded by path once (stage
folders start with a digit), under the name the tests use too, so it is one module everywhere."""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "4_triton"))
if "triton" not in sys.modules:
    import torch

    os.environ.setdefault("TRITON_INTERPRET", "0" if torch.cuda.is_available() else "1")  # before Triton loads

from shared.stages import load  # noqa: E402, F401  (the exercises' way to the chapters' code)


def spec_run():
    """(tokenizer, config, shuffled documents, initial weights) of SPEC.md's run."""
    from shared import dataset
    from shared.tokenizer import Tokenizer
    from shared.weights import GPTConfig, init_run

    docs = dataset.load_docs(dataset.resolve_data_path())
    tokenizer = Tokenizer.from_docs(docs)
    config = GPTConfig(vocab_size=tokenizer.vocab_size)
    docs, state, _ = init_run(docs, config, 42)
    return tokenizer, config, docs, state
