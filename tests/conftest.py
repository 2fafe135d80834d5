"""Shared test setup.

Where Triton's kernels run is chosen first, as every program chooses it
(4_triton/kernels/backend.py: compiled on a CUDA GPU, else the interpreter), and kept to this
process: the programs the tests start choose for themselves, as they do when a learner runs
them. Stage folders start with a digit, so their main.py is loaded by path
(tools/stages.py); stage 4's folder is on the path, so `kernels` and `fused_step` are
imported once, by name, like the programs import them.

`train_stage` runs a stage's own `train` (the loop a reader runs) on a run from
shared/runner.py, in-process, and hands back the run and what `train` returned: a test that
needs trained weights or a trajectory gets them there, never from a training loop of its own.
`stage_losses` keeps a trajectory for the process, so the tests comparing one run train it
once: they share an `xdist_group`, which sends them to one process (pyproject.toml's --dist
loadgroup); so do the tests sharing one of the slow fixtures in SHARED_BY_ONE_PROCESS.
"""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from tools import stages  # noqa: E402

stages.folder("4_triton")  # on the path, for `kernels` and `fused_step`
from kernels import backend  # noqa: E402

INTERPRET = backend.choose(inherited=False)

import forkserver  # noqa: E402

# The programs the tests start are forks of a Python that has imported torch once, where the fork
# cannot differ from a fresh start (tests/forkserver.py says where): a start saves 1.5 to 2 s of CPU
subprocess.Popen = forkserver.Popen

from shared import dataset, runner  # noqa: E402
from shared.errors import UserError  # noqa: E402
from shared.weights import spec_run  # noqa: E402


def load_stage(stage: str):
    """`<stage>/main.py` as a module, once (tools/stages.py)."""
    return stages.load(stage)


SCHEDULE = 1000  # a run's length: trajectories stop early in microgpt's 1000-step schedule


def run_worked_examples(stage: str) -> list[str]:
    """Run every `<!-- worked example -->` code block of a chapter's README from the chapter's
    folder, as the README tells the reader to, and check each prints exactly the output block
    that follows it; returns what they printed."""
    import re
    import subprocess

    readme = (REPO_ROOT / stage / "README.md").read_text()
    blocks = re.findall(r"<!-- worked example.*?-->\n```python\n(.*?)```\n\n```\n(.*?)```", readme, re.S)
    assert blocks, f"{stage}/README.md has no worked example"
    for code, printed in blocks:
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT / stage, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == printed, f"{stage}/README.md's block prints:\n{proc.stdout}"
    return [printed for _, printed in blocks]


def train_stage(stage: str, *argv: str, max_steps: int | None = None, program: str = "main.py"):
    """(run, trained) of `stage`'s own train() from its command line `argv`, in-process, stopped
    after `max_steps` of a SCHEDULE-step schedule. Writes nothing."""
    module = load_stage(stage) if program == "main.py" else importlib.import_module(Path(program).stem)
    run = runner.start(module.__file__, module.FLAGS, ["--steps", str(SCHEDULE), "--samples", "0", *argv],
                       max_steps=max_steps)
    return run, module.train(run)


# Fixtures that take seconds to make, kept for a module or the session: each process of the suite
# (pytest-xdist) makes its own, so the tests using one are sent to one process, which makes it once.
SHARED_BY_ONE_PROCESS = {"verdicts", "computed", "fresh", "one_program_batches_of_7"}


def pytest_sessionfinish():
    forkserver.SERVER.close()


@pytest.hookimpl(tryfirst=True)  # (before pytest-xdist reads the groups)
def pytest_collection_modifyitems(items):
    for item in items:
        for name in sorted(SHARED_BY_ONE_PROCESS & set(item.fixturenames)):
            item.add_marker(pytest.mark.xdist_group(name))
    # The groups first: each is tens of seconds in one process, and one handed out last keeps that
    # process busy while the others have finished (the longest jobs first, the short ones fill in)
    items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)


_trajectories: dict[tuple, list[float]] = {}


def stage_losses(stage: str, steps: int, *argv: str, program: str = "main.py") -> list[float]:
    """The first `steps` losses of `stage`'s training run with flags `argv`: trained once per
    session, however many tests compare it (a fresh list each time)."""
    key = (stage, steps, argv, program)
    if key not in _trajectories:
        run, _ = train_stage(stage, *argv, max_steps=steps, program=program)
        _trajectories[key] = list(run.losses)
    return list(_trajectories[key])


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

    def __init__(self, path: Path):
        self.tokenizer, self.config, self.docs, self.state = spec_run(data=path)

    def batch(self, step: int, batch_size: int) -> list[list[int]]:
        """The documents trained on at `step` with `batch_size` per step, encoded."""
        return [self.tokenizer.encode_doc(doc) for doc in dataset.step_documents(self.docs, step, batch_size)]


@pytest.fixture(scope="session")
def spec(names_path) -> Spec:
    return Spec(names_path)


@pytest.fixture(scope="session")
def setup(spec) -> tuple:
    """(tokenizer, config, shuffled documents, initial weights) of SPEC.md's run."""
    return spec.tokenizer, spec.config, spec.docs, spec.state
