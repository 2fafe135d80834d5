"""A chapter's main.py as a module, for the code above the chapters that uses their own code:
tests, benchmarks, exercises, pictures. Stage folders start with a digit, so they are loaded
by path, once each, as `stage_<folder>`: whoever asks first, everyone gets the one module.

A chapter whose main.py imports a package or module of its own folder (4_triton's `kernels`,
5_distributed's `launch`) gets that folder on the import path first, as it has when it runs as
a program.
"""

import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def folder(stage: str) -> Path:
    """The chapter's folder, put on the import path if it holds a package or module of its own."""
    path = REPO_ROOT / stage
    if not (path / "main.py").is_file():
        raise ValueError(f"no chapter {stage!r}: its main.py is not at {path / 'main.py'}")
    own = any((sub / "__init__.py").is_file() or (sub.suffix == ".py" and sub.name != "main.py")
              for sub in path.iterdir())
    if own and str(path) not in sys.path:
        sys.path.insert(0, str(path))
    return path


def load(stage: str):
    """`<stage>/main.py` as the module `stage_<stage>`, loaded once."""
    name = f"stage_{stage}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, folder(stage) / "main.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def train_keeping(stage: str, argv: list[str], max_steps: int | None = None, weights: dict | None = None,
                  documents: list[str] | None = None):
    """(trained, run, kept): the chapter's own `train`, on a run from its own command line
    (`argv`, as a reader would type it), in this process, with what its forward names kept
    (shared/keep.py). `weights` (SPEC.md's names) replace the initial draw and `documents` the
    shuffled data (step i trains on documents i*B ... i*B + B - 1 of them); `max_steps` ends the
    run early without changing its schedule. Nothing is written and nothing is printed."""
    import contextlib
    import io
    import tempfile

    from shared import runner
    from shared.keep import keeping

    module = load(stage)
    with tempfile.TemporaryDirectory() as scratch:  # (the run's --out: never written, train() writes nothing)
        run = runner.start(module.__file__, module.FLAGS,
                           [*argv, "--samples", "0", "--out", str(Path(scratch) / "run.json")], max_steps=max_steps)
    if weights is not None:
        run.initial_weights = weights
    if documents is not None:  # (and the record's positions per step, from them)
        from shared import dataset
        from shared.tokenizer import positions

        run.docs = documents
        lengths = [positions(run.tokenizer.encode_doc(doc), run.config.block_size) for doc in documents]
        run.doc_len = dataset.positions_per_step(lengths, run.steps_to_train, run.batch_size)
    with keeping() as kept, contextlib.redirect_stdout(io.StringIO()):
        trained = module.train(run)
    return trained, run, kept
