"""Shared test setup.

Triton must see TRITON_INTERPRET=1 before it is first imported, so it is set here, at the
top of the first file pytest loads. Stage folders start with a digit, so their main.py is
imported by path; stage 4's folder is put on the path, so `kernels` and `fused_step` are
imported once, by name, like the programs import them.

`train_stage` runs a stage's own `train` (the loop a reader runs) on a run from
shared/runner.py, in-process: no test writes a training loop of its own.
"""

import importlib
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "4_triton"))

from shared import dataset, runner, stages  # noqa: E402
from shared.errors import UserError  # noqa: E402
from shared.tokenizer import Tokenizer  # noqa: E402
from shared.weights import GPTConfig, init_run  # noqa: E402


def load_stage(stage: str):
    """Import `<stage>/main.py` as a module, once (shared/stages.py)."""
    return stages.load(stage)


SCHEDULE = 1000  # a run's length: trajectories stop early in microgpt's 1000-step schedule


def train_stage(stage: str, *argv: str, max_steps: int | None = None, program: str = "main.py"):
    """(run, trained) of `stage`'s own train() from its command line `argv`, in-process, stopped
    after `max_steps` of a SCHEDULE-step schedule. Writes nothing."""
    module = load_stage(stage) if program == "main.py" else importlib.import_module(Path(program).stem)
    run = runner.start(module.__file__, module.FLAGS, ["--steps", str(SCHEDULE), "--samples", "0", *argv],
                       max_steps=max_steps)
    return run, module.train(run)


def stage_losses(stage: str, steps: int, *argv: str, program: str = "main.py") -> list[float]:
    """The first `steps` losses of `stage`'s training run with flags `argv`."""
    run, _ = train_stage(stage, *argv, max_steps=steps, program=program)
    return run.losses


@pytest.fixture(scope="session")
def names_path() -> Path:
    """names.txt as every main.py finds it: $MICROGPT_DATA, else the committed data/names.txt."""
    try:
        path = dataset.resolve_data_path()
    except UserError as err:
        pytest.fail(f"the tests need names.txt: {err}")
    assert path.exists(), f"MICROGPT_DATA points at {path}, which does not exist"
    return path


@pytest.fixture(scope="session")
def names_docs(names_path) -> list[str]:
    return dataset.load_docs(names_path)


class Spec:
    """SPEC.md's run: tokenizer, config, shuffled documents and initial weights (seed 42)."""

    def __init__(self, docs: list[str]):
        self.tokenizer = Tokenizer.from_docs(docs)
        self.config = GPTConfig(vocab_size=self.tokenizer.vocab_size)
        self.docs, self.state, _ = init_run(docs, self.config, seed=42)

    def batch(self, step: int, batch_size: int) -> list[list[int]]:
        """The documents trained on at `step` with `batch_size` per step, encoded."""
        return [self.tokenizer.encode_doc(doc) for doc in dataset.step_documents(self.docs, step, batch_size)]


@pytest.fixture(scope="session")
def spec(names_docs) -> Spec:
    return Spec(names_docs)


@pytest.fixture(scope="session")
def setup(spec) -> tuple:
    """(tokenizer, config, shuffled documents, initial weights) of SPEC.md's run."""
    return spec.tokenizer, spec.config, spec.docs, spec.state
